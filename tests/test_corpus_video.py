"""Corpus mode with videos and calibrated scales: one row per video (its reduced score, ``frames``),
per-frame files counted in resume, video options and scales recorded in the plan, ``temu select --by mos``.

Clips are made with PyAV from scikit-image's photographs, 64x48 and a few frames (corpus_testing.make_media)."""

from __future__ import annotations

from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow", reason="corpus mode needs pyarrow (pip install 'temu[corpus]')")
av = pytest.importorskip("av")
import pyarrow.parquet as pq  # noqa: E402
from corpus_testing import make_calibrated_head, make_media  # noqa: E402

import temu  # noqa: E402
from temu.cli import main  # noqa: E402
from temu.errors import CalibrationError, CorpusError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def no_launcher_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def media(tmp_path_factory, photos) -> Path:
    return make_media(tmp_path_factory.mktemp("media-corpus"), photos)


@pytest.fixture(scope="module")
def calibrated_head(tiny_head_dir, tmp_path_factory) -> Path:
    return make_calibrated_head(tiny_head_dir, tmp_path_factory.mktemp("heads") / "calibrated")


def run(inputs, output, model, **kwargs):
    from temu.corpus import run as corpus_run

    return corpus_run(inputs, str(output), model=str(model), progress=False, precision="fp32", **kwargs)


def file_mode(paths, model, **kwargs) -> dict[str, temu.ScoreResult]:
    results = temu.iter_scores(paths, model=str(model), precision="fp32", on_error="report", num_workers=0, **kwargs)
    return {r.name: r for r in results}


def test_videos_are_one_row_each_with_frames_and_per_frame_files_equal_to_file_mode(media, tiny_head_dir, monkeypatch):
    monkeypatch.chdir(media)
    out = media / "out"
    report = run(["media/", "clips.tar", "clips.parquet"], out, tiny_head_dir, fps=4, per_frame=True, shard_size=2)
    assert report.complete and report.images == 8 and report.errors == 2
    table = pq.read_table(out)  # the per-frame files (in _frames/) are not part of the shards' dataset
    assert table.schema.names == ["id", "score", "frames", "error", "shard", "id_bytes"]
    assert table.schema.field("frames").type == pa.int32()
    rows = {r["id"]: r for r in table.to_pylist()}
    files = [f"media/{n}" for n in ("a.mp4", "b.mkv", "c.mp4", "p0.png", "p1.png")]
    expected = file_mode(files, tiny_head_dir, fps=4)
    for path in files:
        want, got = expected[path], rows[path]
        if want.error is not None:
            assert got["score"] is None and got["frames"] is None and "c.mp4" in got["error"], got
            continue
        assert got["error"] is None and got["score"] == pytest.approx(want.score, abs=1e-5)
        assert got["frames"] == want.frames  # None for the images
    assert rows["media/a.mp4"]["frames"] == 10 and rows["media/p0.png"]["frames"] is None
    # a tar member and a table cell holding video bytes score as the files do; broken bytes are an error row
    assert rows["000000"]["score"] == pytest.approx(rows["media/a.mp4"]["score"], abs=1e-5)
    assert rows["000000"]["frames"] == 10
    assert rows["000001"]["score"] is None and "not a video file FFmpeg can read" in rows["000001"]["error"]
    assert rows["cell"]["score"] == pytest.approx(rows["media/b.mkv"]["score"], abs=1e-5)
    # the per-frame rows: every scored video's frames, as temu.iter_scores gives them
    frames = pq.read_table(out / "_frames")
    assert frames.schema.names == ["id", "frame", "time", "score", "id_bytes"]
    by_id: dict[str, list] = {}
    for r in frames.to_pylist():
        by_id.setdefault(r["id"], []).append(r)
    assert sorted(by_id) == ["000000", "cell", "media/a.mp4", "media/b.mkv"]
    for key, path in (("media/a.mp4", "media/a.mp4"), ("media/b.mkv", "media/b.mkv"), ("000000", "media/a.mp4")):
        got = sorted(by_id[key], key=lambda r: r["frame"])
        assert [r["frame"] for r in got] == list(range(expected[path].frames))
        assert [r["time"] for r in got] == pytest.approx(expected[path].timestamps, abs=1e-9)
        assert [r["score"] for r in got] == pytest.approx(expected[path].frame_scores, abs=1e-5)


def test_a_resumed_video_run_scores_each_input_once_and_a_shard_needs_its_frames_file(media, tiny_head_dir):
    out = media / "resumed"
    inputs = [str(media / "media")]
    first = run(inputs, out, tiny_head_dir, frames=2, per_frame=True, shard_size=2, shard=(0, 3))
    assert first.shards_done == 1 and not first.complete
    # a shard file whose per-frame file is gone is not done: it is scored again
    (out / "_frames" / "media-00000.parquet").unlink()
    again = run(inputs, out, tiny_head_dir, frames=2, per_frame=True, shard_size=2)
    assert again.complete and again.shards_done == 3 and again.shards_skipped == 0
    assert {p.name for p in out.glob("*.parquet")} == {
        "media-00000.parquet",
        "media-00001.parquet",
        "media-00002.parquet",
    }
    last = run(inputs, out, tiny_head_dir, frames=2, per_frame=True, shard_size=2)
    assert last.shards_done == 0 and last.shards_skipped == 3
    ids = pq.read_table(out).column("id").to_pylist()
    assert sorted(ids) == sorted(str(p) for p in (media / "media").iterdir())  # each input once
    assert pq.read_table(out / "_frames").num_rows == 2 * 2  # two clips, two frames each
    # other video options than the plan's are refused, naming the argument (the CLI: the flag)
    with pytest.raises(CorpusError, match=r"other options \(fps: null then, 1.0 now; frames: 2 then, null now"):
        run(inputs, out, tiny_head_dir, per_frame=True, shard_size=2)
    with pytest.raises(CorpusError, match=r"per_frame: true then, false now"):
        run(inputs, out, tiny_head_dir, frames=2, shard_size=2)


