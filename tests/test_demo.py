"""The demo page (`temu demo`, `temu.demo.build`): through its API with gradio_client, and in a real Chromium.

One server per module, on a free port, offers two models on the tiny backbone: the tests' untrained-like
head and a "trained" one (a MOS scale in its config). Scores on the page must be temu.score's.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from demo_testing import browser_missing, chromium_page, free_port, upload_and_wait, write_clip, write_huge_png
from PIL import Image
from temu_testing import perturb_head

import temu
from temu.cli import main

gradio = pytest.importorskip("gradio", reason="the demo page needs gradio (extra temu-iqa[demo])")
gradio_client = pytest.importorskip("gradio_client", reason="the API tests need gradio_client (in the test extra)")

import temu.demo  # noqa: E402 (after the skips: it imports gradio)
from temu.demo.results import (  # noqa: E402
    REDUCTIONS,
    VIDEO_FRAMES,
    DemoError,
    ModelChoices,
    ScoredImage,
    Scoring,
    comparison,
    reduced,
    score_files,
    write_csv,
)
from temu.errors import DeviceError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "examples" / "images"
COFFEE, ROCKET = IMAGES / "coffee.jpg", IMAGES / "rocket.jpg"


@pytest.fixture(scope="module")
def trained_head_dir(tmp_path_factory: pytest.TempPathFactory, tiny_head_dir: Path) -> Path:
    """A head on the tiny backbone with a MOS scale in its config (so the page calls it trained), and
    other weights than tiny_head_dir's (so its scores differ)."""
    model = temu.load(tiny_head_dir, mos_scale=temu.MOSScale(1.0, 5.0))
    perturb_head(model, seed=1)
    return model.save_pretrained(tmp_path_factory.mktemp("heads") / "tiny-trained")


@pytest.fixture(scope="module")
def page_url(tiny_head_dir: Path, trained_head_dir: Path):
    """The page, served once for the module: models [tiny_head_dir, trained_head_dir] on the CPU."""
    page = temu.demo.build([tiny_head_dir, trained_head_dir], device="cpu")
    port = free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        page.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s 64x64 clip at 10 fps: coffee.jpg and rocket.jpg in turn, each shown for a tenth of a second."""
    pytest.importorskip("av", reason="videos need PyAV (extra temu-iqa[video])")
    pictures = [np.asarray(Image.open(p).convert("RGB").resize((64, 64), Image.BICUBIC)) for p in (COFFEE, ROCKET)]
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", pictures)


@pytest.fixture(scope="module")
def client(page_url: str):
    return gradio_client.Client(page_url, verbose=False, analytics_enabled=False)


@pytest.fixture(scope="module")
def reference(tiny_head_dir: Path, trained_head_dir: Path) -> dict[str, temu.TeMuIQA]:
    """The page's models, loaded apart from it: model name -> model."""
    return {str(head): temu.load(head, device="cpu") for head in (tiny_head_dir, trained_head_dir)}


def score_rows(table: dict) -> dict[str, list]:
    """The page's score table (as gradio_client returns it): image name -> [score, (frames,) attributes...]."""
    assert table["headers"][:2] == ["image", "score"]
    return {row[0]: row[1:] for row in table["data"]}


