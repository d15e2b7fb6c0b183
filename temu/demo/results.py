"""What the demo page shows, without gradio: the models on offer, uploaded files scored, the tables and the CSV.

torch and the scoring core are imported on first use, so the page can answer before they load.
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DemoError, ImageReadError, TeMuError
from ..precision import Precision, check_precision

if TYPE_CHECKING:
    import torch

    from ..model import TeMuIQA

#: Decimals of the scores and attributes the page shows (tables and CSV keep every digit).
SHOWN_DECIMALS = 4


class ModelChoices:
    """The models a demo page offers, by the name it was given; each is loaded once, on first use.

    Args:
        sources: preset names, head folders or Hub repo ids; at least one, none twice.
        device: where the models run (checked when the first model loads); None: CUDA when
            available, else the CPU.
    """

    def __init__(self, sources: Sequence[str | os.PathLike[str]], device: str | torch.device | None = None) -> None:
        names = [os.fspath(source) for source in sources]
        if not names:
            raise DemoError("model: give at least one preset name, head folder or Hub repo id")
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise DemoError(f"model: {', '.join(repr(name) for name in twice)} given more than once")
        self.names: tuple[str, ...] = tuple(names)
        self.device = device
        self._loaded: dict[str, TeMuIQA] = {}
        self._lock = threading.Lock()  # the page's event handlers run on several threads

    @property
    def default(self) -> str:
        """The first model's name: the page's initial choice."""
        return self.names[0]

    def get(self, name: str) -> TeMuIQA:
        """The model called ``name``, loaded on first use: the errors of :func:`temu.load`, and
        :class:`DemoError` for a name not offered or an unusable device."""
        if name not in self.names:
            raise DemoError(f"model {name!r} is not offered here; the choices are {', '.join(self.names)}")
        with self._lock:
            model = self._loaded.get(name)
            if model is None:
                model = self._loaded[name] = self._load(name)
        return model

    def _load(self, name: str) -> TeMuIQA:
        from ..cache import load
        from ..runtime import resolve_device

        return load(name, device=resolve_device(self.device))


def describe_model(name: str, model: TeMuIQA) -> str:
    """Markdown that says what the page's scores mean: range, direction, the model and whether its head is trained."""
    config = model.config
    size = f"{config.image_size} px" if config.image_size is not None else "each image's own size"
    what = f"`{name}`: backbone {config.backbone} ({config.pretrained or 'random weights'}), variant {config.variant}, {size}"
    if model.mos_scale is not None:
        scale = model.mos_scale
        direction = ", lower is better on that scale" if scale.lower_better else ""
        head = (
            f"**trained** (fine-tuned on opinion scores from {scale.low:g} to {scale.high:g}{direction}; "
            "`model.to_mos(score)` maps a score back to that scale)"
        )
    else:
        head = (
            "**untrained**: zero-shot CLIP, each patch's agreement with "
            f"{config.prompts[0]!r} against {config.prompts[1]!r}, not a model fine-tuned on human ratings"
        )
    return (
        "**Score**: one number per image in [0, 1], **higher is better**. "
        "Attributes are zero-shot CLIP judgements in [0, 1] (higher = more of the positive prompt, "
        "e.g. sharp rather than blurry), the same for every head on a backbone.\n\n"
        f"**Model** {what}. **Head**: {head}."
    )


@dataclass(frozen=True)
class ScoredImage:
    """One scored image and what the page draws from it.

    Attributes:
        name: the file's name as uploaded (no folder).
        score: the quality score in [0, 1], as :func:`temu.score` gives it.
        attributes: attribute name -> score in [0, 1].
        maps: ``"quality"``, ``"weight"`` and one per attribute -> ``[h, w]`` float32 patch map in [0, 1].
        preview: the image as ``[H, W, 3]`` uint8, long side at most 1024 px (the maps are drawn over it).
    """

    name: str
    score: float
    attributes: dict[str, float]
    maps: dict[str, np.ndarray] = field(repr=False)
    preview: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Scoring:
    """One request's outcome: the model's name, the images scored (in upload order) and the files that were not,
    as (file name, reason) pairs."""

    model: str
    images: tuple[ScoredImage, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()


def score_files(paths: Sequence[str | os.PathLike[str]], model: TeMuIQA, name: str, precision: Precision) -> Scoring:
    """Score each file with :func:`temu.explain` (score, attributes and maps from one pass).

    A file that cannot be read or scored becomes an error (file name, reason) and the others are
    scored. ``name`` is the model's name on the page, kept in the result.
    """
    from ..api import explain
    from ..plots import read_preview

    check_precision(precision)
    images: list[ScoredImage] = []
    errors: list[tuple[str, str]] = []
    for path in paths:
        shown = Path(path).name
        try:
            result = explain(path, model=model, precision=precision)
            preview = read_preview(path)
        except TeMuError as err:  # this file only: its line says why
            reason = err.reason if isinstance(err, ImageReadError) else str(err)
            errors.append((shown, reason))
            continue
        pixels = (preview.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        images.append(ScoredImage(shown, result.score, dict(result.attributes), dict(result.maps), pixels))
    return Scoring(name, tuple(images), tuple(errors))


def message(scoring: Scoring) -> str:
    """Markdown that lists the files that could not be scored; empty when there are none."""
    if not scoring.errors:
        return ""
    total = len(scoring.errors) + len(scoring.images)
    lines = [f"**Could not score {len(scoring.errors)} of {total} file(s):**", ""]
    lines += [f"- `{name}`: {reason}" for name, reason in scoring.errors]
    return "\n".join(lines)


def table(scoring: Scoring) -> tuple[list[str], list[list[str | float]]]:
    """(headers, rows) of the score table: image, score and one column per attribute, every digit kept."""
    names = list(scoring.images[0].attributes) if scoring.images else []
    rows: list[list[str | float]] = [
        [item.name, item.score, *(item.attributes[n] for n in names)] for item in scoring.images
    ]
    return ["image", "score", *names], rows


def comparison(first: ScoredImage, second: ScoredImage) -> tuple[list[str], list[list[str | float]]]:
    """(headers, rows) of two images side by side: the score, then each attribute, and second minus first."""
    rows: list[list[str | float]] = [["score", first.score, second.score, second.score - first.score]]
    rows += [
        [n, first.attributes[n], second.attributes[n], second.attributes[n] - first.attributes[n]]
        for n in first.attributes
    ]
    return ["", first.name, second.name, "difference"], rows


def write_csv(scoring: Scoring, path: Path) -> Path:
    """Write ``model,image,score,<attributes...>,error`` rows (scored files, then failed ones) to ``path``; returns it."""
    headers, rows = table(scoring)
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["model", *headers, "error"])
        writer.writerows([scoring.model, *row, ""] for row in rows)
        writer.writerows([scoring.model, name, *[""] * (len(headers) - 1), reason] for name, reason in scoring.errors)
    return path