def test_a_changed_fps_is_refused_by_the_command_line_naming_the_flag(media, tiny_head_dir, capsys):
    args = ["score", str(media / "media" / "p0.png"), "--model", str(tiny_head_dir), "--output"]
    args += [str(media / "fps-out/"), "-q", "--precision", "fp32"]
    assert main([*args, "--fps", "2"]) == 0
    capsys.readouterr()
    assert main([*args, "--fps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fps: 2.0 then, 3.0 now" in err and "--overwrite" in err, err
    assert main([*args, "--per-frame", "x.csv"]) == 2
    assert "--per-frame takes no file in corpus mode" in capsys.readouterr().err


def test_scale_columns_equal_file_mode_and_select_ranks_by_them(media, calibrated_head, tiny_head_dir, capsys):
    out = media / "scaled"
    inputs = [str(media / "media")]
    report = run(inputs, out, calibrated_head, scale=["percentile", "mos"], shard_size=3)
    assert report.complete
    table = pq.read_table(out)
    assert table.schema.names == ["id", "score", "mos", "percentile", "frames", "error", "shard", "id_bytes"]
    assert table.schema.field("mos").type == pa.float32()
    expected = file_mode(
        sorted(str(p) for p in (media / "media").iterdir()), calibrated_head, scale=["mos", "percentile"]
    )
    for row in table.to_pylist():
        want = expected[row["id"]]
        if want.error is not None:
            assert row["mos"] is None and row["percentile"] is None
            continue
        assert row["score"] == pytest.approx(want.score, abs=1e-5)
        assert row["mos"] == pytest.approx(want.mos, abs=1e-4) and row["percentile"] == pytest.approx(
            want.percentile, abs=1e-3
        )
    # other scales than the plan's are refused
    with pytest.raises(CorpusError, match=r"scale"):
        run(inputs, out, calibrated_head, scale="mos", shard_size=3)
    # temu select --by mos ranks by the column; a folder without it says which columns it has
    assert main(["select", str(out), "--top-k", "2", "--by", "mos", "-q"]) == 0
    kept = capsys.readouterr().out.split()
    scored = sorted((r for r in table.to_pylist() if r["mos"] is not None), key=lambda r: -r["mos"])
    assert kept == [r["id"] for r in scored[:2]]
    selection = temu.corpus.select(str(out), top_k=1, by="percentile")
    assert selection.table.column("id").to_pylist() == [max(scored, key=lambda r: r["percentile"])["id"]]
    # a DMOS (lower is better) is not ranked as if higher were better
    plan = out / "_temu" / "plan.json"
    plan.write_text(plan.read_text().replace('"mos_lower_better": false', '"mos_lower_better": true'))
    with pytest.raises(CorpusError, match="is a DMOS .lower is better.*by='percentile'"):
        temu.corpus.select(str(out), top_k=1, by="mos")
    plain = media / "plain"
    run([str(media / "media" / "p0.png")], plain, tiny_head_dir)
    assert main(["select", str(plain), "--top-k", "1", "--by", "mos"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--by mos" in err and "--scale mos" in err and "it ranks by score" in err, err


def test_a_scale_the_head_lacks_is_refused_before_anything_is_written(media, tiny_head_dir, capsys):
    out = media / "never"
    with pytest.raises(CalibrationError, match=r"scale='mos' needs a MOS calibration.*temu calibrate"):
        run([str(media / "media")], out, tiny_head_dir, scale="mos")
    assert not out.exists()
    code = main(["score", str(media / "media"), "--model", str(tiny_head_dir), "--output", f"{out}/", "--scale", "mos"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--scale mos needs a MOS calibration" in err, err
    assert not out.exists()


def test_score_video_gives_the_calibrated_score_like_temu_score(media, calibrated_head):
    clip = str(media / "media" / "a.mp4")
    video = temu.score_video(clip, model=str(calibrated_head), scale=["mos", "percentile"], precision="fp32")
    assert video.mos == pytest.approx(temu.score(clip, model=str(calibrated_head), scale="mos", precision="fp32"))
    assert video.percentile == pytest.approx(
        temu.score(clip, model=str(calibrated_head), scale="percentile", precision="fp32")
    )
    assert 1.0 <= video.mos <= 5.0 and video.mos != pytest.approx(video.score)
    assert temu.score_video(clip, model=str(calibrated_head), precision="fp32").mos is None
