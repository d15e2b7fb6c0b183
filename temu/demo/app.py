"""The demo page as Gradio Blocks around :func:`temu.explain`: the only module of temu that imports gradio.

The page is built and served before torch is imported; the models load on first use.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from ..errors import TeMuError
from ..images.names import VIDEO_EXTENSIONS
from ..precision import Precision, check_precision
from .pictures import DEFAULT_OPACITY, legend_html, map_over, weights_over
from .results import (
    REDUCTIONS,
    SHOWN_DECIMALS,
    VIDEO_FRAMES,
    ModelChoices,
    ScoredImage,
    Scoring,
    comparison,
    describe_model,
    frame_table,
    message,
    reduced,
    score_files,
    table,
    write_csv,
)

if TYPE_CHECKING:
    import torch

#: Events the page itself uses, left out of the API page (``score``, ``compare`` and ``describe`` are on it).
_UI_ONLY: Mapping[str, Any] = MappingProxyType({"api_visibility": "undocumented"})

#: What ``build(model=...)`` takes for one model: a preset name, a head folder or a Hub repo id.
ModelSource = str | os.PathLike[str]

#: (file paths, model name, reduction) -> (their Scoring, the Markdown message for the page): what the tabs call.
_Scorer = Callable[[Sequence[str], str, str], tuple[Scoring, str]]

#: What the file input accepts: images, and videos by their endings.
_FILE_TYPES = ["image", *sorted(VIDEO_EXTENSIONS)]

#: What the page says about videos (the sampling rule and the reduction).
_VIDEO_NOTE = (
    f"**Videos** ({' '.join(sorted(VIDEO_EXTENSIONS))}) are scored by {VIDEO_FRAMES} frames spread over their "
    f"duration (`temu.explain(video, frames={VIDEO_FRAMES})`: the frames at the centres of {VIDEO_FRAMES} equal "
    "parts); a video's score and attributes are its frames' reduced as chosen here."
)


def build(
    model: ModelSource | Sequence[ModelSource] = "temu-iqa-s",
    *,
    device: str | torch.device | None = None,
    precision: Precision = "auto",
) -> gr.Blocks:
    """The demo page: score uploaded images and videos, show their maps and attributes, compare two, download a CSV.

    A video is scored by :data:`~temu.demo.results.VIDEO_FRAMES` frames spread over its duration; its row holds
    their scores reduced (mean, min, median or p10, a choice on the page) and the page plots each frame's
    score over time and draws the maps of the frame chosen (at first the worst).

    Nothing is loaded here: each model loads when it is first needed (the first one when the page
    is first opened), once, and a model that cannot be loaded is a message on the page.

    Args:
        model: the model, or the models the page offers (the first is the default): preset names,
            head folders or Hub repo ids.
        device: where the models run; None: CUDA when available, else the CPU.
        precision: autocast precision of scoring, as in :func:`temu.score` (``"auto"``, ``"fp32"``, ...).

    Returns:
        The page as ``gradio.Blocks``: ``.launch()`` serves it, or mount it in your own app.

    Raises:
        DemoError: no model, or one given twice.
        ValueError: an unknown ``precision``.
    """
    check_precision(precision)
    return _page(_choices(model, device), precision)


def serve(
    model: ModelSource | Sequence[ModelSource] = "temu-iqa-s",
    *,
    device: str | torch.device | None = None,
    precision: Precision = "auto",
    host: str = "127.0.0.1",
    port: int | None = None,
) -> None:
    """Serve :func:`build`'s page on ``host:port`` until interrupted (what ``temu demo`` runs).

    The page answers first; then the first model is loaded, so a model that cannot be loaded
    raises (after the server is closed) instead of waiting for a visitor.

    Args:
        model, device, precision: as in :func:`build`.
        host: the address to listen on (``"0.0.0.0"``: every network interface).
        port: the port; None: 7860, or the next free one.

    Raises:
        DemoError: no model, one given twice, or an unusable device.
        TeMuError: the first model cannot be loaded (the errors of :func:`temu.load`).
        OSError: the port is taken, or the address is not this machine's.
    """
    check_precision(precision)
    choices = _choices(model, device)
    page = _page(choices, precision)
    page.launch(server_name=host, server_port=port, prevent_thread_lock=True)
    try:
        choices.get(choices.default)
    except BaseException:
        page.close()
        raise
    page.block_thread()


def _choices(model: ModelSource | Sequence[ModelSource], device: str | torch.device | None) -> ModelChoices:
    return ModelChoices([model] if isinstance(model, (str, os.PathLike)) else list(model), device)


def _page(choices: ModelChoices, precision: Precision) -> gr.Blocks:
    workdir = tempfile.TemporaryDirectory(prefix="temu-demo-")  # CSV files; removed with the page

    def load(name: str) -> Any:
        """The model called ``name``, or the Markdown that says why it cannot be loaded."""
        try:
            return choices.get(name)
        except (TeMuError, OSError) as err:
            return f"**Cannot load model `{name}`:** {err}"

    def score(paths: Sequence[str], name: str, reduce: str) -> tuple[Scoring, str]:
        net = load(name)
        if isinstance(net, str):
            return Scoring(name, reduce=reduce), net
        scoring = score_files(paths, net, name, precision, reduce)
        return scoring, message(scoring)

    def describe(name: str) -> str:
        net = load(name)
        return net if isinstance(net, str) else describe_model(name, net)

    with gr.Blocks(title="temu: image quality", analytics_enabled=False) as demo:
        gr.Markdown("# temu: image and video quality (TeMu-IQA)")
        model_box = gr.Dropdown(
            choices=list(choices.names),
            value=choices.default,
            label="Model",
            interactive=len(choices.names) > 1,
            elem_id="temu-model",
        )
        about_box = gr.Markdown(f"Loading model `{choices.default}` ...", elem_id="temu-about")
        legend = gr.HTML()  # filled when a page opens: temu.plots imports torch
        with gr.Tab("Images and videos"):
            _images_tab(score, model_box, workdir)
        with gr.Tab("Compare two"):
            _compare_tab(score, model_box)
        demo.load(describe, model_box, about_box, **_UI_ONLY)
        demo.load(legend_html, None, legend, **_UI_ONLY)
        model_box.change(describe, model_box, about_box, api_name="describe")
    return demo


@dataclass(frozen=True)
class _Frames:
    """The components that show a video's frames: their scores over time, and the choice of the frame whose
    maps are shown (hidden for an image)."""

    panel: gr.Row
    plot: gr.LinePlot
    choice: gr.Dropdown

    @classmethod
    def make(cls, key: str) -> _Frames:
        with gr.Row(visible=False, elem_id=f"{key}-frames") as panel:
            plot = gr.LinePlot(
                x="time (s)",
                y="score",
                label="Frame scores over time",
                height=220,
                scale=2,
                elem_id=f"{key}-frame-plot",
            )
            choice = gr.Dropdown(
                label="Frame shown (its score, maps and attributes)",
                choices=[],
                interactive=True,
                scale=1,
                elem_id=f"{key}-frame",
            )
        return cls(panel, plot, choice)

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.panel, self.plot, self.choice]

    @staticmethod
    def render(item: ScoredImage | None) -> list[Any]:
        """The values of :attr:`outputs` for ``item``: hidden unless it is a video, its worst frame chosen."""
        if item is None or not item.frames:
            return [gr.Row(visible=False), None, gr.Dropdown(choices=[], value=None)]
        headers, rows = frame_table(item)
        picks = [
            (
                f"{f.time:.2f} s: score {f.score:.{SHOWN_DECIMALS}f}"
                + (" (the worst)" if i == item.worst_frame else ""),
                i,
            )
            for i, f in enumerate(item.frames)
        ]
        return [
            gr.Row(visible=True),
            pd.DataFrame(rows, columns=headers),
            gr.Dropdown(choices=picks, value=item.worst_frame),
        ]


@dataclass(frozen=True)
class _View:
    """The components that show one scored image: its score, quality map, weight map, attribute bars and one
    attribute's map; with ``frames``, a video's frame scores and the choice of its frame shown."""

    score: gr.Markdown
    quality: gr.Image
    weight: gr.Image
    attributes: gr.Label
    attribute_map: gr.Image
    frames: _Frames | None = None

    @classmethod
    def make(cls, key: str, *, wide: bool, frames: bool = False) -> _View:
        """Lay the components out (maps side by side when ``wide``; a video's frames under the score when
        ``frames``); ``key`` prefixes their element ids."""

        def picture(label: str, name: str) -> gr.Image:
            return gr.Image(label=label, type="pil", format="png", interactive=False, elem_id=f"{key}-{name}")

        score = gr.Markdown(elem_id=f"{key}-score")
        frame_view = _Frames.make(key) if frames else None
        with gr.Row(equal_height=True) if wide else gr.Column():
            quality = picture("Quality map", "quality-map")
            weight = picture("Patch weights", "weight-map")
        with gr.Row(equal_height=True) if wide else gr.Column():
            attributes = gr.Label(
                label="Attributes (click one for its map)", show_heading=False, elem_id=f"{key}-attributes"
            )
            attribute_map = picture("Attribute map", "attribute-map")
        return cls(score, quality, weight, attributes, attribute_map, frame_view)

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.score, self.quality, self.weight, self.attributes, self.attribute_map]

    @staticmethod
    def render(
        item: ScoredImage | None,
        opacity: float,
        attribute: str | None,
        frame: int | None = None,
        reduce: str = "mean",
    ) -> list[Any]:
        """The values of :attr:`outputs` for ``item`` (all empty for None), with ``attribute``'s map
        (the first attribute's when ``attribute`` is None or not one of the item's). For a video, the maps,
        bars and frame score are those of its frame ``frame`` (the worst when None), and ``reduce`` names
        how its score was made from its frames'."""
        if item is None:
            return ["", None, None, None, gr.Image(value=None, label="Attribute map")]
        text = f"### `{item.name}`: score {item.score:.{SHOWN_DECIMALS}f} (in [0, 1], higher is better)"
        shown = item
        if item.frames:
            if frame is None or not 0 <= frame < len(item.frames):
                frame = item.worst_frame
            shown = item.frames[frame]
            worst = " (the worst)" if frame == item.worst_frame else ""
            text = (
                f"### `{item.name}`: score {item.score:.{SHOWN_DECIMALS}f} (the {reduce} of its "
                f"{len(item.frames)} frames' scores; in [0, 1], higher is better)\n\n"
                f"Shown: the frame at {shown.time:.2f} s{worst}, score {shown.score:.{SHOWN_DECIMALS}f}"
            )
        if attribute not in shown.attributes:
            attribute = next(iter(shown.attributes))
        return [
            text,
            map_over(shown.preview, shown.maps["quality"], opacity),
            weights_over(shown.preview, shown.maps["weight"], opacity),
            dict(shown.attributes),
            gr.Image(
                value=map_over(shown.preview, shown.maps[attribute], opacity), label=f"Attribute map: {attribute}"
            ),
        ]