def read_csv(download: dict) -> list[dict[str, str]]:
    with open(download["value"], encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------------- the API


def test_api_scores_equal_temu_score_and_explain(client, reference, tiny_head_dir):
    name = str(tiny_head_dir)
    table, note, _, download = client.predict(
        [gradio_client.handle_file(COFFEE), gradio_client.handle_file(ROCKET)], name, api_name="/score"
    )
    assert note == ""
    rows = score_rows(table)
    expected = temu.score([COFFEE, ROCKET], model=reference[name])
    assert list(rows) == ["coffee.jpg", "rocket.jpg"]
    assert [rows["coffee.jpg"][0], rows["rocket.jpg"][0]] == pytest.approx(expected, abs=1e-6)
    explained = temu.explain(COFFEE, model=reference[name])
    assert table["headers"][2:] == list(temu.DEFAULT_ATTRIBUTES)
    assert rows["coffee.jpg"][1:] == pytest.approx([explained.attributes[a] for a in temu.DEFAULT_ATTRIBUTES], abs=1e-6)
    # the CSV download holds every digit, and the model
    with open(download["value"], encoding="utf-8", newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["image"] for r in written] == ["coffee.jpg", "rocket.jpg"]
    assert [float(r["score"]) for r in written] == pytest.approx(expected, abs=1e-6)
    assert {r["model"] for r in written} == {name} and {r["error"] for r in written} == {""}


def test_api_unreadable_and_huge_files_are_messages_and_the_server_keeps_working(
    client, reference, tiny_head_dir, tmp_path
):
    name = str(tiny_head_dir)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    huge = write_huge_png(tmp_path / "huge.png")
    files = [gradio_client.handle_file(p) for p in (broken, COFFEE, huge)]
    table, note, _, download = client.predict(files, name, api_name="/score")
    assert list(score_rows(table)) == ["coffee.jpg"]
    assert "Could not score 2 of 3" in note
    assert "`broken.jpg`: not an image file" in note and "`huge.png`: refused as a possible decompression bomb" in note
    assert str(tmp_path) not in note  # file names, not the server's upload folders
    with open(download["value"], encoding="utf-8", newline="") as f:
        errors = {r["image"]: r["error"] for r in csv.DictReader(f) if r["error"]}
    assert sorted(errors) == ["broken.jpg", "huge.png"]
    # the next request is served as if nothing happened
    table, note, _, _ = client.predict([gradio_client.handle_file(ROCKET)], name, api_name="/score")
    assert note == ""
    assert score_rows(table)["rocket.jpg"][0] == pytest.approx(temu.score(ROCKET, model=reference[name]), abs=1e-6)


def test_api_model_choice_scores_with_that_model_and_says_whether_it_is_trained(
    client, reference, tiny_head_dir, trained_head_dir
):
    untrained = client.predict(str(tiny_head_dir), api_name="/describe")
    trained = client.predict(str(trained_head_dir), api_name="/describe")
    for text in (untrained, trained):
        assert "[0, 1]" in text and "higher is better" in text
    assert "**untrained**" in untrained and "**trained**" not in untrained
    assert "**trained**" in trained and "from 1 to 5" in trained
    table, _, _, _ = client.predict([gradio_client.handle_file(COFFEE)], str(trained_head_dir), api_name="/score")
    got = score_rows(table)["coffee.jpg"][0]
    assert got == pytest.approx(temu.score(COFFEE, model=reference[str(trained_head_dir)]), abs=1e-6)
    assert abs(got - temu.score(COFFEE, model=reference[str(tiny_head_dir)])) > 1e-3  # another model's score


def test_api_compare_puts_two_images_side_by_side(client, reference, tiny_head_dir):
    name = str(tiny_head_dir)
    files = gradio_client.handle_file(COFFEE), gradio_client.handle_file(ROCKET)
    table, note = client.predict(*files, name, api_name="/compare")
    assert note == "" and table["headers"] == ["", "coffee.jpg", "rocket.jpg", "difference"]
    rows = {row[0]: row[1:] for row in table["data"]}
    expected = temu.score([COFFEE, ROCKET], model=reference[name])
    assert rows["score"] == pytest.approx([*expected, expected[1] - expected[0]], abs=1e-6)
    assert list(rows) == ["score", *temu.DEFAULT_ATTRIBUTES]


@pytest.mark.parametrize("reduce", ["mean", "min"])
def test_api_a_video_is_one_row_with_its_frame_count_and_temu_scores_reduced_score(
    client, reference, tiny_head_dir, clip, reduce
):
    name = str(tiny_head_dir)
    files = [gradio_client.handle_file(clip), gradio_client.handle_file(COFFEE)]
    table, note, _, download = client.predict(files, name, reduce, api_name="/score")
    assert note == ""
    assert table["headers"] == ["image", "score", "frames", *temu.DEFAULT_ATTRIBUTES]
    rows = score_rows(table)
    expected = temu.explain(clip, model=reference[name], frames=VIDEO_FRAMES, reduce=reduce)
    assert rows["clip.mp4"][:2] == [pytest.approx(expected.score, abs=1e-6), VIDEO_FRAMES]
    assert rows["clip.mp4"][2:] == pytest.approx([expected.attributes[a] for a in temu.DEFAULT_ATTRIBUTES], abs=1e-6)
    assert rows["coffee.jpg"][:2] == [pytest.approx(temu.score(COFFEE, model=reference[name]), abs=1e-6), ""]
    written = read_csv(download)
    assert [(r["image"], r["frames"]) for r in written] == [("clip.mp4", str(VIDEO_FRAMES)), ("coffee.jpg", "")]
    assert float(written[0]["score"]) == pytest.approx(expected.score, abs=1e-6)


def test_api_without_pyav_or_with_a_broken_video_says_why_and_scores_the_rest(
    client, reference, tiny_head_dir, clip, tmp_path, monkeypatch
):
    name = str(tiny_head_dir)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    table, note, _, download = client.predict(
        [gradio_client.handle_file(p) for p in (broken, COFFEE)], name, api_name="/score"
    )
    assert list(score_rows(table)) == ["coffee.jpg"] and "frames" not in table["headers"]
    assert "Could not score 1 of 2" in note and "`broken.mp4`: not a video file FFmpeg can read" in note
    assert str(tmp_path) not in note
    assert [r["error"] != "" for r in read_csv(download)] == [False, True]
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError, in the page's threads too
    table, note, _, _ = client.predict([gradio_client.handle_file(p) for p in (clip, ROCKET)], name, api_name="/score")
    assert list(score_rows(table)) == ["rocket.jpg"]
    assert 'clip.mp4`: reading videos needs PyAV, which is not installed: pip install "temu-iqa[video]"' in note
    monkeypatch.delitem(sys.modules, "av")
    table, note, _, _ = client.predict([gradio_client.handle_file(clip)], name, api_name="/score")  # served again
    assert note == "" and score_rows(table)["clip.mp4"][1] == VIDEO_FRAMES


def test_a_videos_frames_are_scored_once_and_reduced_again_as_temu_explain_reduces(reference, tiny_head_dir, clip):
    from temu.demo.app import _Frames, _View

    model = reference[str(tiny_head_dir)]
    scoring = score_files([clip], model, "m", "auto")
    (video,) = scoring.images
    explained = temu.explain(clip, model=model, frames=VIDEO_FRAMES)
    assert [f.time for f in video.frames] == [f.time for f in explained.frames]
    assert [f.score for f in video.frames] == pytest.approx([f.score for f in explained.frames], abs=1e-6)
    assert {f.preview.shape for f in video.frames} == {(64, 64, 3)} and video.preview is None
    assert REDUCTIONS == temu.video.REDUCTIONS  # the page's copy (temu.video imports torch)
    for reduce in REDUCTIONS:
        again = reduced(scoring, reduce).images[0]
        assert again.score == pytest.approx(temu.score(clip, model=model, frames=VIDEO_FRAMES, reduce=reduce), abs=1e-6)
    with pytest.raises(DemoError, match="reduce must be one of"):
        reduced(scoring, "max")
    # the page: the frame scores over time, the worst frame chosen first, any frame on request
    worst = min(range(VIDEO_FRAMES), key=lambda i: video.frames[i].score)
    assert video.worst_frame == worst
    panel, plot, choice = _Frames.render(video)
    assert panel.visible and list(plot.columns) == ["time (s)", "score"] and len(plot) == VIDEO_FRAMES
    labels = {index: label for label, index in choice.choices}
    assert choice.value == worst and labels[worst].endswith("(the worst)") and len(labels) == VIDEO_FRAMES
    text, quality, *_ = _View.render(video, 0.5, None, None, "min")
    assert (
        "the min of its 8 frames' scores" in text and f"frame at {video.frames[worst].time:.2f} s (the worst)" in text
    )
    other = (worst + 1) % VIDEO_FRAMES
    text, *_ = _View.render(video, 0.5, None, other, "mean")
    assert f"frame at {video.frames[other].time:.2f} s, score" in text and quality.size == (64, 64)
    assert _Frames.render(fake_image("a.jpg", 0.5))[0].visible is False


# -------------------------------------------------------------------------------------- the browser

TABLE_TEXT = "(document.querySelector('#temu-table')?.innerText ?? '')"


# CI (CI=true, where .ci/run installs Chromium) must run the browser test, never skip it
@pytest.mark.skipif(browser_missing() is not None and not os.environ.get("CI"), reason=str(browser_missing()))
def test_page_in_chromium_shows_the_score_and_the_maps(page_url, reference, tiny_head_dir, tmp_path, request):
    """Upload coffee.jpg as a user would; the number shown is temu.score's, the maps are drawn at the
    photo's aspect ratio, a click on an attribute shows its map; a clip dropped next shows its row and
    frames; and the page asks nothing of the internet."""
    assert browser_missing() is None, f"CI must run the browser test: {browser_missing()}"
    clip = request.getfixturevalue("clip") if importlib.util.find_spec("av") else None
    expected = temu.score(COFFEE, model=reference[str(tiny_head_dir)])
    with chromium_page(tmp_path / "profile", page_url) as (page, outside):
        page.goto(page_url, wait_until="load")
        page.wait_for_function("() => /untrained/.test(document.querySelector('#temu-about')?.innerText ?? '')")
        shown = upload_and_wait(page, [COFFEE])
        number = re.search(r"score (\d\.\d+)", shown).group(1)
        assert f"{expected:.{len(number) - 2}f}" == number, shown
        with Image.open(COFFEE) as photo:
            ratio = photo.width / photo.height
        for element in ("#temu-quality-map img", "#temu-weight-map img", "#temu-attribute-map img"):
            width, height = page.eval_on_selector(element, "img => [img.naturalWidth, img.naturalHeight]")
            assert width > 0 and abs(width / height - ratio) < 0.01, (element, width, height)
        drawn = np.asarray(Image.open(io.BytesIO(page.locator("#temu-quality-map img").screenshot())).convert("L"))
        assert drawn.std() > 10  # a picture, not a blank box
        page.get_by_test_id("noise-confidence-set").click()
        page.wait_for_function(
            "() => /Attribute map: noise/.test(document.querySelector('#temu-attribute-map')?.innerText ?? '')"
        )
        page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
        if clip is not None:  # a clip dropped beside it: its row; clicked, its frames over time, the worst shown
            page.set_input_files("#temu-files input[type=file]", [str(clip)])
            page.wait_for_function(f"() => {TABLE_TEXT}.includes('clip.mp4')", timeout=60_000)
            page.locator("#temu-table").get_by_text("clip.mp4", exact=True).click()
            page.wait_for_function(
                "() => /clip.mp4.*8 frames(.|\\n)*the frame at [0-9.]+ s \\(the worst\\)/"
                ".test(document.querySelector('#temu-score')?.innerText ?? '')",
                timeout=60_000,
            )
            assert page.locator("#temu-frame-plot").is_visible() and page.locator("#temu-reduce").is_visible()
    assert outside == []
    with Image.open(tmp_path / "demo.png") as shot:
        assert shot.width == 1280 and shot.height > 900


# ------------------------------------------------------------------------------------ command line


def test_temu_demo_passes_the_models_host_and_port_to_serve(monkeypatch):
    calls = []
    monkeypatch.setattr(temu.demo, "serve", lambda models, **kwargs: calls.append((models, kwargs)))
    assert main(["demo", "--model", "a", "b", "--model", "c", "--host", "0.0.0.0", "--port", "8123"]) == 0
    assert main(["demo"]) == 0
    assert calls == [
        (["a", "b", "c"], {"device": None, "host": "0.0.0.0", "port": 8123}),
        (["temu-iqa-s"], {"device": None, "host": "127.0.0.1", "port": None}),
    ]


def test_temu_demo_usage_errors_are_one_line_and_exit_2(capsys, tmp_path):
    assert main(["demo", "--model", "a", "--model", "a"]) == 2  # before any server starts
    assert main(["demo", "--model", str(tmp_path / "no-such-head"), "--port", str(free_port())]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "temu demo: error: model: 'a' given more than once"
    assert lines[-1].startswith(f"temu demo: error: cannot load model '{tmp_path / 'no-such-head'}'")
    with pytest.raises(SystemExit) as done:
        main(["demo", "--port", "70000"])
    assert done.value.code == 2


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)


def test_temu_demo_without_gradio_names_the_extra():
    code = "import sys; sys.modules['gradio'] = None; from temu.cli import main; sys.exit(main(['demo']))"
    proc = run_python(code)
    assert proc.returncode == 2
    assert proc.stderr == (
        'temu demo: error: the demo page needs gradio, which is not installed: pip install "temu-iqa[demo]"\n'
    )


def test_the_page_is_built_without_torch():
    """So it answers before the scoring core loads (`import temu` and scoring never import gradio:
    tests/test_architecture.py)."""
    proc = run_python("import sys, temu.demo; temu.demo.build('temu-iqa-s'); print('torch' in sys.modules)")
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr[-2000:]


# ------------------------------------------------------------------------------ without a server


def test_build_refuses_no_model_a_model_twice_and_an_unknown_precision():
    with pytest.raises(DemoError, match="at least one"):
        temu.demo.build([])
    with pytest.raises(DemoError, match="'a' given more than once"):
        temu.demo.build(["a", "b", "a"])
    with pytest.raises(ValueError, match="precision"):
        temu.demo.build("a", precision="fp8")


def test_models_load_once_and_only_those_offered(tiny_head_dir):
    choices = ModelChoices([tiny_head_dir, "temu-iqa-i"], device="cpu")
    assert choices.default == str(tiny_head_dir)
    assert choices.get(str(tiny_head_dir)) is choices.get(str(tiny_head_dir))
    with pytest.raises(DemoError, match="not offered"):
        choices.get("temu-iqa-s")
    with pytest.raises(DeviceError, match="device='nowhere'"):
        ModelChoices([tiny_head_dir], device="nowhere").get(str(tiny_head_dir))


def fake_image(name: str, score: float) -> ScoredImage:
    maps = {"quality": np.full((2, 2), score, np.float32), "weight": np.ones((2, 2), np.float32)}
    return ScoredImage(name, score, {"sharpness": score / 2}, maps, np.zeros((3, 4, 3), np.uint8))


def test_csv_lists_the_scored_then_the_failed_files(tmp_path):
    scoring = Scoring("m", (fake_image("a,b.jpg", 0.25),), (("bad.jpg", "not an image file"),))
    with open(write_csv(scoring, tmp_path / "out.csv"), encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["model", "image", "score", "sharpness", "error"],
        ["m", "a,b.jpg", "0.25", "0.125", ""],
        ["m", "bad.jpg", "", "", "not an image file"],
    ]


def test_comparison_is_second_minus_first():
    headers, rows = comparison(fake_image("a.jpg", 0.25), fake_image("b.jpg", 0.75))
    assert headers == ["", "a.jpg", "b.jpg", "difference"]
    assert rows == [["score", 0.25, 0.75, 0.5], ["sharpness", 0.125, 0.375, 0.25]]


def test_maps_are_drawn_at_the_image_size_on_fixed_scales():
    from temu.demo.pictures import map_over, weights_over

    preview = np.full((30, 40, 3), 128, np.uint8)
    for values in (np.zeros((2, 2)), np.ones((2, 2))):
        assert map_over(preview, values, 0.5).size == weights_over(preview, values, 0.5).size == (40, 30)
    low, high = (np.asarray(map_over(preview, np.full((2, 2), v), 1.0))[0, 0] for v in (0.0, 1.0))
    assert low[0] > low[1] and high[1] > high[0]  # red for 0, green for 1, whatever the image
    assert np.array_equal(np.asarray(map_over(preview, np.zeros((2, 2)), 0.0)), preview)  # opacity 0: the image


# ----------------------------------------------------------------------------------- the Space's app


def test_the_space_app_builds_the_page_from_presets(monkeypatch):
    built = []
    monkeypatch.setattr(temu.demo, "build", lambda **kwargs: built.append(kwargs) or "page")
    namespace = runpy.run_path(str(REPO / "examples" / "app.py"), run_name="space")
    assert namespace["demo"] == "page" and len(built) == 1
    models = built[0]["model"]
    assert models and set(models) <= set(temu.list_presets())