def _table_value(headers: list[str], rows: list[list[Any]]) -> Any:
    """A table for gr.Dataframe: every digit sent, :data:`SHOWN_DECIMALS` shown."""
    frame = pd.DataFrame(rows, columns=headers)
    numbers = [name for name in headers if pd.api.types.is_float_dtype(frame[name])]
    return frame.style.format({name: f"{{:.{SHOWN_DECIMALS}f}}" for name in numbers})


def _picked(scoring: Scoring | None, index: int | None) -> ScoredImage | None:
    if scoring is None or index is None or not 0 <= index < len(scoring.images):
        return None
    return scoring.images[index]


def _images_tab(score: _Scorer, model_box: gr.Dropdown, workdir: tempfile.TemporaryDirectory) -> None:
    """The tab that scores one or more images and videos: a table of scores, a CSV, and the maps of the one chosen
    (for a video: its frame scores over time and the maps of one frame)."""
    files = gr.File(
        label="Images or videos: drop or pick one or more",
        file_count="multiple",
        file_types=_FILE_TYPES,
        elem_id="temu-files",
    )
    note = gr.Markdown(elem_id="temu-message")
    scores = gr.Dataframe(label="Scores (click a row to show it)", interactive=False, elem_id="temu-table")
    download = gr.DownloadButton("Download CSV", visible=False, elem_id="temu-csv")
    with gr.Row(visible=False, elem_id="temu-video-options") as video_options:
        gr.Markdown(_VIDEO_NOTE)
        reduce_box = gr.Radio(
            list(REDUCTIONS),
            value="mean",
            label="A video's score: its frames' ...",
            info="p10: the 10th percentile",
            elem_id="temu-reduce",
        )
    with gr.Row():
        chooser = gr.Dropdown(label="Show", choices=[], elem_id="temu-chooser", interactive=True)
        opacity = gr.Slider(0.0, 1.0, value=DEFAULT_OPACITY, step=0.05, label="Map opacity", elem_id="temu-opacity")
    view = _View.make("temu", wide=True, frames=True)
    assert view.frames is not None  # for the type checker: make(frames=True) makes them
    results = gr.State(None)  # the Scoring shown
    attribute = gr.State(None)  # the attribute whose map is shown

    def csv_button(scoring: Scoring) -> gr.DownloadButton:
        csv = None
        if scoring.images or scoring.errors:
            csv = write_csv(scoring, Path(tempfile.mkdtemp(dir=workdir.name)) / "temu-scores.csv")
        return gr.DownloadButton(value=str(csv) if csv else None, visible=csv is not None)

    def run(paths: list[str] | None, name: str, reduce: str) -> list[Any]:
        scoring, text = score(paths or [], name, reduce)
        picks = [(f"{i + 1}. {item.name}", i) for i, item in enumerate(scoring.images)]
        return [
            scoring,
            _table_value(*table(scoring)),
            text,
            gr.Dropdown(choices=picks, value=0 if picks else None),
            csv_button(scoring),
            gr.Row(visible=scoring.has_videos),
        ]

    def rereduce(scoring: Scoring | None, reduce: str) -> list[Any]:
        if scoring is None:
            return [None, gr.Dataframe(), gr.DownloadButton()]
        scoring = reduced(scoring, reduce)
        return [scoring, _table_value(*table(scoring)), csv_button(scoring)]

    def pick(scoring: Scoring | None, index: int | None) -> list[Any]:
        return _Frames.render(_picked(scoring, index))

    def show(
        scoring: Scoring | None, index: int | None, alpha: float, name: str | None, frame: int | None
    ) -> list[Any]:
        reduce = scoring.reduce if scoring is not None else "mean"
        return _View.render(_picked(scoring, index), alpha, name, frame, reduce)

    def pick_attribute(
        scoring: Scoring | None, index: int | None, alpha: float, frame: int | None, evt: gr.SelectData
    ) -> list[Any]:
        return [*show(scoring, index, alpha, evt.value, frame), evt.value]

    def pick_row(evt: gr.SelectData) -> int:
        return int(evt.index[0])

    shown = [results, chooser, opacity, attribute, view.frames.choice]
    picked = ([results, chooser], view.frames.outputs)
    scored = [results, scores, note, chooser, download, video_options]
    for event, options in ((files.change, {"api_name": "score"}), (model_box.change, _UI_ONLY)):
        event(run, [files, model_box, reduce_box], scored, **options).then(pick, *picked, **_UI_ONLY).then(
            show, shown, view.outputs, **_UI_ONLY
        )
    reduce_box.change(rereduce, [results, reduce_box], [results, scores, download], **_UI_ONLY).then(
        show, shown, view.outputs, **_UI_ONLY
    )
    chooser.input(pick, *picked, **_UI_ONLY).then(show, shown, view.outputs, **_UI_ONLY)
    scores.select(pick_row, None, chooser, **_UI_ONLY).then(pick, *picked, **_UI_ONLY).then(
        show, shown, view.outputs, **_UI_ONLY
    )
    opacity.change(show, shown, view.outputs, **_UI_ONLY)
    view.frames.choice.input(show, shown, view.outputs, **_UI_ONLY)
    view.attributes.select(
        pick_attribute, [results, chooser, opacity, view.frames.choice], [*view.outputs, attribute], **_UI_ONLY
    )


def _compare_tab(score: _Scorer, model_box: gr.Dropdown) -> None:
    """The tab that puts two images side by side: scores, attributes and maps on the same scales."""
    with gr.Row():
        first_file = gr.File(label="First image", file_types=["image"], elem_id="temu-first-file")
        second_file = gr.File(label="Second image", file_types=["image"], elem_id="temu-second-file")
    note = gr.Markdown(elem_id="temu-compare-message")
    side_by_side = gr.Dataframe(label="Side by side", interactive=False, elem_id="temu-compare-table")
    opacity = gr.Slider(0.0, 1.0, value=DEFAULT_OPACITY, step=0.05, label="Map opacity", elem_id="temu-compare-opacity")
    with gr.Row():
        with gr.Column():
            first_view = _View.make("temu-first", wide=False)
        with gr.Column():
            second_view = _View.make("temu-second", wide=False)
    pair = gr.State(None)  # (first ScoredImage or None, second ScoredImage or None)
    attribute = gr.State(None)

    def run(first: str | None, second: str | None, name: str) -> list[Any]:
        items: list[ScoredImage | None] = []
        notes: list[str] = []
        for path in (first, second):
            scoring, text = score([path], name, "mean") if path else (None, "")
            items.append(scoring.images[0] if scoring is not None and scoring.images else None)
            notes += [text] if text else []
        value = _table_value(*comparison(items[0], items[1])) if items[0] and items[1] else None
        return [tuple(items), value, "\n\n".join(notes)]

    def show(items: tuple | None, alpha: float, name: str | None) -> list[Any]:
        first, second = items or (None, None)
        return [*_View.render(first, alpha, name), *_View.render(second, alpha, name)]

    def pick_attribute(items: tuple | None, alpha: float, evt: gr.SelectData) -> list[Any]:
        return [*show(items, alpha, evt.value), evt.value]

    views = [*first_view.outputs, *second_view.outputs]
    inputs, compared, shown = (
        [first_file, second_file, model_box],
        [pair, side_by_side, note],
        [pair, opacity, attribute],
    )
    first_file.change(run, inputs, compared, api_name="compare").then(show, shown, views, **_UI_ONLY)
    for event in (second_file.change, model_box.change):
        event(run, inputs, compared, **_UI_ONLY).then(show, shown, views, **_UI_ONLY)
    opacity.change(show, shown, views, **_UI_ONLY)
    for view in (first_view, second_view):
        view.attributes.select(pick_attribute, [pair, opacity], [*views, attribute], **_UI_ONLY)
