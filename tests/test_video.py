"""Videos scored by their frames: the sampling rule (constant and variable frame rates, seeking), rotation,
the reductions, bad files, the missing extra, the pipeline's batches, and `temu score`'s rows.

Clips are made here with PyAV from scikit-image's photographs (some blurred), 64x48 and a few frames."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from temu_testing import write_clip

import temu
from temu.errors import VideoOptionsError, VideoReadError
from temu.images.video import VideoSampling, display_orientation, sample_frames, shrink_long_side
from temu.video import reduce_scores

av = pytest.importorskip("av")

W, H = 64, 48


@pytest.fixture(scope="module")
def model(tiny_head_dir):
    return temu.load(tiny_head_dir)


@pytest.fixture(scope="module")
def pictures(photos) -> list[np.ndarray]:
    """Eight 64x48 frames: the four photographs, sharp and blurred."""
    out = []
    for arr in photos.values():
        img = Image.fromarray(arr).resize((W, H), Image.BICUBIC)
        out += [np.asarray(img), np.asarray(img.filter(ImageFilter.GaussianBlur(2)))]
    return out


def decoded(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Every frame's time (from the first) and rgb24 pixels, decoded with plain PyAV."""
    with av.open(str(path)) as container:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return [t - frames[0][0] for t, _ in frames], [a for _, a in frames]


def shown_at(times: list[float], targets: list[float]) -> list[int]:
    """For each target time, the index of the last frame whose time is <= it (the rule, written plainly)."""
    return [max(i for i, t in enumerate(times) if t <= target + 1e-9) for target in targets]


CFR = [i / 30 for i in range(75)]  # 2.5 s at 30 fps
VFR = [0.0, 0.1, 0.15, 0.9, 1.0, 1.05, 2.5, 2.6, 3.7]  # ends 1/30 s after 3.7


@pytest.fixture(scope="module")
def clips(tmp_path_factory, pictures) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "cfr": write_clip(folder / "cfr.mp4", pictures, CFR),
        "vfr": write_clip(folder / "vfr.mkv", pictures, VFR),
        "short": write_clip(folder / "short.mp4", pictures, [0, 1 / 30, 2 / 30]),
    }


# ---------------------------------------------------------------- the sampling rule


@pytest.mark.parametrize("clip", ["cfr", "vfr"])
def test_sampled_times_follow_the_rule_at_constant_and_variable_frame_rates(clips, clip):
    times, _ = decoded(clips[clip])
    assert times == pytest.approx(CFR if clip == "cfr" else VFR, abs=1e-3)  # the clip is what it should be
    end = times[-1] + 1 / 30
    expected = {
        VideoSampling(): shown_at(times, [k for k in range(10) if k <= times[-1]]),
        VideoSampling(fps=4): shown_at(times, [k / 4 for k in range(40) if k / 4 <= times[-1]]),
        VideoSampling(frames=5): shown_at(times, [(k + 0.5) * end / 5 for k in range(5)]),
        VideoSampling(frames="all"): list(range(len(times))),
    }
    for sampling, indices in expected.items():
        got = [t for t, _ in sample_frames(clips[clip], sampling)]
        assert got == pytest.approx([times[i] for i in indices], abs=1e-6), sampling.describe()


def test_a_clip_shorter_than_one_interval_gives_its_first_frame(clips):
    _, arrays = decoded(clips["short"])
    ((t, pixels),) = list(sample_frames(clips["short"], VideoSampling(fps=0.5)))
    assert t == 0.0 and torch.equal(pixels, torch.from_numpy(arrays[0]).permute(2, 0, 1))


def test_frames_are_uint8_at_the_input_size_and_bytes_read_as_the_file(clips, model):
    from_path = list(sample_frames(clips["vfr"], VideoSampling(fps=2), model.input_size))
    from_bytes = list(sample_frames(clips["vfr"].read_bytes(), VideoSampling(fps=2), model.input_size, name="v"))
    assert [t for t, _ in from_path] == [t for t, _ in from_bytes]
    for (_, a), (_, b) in zip(from_path, from_bytes):
        assert a.dtype == torch.uint8 and a.shape == (3, 64, 64) and a.is_contiguous() and torch.equal(a, b)


def test_sparse_sampling_seeks_and_gives_the_frames_decoding_everything_gives(tmp_path, pictures, monkeypatch):
    import temu.images.video as video

    clip = write_clip(tmp_path / "long.mp4", pictures, [i / 10 for i in range(300)], rate=10, gop=15)
    seeks = []
    real = video._Reader.seek
    monkeypatch.setattr(video._Reader, "seek", lambda self, t: seeks.append(t) or real(self, t))
    for sampling in (VideoSampling(frames=4), VideoSampling(fps=0.2)):
        seeks.clear()
        sought = list(sample_frames(clip, sampling))
        assert len(seeks) >= 3, sampling.describe()
        monkeypatch.setattr(video, "SEEK_GAP", 1e9)
        plain = list(sample_frames(clip, sampling))
        monkeypatch.setattr(video, "SEEK_GAP", 2.0)
        assert [t for t, _ in sought] == [t for t, _ in plain]
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(sought, plain))
    assert [t for t, _ in sought] == pytest.approx([0, 5, 10, 15, 20, 25])


def test_10_bit_video_gives_float_frames_close_to_its_8_bit_values(tmp_path):
    grey = [np.full((H, W, 3), 100 + 20 * i, np.uint8) for i in range(3)]
    with av.open(str(tmp_path / "deep.mkv"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p10le"
        for i, picture in enumerate(grey):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = [pixels for _, pixels in sample_frames(tmp_path / "deep.mkv", VideoSampling(frames="all"))]
    assert all(f.dtype == torch.float32 and 0 <= f.min() and f.max() <= 1 for f in frames)
    assert [round(float(f.mean()) * 255) for f in frames] == pytest.approx([100, 120, 140], abs=2)


def test_sampling_options_are_checked():
    for bad in (
        {"fps": 0},
        {"fps": float("nan")},
        {"frames": 0},
        {"frames": "some"},
        {"fps": 2, "frames": 3},
        {"max_frames": 0},
        {"max_side": -1},
        {"frames": 9, "max_frames": 8},
    ):
        with pytest.raises(VideoOptionsError):
            VideoSampling(**bad)
    assert VideoSampling().describe() == "fps=1.0" and VideoSampling(frames="all").describe() == "frames=all"


# ---------------------------------------------------------------- rotation


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
@pytest.mark.parametrize("hflip", [False, True])
def test_the_display_matrix_turns_frames_as_ffmpeg_autorotation_does(tmp_path, pictures, degrees, hflip):
    """PyAV writes the display matrix ("rotate `degrees` counter-clockwise, then mirror"); the frames come
    out turned that way, as a phone's portrait video is shown upright."""
    clip = write_clip(tmp_path / "r.mp4", pictures[:1], [0.0], rotation=(degrees, hflip, False))
    _, (stored,) = decoded(clip)
    upright = torch.from_numpy(stored).permute(2, 0, 1).rot90(degrees // 90, dims=(1, 2))
    if hflip:
        upright = upright.flip(-1)
    ((_, pixels),) = list(sample_frames(clip, VideoSampling(frames="all")))
    assert torch.equal(pixels, upright)


def test_display_orientation_reads_the_eight_matrices_and_refuses_other_angles():
    one = 1 << 16
    matrices = {  # FFmpeg's matrix entries (m[0], m[1], m[3], m[4]) -> EXIF orientation
        (one, 0, 0, one): 1,
        (-one, 0, 0, one): 2,
        (-one, 0, 0, -one): 3,
        (one, 0, 0, -one): 4,
        (0, one, one, 0): 5,
        (0, one, -one, 0): 6,  # an iPhone's portrait video: displaymatrix "rotation of -90.00 degrees"
        (0, -one, -one, 0): 7,
        (0, -one, one, 0): 8,
    }
    for (m0, m1, m3, m4), orientation in matrices.items():
        assert display_orientation([m0, m1, 0, m3, m4, 0, 0, 0, 1 << 30]) == orientation
    half = round(one / 2**0.5)
    assert display_orientation([half, half, 0, -half, half, 0, 0, 0, 1 << 30]) is None  # 45 degrees


def test_max_side_shrinks_as_vbench_does():
    from torchvision.transforms import Resize

    x = torch.randint(0, 256, (3, 90, 160), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = shrink_long_side(x, 64)
    assert out.shape == (3, int(64 / 160 * 90), 64) and out.dtype == torch.uint8
    assert torch.equal(out, Resize((int(64 / 160 * 90), int(64 / 160 * 160)), antialias=False)(x))
    assert shrink_long_side(x, 160) is x


# ---------------------------------------------------------------- scores


def test_frame_scores_equal_the_same_frames_scored_as_images(clips, model):
    times, arrays = decoded(clips["vfr"])
    for options, indices in (
        ({"frames": "all"}, list(range(len(times)))),
        ({"fps": 2}, shown_at(times, [k / 2 for k in range(8)])),
    ):
        result = temu.score_video(clips["vfr"], model=model, batch_size=4, **options)
        expected = temu.score([arrays[i] for i in indices], model=model)
        assert result.frame_scores == pytest.approx(expected, abs=1e-5)
        assert result.timestamps == pytest.approx([times[i] for i in indices], abs=1e-6)
        assert result.frames == len(indices) and result.score == pytest.approx(np.mean(expected), abs=1e-5)
    assert temu.score(clips["vfr"], model=model) == pytest.approx(temu.score_video(clips["vfr"], model=model).score)


def test_each_reduction():
    scores = [0.9, 0.2, 0.5, 0.7, 0.4]
    assert reduce_scores(scores) == pytest.approx(0.54)
    assert reduce_scores(scores, "min") == 0.2
    assert reduce_scores(scores, "median") == 0.5 and reduce_scores([0.1, 0.4], "median") == pytest.approx(0.25)
    assert reduce_scores(scores, "p10") == pytest.approx(0.2 + 0.4 * (0.4 - 0.2))  # rank 0.1 * (5 - 1) = 0.4
    with pytest.raises(VideoOptionsError):
        reduce_scores(scores, "max")
    with pytest.raises(VideoOptionsError):
        reduce_scores([])


@pytest.mark.parametrize("reduce", ["min", "median", "p10"])
def test_a_videos_score_is_its_frame_scores_reduced(clips, model, reduce):
    result = temu.score_video(clips["cfr"], model=model, fps=4, reduce=reduce)
    assert result.reduce == reduce and result.score == pytest.approx(reduce_scores(result.frame_scores, reduce))
    assert temu.score(clips["cfr"], model=model, fps=4, reduce=reduce) == pytest.approx(result.score)


def test_explain_gives_each_frame_with_its_maps_and_attributes_reduced_alike(clips, model):
    e = temu.explain(clips["cfr"], model=model, attributes=["sharpness", "noise"], fps=1, reduce="min")
    assert [f.time for f in e.frames] == pytest.approx([0.0, 1.0, 2.0]) and e.maps == {}
    assert e.score == pytest.approx(min(f.score for f in e.frames))
    assert e.attributes["noise"] == pytest.approx(min(f.attributes["noise"] for f in e.frames))
    assert all(f.maps["quality"].shape == f.maps["sharpness"].shape == (8, 8) for f in e.frames)
    video = temu.score_video(clips["cfr"], model=model, fps=1)
    assert [f.score for f in e.frames] == pytest.approx(video.frame_scores, abs=1e-6)


def test_frames_of_consecutive_clips_share_batches_in_workers_too(clips, model, monkeypatch):
    from temu.inference import Predictor

    sizes = []
    real = Predictor.forward
    monkeypatch.setattr(Predictor, "forward", lambda self, x: sizes.append(len(x)) or real(self, x))
    inputs = [clips["cfr"], clips["short"], clips["vfr"]]  # 3 + 1 + 4 samples at fps=1
    results = list(temu.iter_scores(inputs, model=model, batch_size=3, num_workers=0))
    assert sizes == [3, 3, 2] and [r.frames for r in results] == [3, 1, 4]
    in_workers = list(temu.iter_scores(inputs, model=model, batch_size=3, num_workers=2))
    assert [r.name for r in in_workers] == [str(p) for p in inputs]
    assert [r.frame_scores for r in in_workers] == [pytest.approx(r.frame_scores, abs=1e-6) for r in results]


# ---------------------------------------------------------------- what is a video


def test_folders_pick_videos_up_and_a_video_named_otherwise_is_read_by_its_content(clips, photo_files, model, tmp_path):
    from temu.images.folders import describe_skipped

    folder = photo_files["coffee"].parent
    (folder / "clip.MOV").write_bytes(clips["short"].read_bytes())
    (folder / "notes.txt").write_text("x")
    skipped = []
    results = {Path(r.name).name: r for r in temu.iter_scores(folder, model=model, skipped=skipped)}
    assert results["clip.MOV"].frames == 1 and results["coffee.png"].frames is None
    assert describe_skipped(skipped) == ["skipped 1 file without an image or video extension: notes.txt"]
    odd = tmp_path / "clip.bin"  # an explicit path: Pillow cannot read it, FFmpeg can
    odd.write_bytes(clips["cfr"].read_bytes())
    assert temu.score_video(odd, model=model).frame_scores == temu.score_video(clips["cfr"], model=model).frame_scores


def test_bad_videos_are_their_own_error_rows_and_scoring_goes_on(clips, pictures, photos, model, tmp_path):
    good = clips["cfr"].read_bytes()
    streamable = write_clip(tmp_path / "streamable.mp4", pictures, CFR, faststart=True).read_bytes()
    bad = {
        "cut.mp4": good[: len(good) // 2],  # the index (moov) at the end is gone
        "truncated.mp4": streamable[: len(streamable) * 9 // 10],  # index first: frames listed, not there
        "truncated.mkv": clips["vfr"].read_bytes()[:-900],  # the last frames are gone
        "corrupt.mp4": bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
        "empty.mp4": b"",
        "unknown-codec.mp4": good.replace(b"avc1", b"zzzz"),
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    with av.open(str(tmp_path / "no-keyframe.mp4"), "w") as container:  # packets, none of them decodable
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = W, H
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                if not packet.is_keyframe:
                    container.mux(packet)
        for packet in stream.encode():
            if not packet.is_keyframe:
                container.mux(packet)
    with av.open(str(tmp_path / "audio-only.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with av.open(str(tmp_path / "no-frames.mp4"), "w") as container:  # a video track with no frame
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = W, H
        container.start_encoding()
    Image.fromarray(photos["coffee"]).save(tmp_path / "photo.mp4", format="JPEG")  # a JPEG named .mp4
    names = [*bad, "no-keyframe.mp4", "audio-only.mp4", "no-frames.mp4", "photo.mp4"]
    inputs = [clips["short"], *(tmp_path / n for n in names), clips["vfr"]]
    results = {Path(r.name).name: r for r in temu.iter_scores(inputs, model=model, on_error="report")}
    assert results["short.mp4"].frames == 1 and results["vfr.mkv"].frames == 4  # the good ones around them
    assert "cut.mp4: not a video file FFmpeg can read" in results["cut.mp4"].error
    assert "truncated: the file has" in results["truncated.mp4"].error
    assert (
        "truncated: its frames end at 2.633 s, but the file says the video lasts 3.733 s"
        in results["truncated.mkv"].error
    )
    assert "not a video file FFmpeg can read" in results["corrupt.mp4"].error
    assert "empty (0 bytes)" in results["empty.mp4"].error
    assert "cannot be decoded by this FFmpeg build" in results["unknown-codec.mp4"].error
    assert "has no frames (its video stream holds no decodable frame)" in results["no-keyframe.mp4"].error
    assert "has no video stream (audio only)" in results["audio-only.mp4"].error
    assert "has no video stream" in results["no-frames.mp4"].error  # FFmpeg drops a track without frames
    photo = results["photo.mp4"]  # scored as the image it is
    assert photo.error is None and photo.frames is None
    with Image.open(tmp_path / "photo.mp4") as jpeg:
        assert photo.score == pytest.approx(temu.score(np.asarray(jpeg.convert("RGB")), model=model), abs=1e-6)
    with pytest.raises(VideoReadError, match="truncated.mp4"):
        temu.score(tmp_path / "truncated.mp4", model=model)
    with pytest.raises(temu.errors.InvalidInputError, match="is an image, not a video"):
        temu.score_video(tmp_path / "photo.mp4", model=model)
    for wrong, kind in (((tmp_path / "truncated.mp4").read_bytes(), "bytes"), ([clips["cfr"]], "list")):
        with pytest.raises(temu.errors.InvalidInputError, match=f"takes the path of one video file, got {kind}"):
            temu.score_video(wrong, model=model)
    with pytest.raises(temu.errors.InvalidInputError, match="is a folder; score_video takes one video file"):
        temu.score_video(tmp_path, model=model)
    with pytest.raises(VideoReadError, match="missing.mp4: no such file"):  # what score_video says it raises
        temu.score_video(tmp_path / "missing.mp4", model=model)


def test_too_many_frames_for_max_frames_is_that_videos_error(clips, model):
    results = list(temu.iter_scores([clips["cfr"], clips["vfr"]], model=model, fps=2, max_frames=5, on_error="report"))
    assert results[0].error is None and results[0].frames == 5  # 0, 0.5, ..., 2.0: the last frame is at 2.467 s
    assert "asks for more than max_frames=5" in results[1].error and results[1].score is None  # 8 times up to 3.7 s


def test_without_pyav_a_video_is_an_error_naming_the_extra_and_images_still_score(
    clips, photo_files, model, monkeypatch
):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    results = list(temu.iter_scores([clips["cfr"], photo_files["coffee"]], model=model, on_error="report"))
    assert (
        results[0].error
        == f'{clips["cfr"]}: reading videos needs PyAV, which is not installed: pip install "temu-iqa[video]"'
    )
    assert results[1].error is None


# ---------------------------------------------------------------- the command line


def test_cli_writes_one_row_per_video_and_a_frame_file(clips, photo_files, tiny_head_dir, tmp_path, capsys):
    from temu.cli import main

    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("cfr", "vfr"):
        (folder / clips[name].name).write_bytes(clips[name].read_bytes())
    (folder / "broken.mp4").write_bytes(b"not a video")
    out, frames = tmp_path / "v.csv", tmp_path / "frames.csv"
    args = [str(folder), "--model", str(tiny_head_dir), "--fps", "2", "--reduce", "min", "--output", str(out)]
    assert main(["score", *args, "--per-frame", str(frames), "-q"]) == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "score", "frames", "error"]
    assert [(Path(r["path"]).name, r["frames"]) for r in rows] == [
        ("broken.mp4", ""),
        ("cfr.mp4", "5"),
        ("vfr.mkv", "8"),
    ]
    assert "not a video file" in rows[0]["error"] and rows[0]["score"] == ""
    with frames.open(newline="") as f:
        frame_rows = list(csv.DictReader(f))
    assert list(frame_rows[0]) == ["path", "frame", "time", "score"] and len(frame_rows) == 13
    cfr = [r for r in frame_rows if r["path"] == rows[1]["path"]]
    assert [r["frame"] for r in cfr] == ["0", "1", "2", "3", "4"] and cfr[2]["time"] == "1.000000"
    assert float(rows[1]["score"]) == pytest.approx(min(float(r["score"]) for r in cfr), abs=1e-6)
    video = temu.score_video(folder / "vfr.mkv", model=str(tiny_head_dir), fps=2, reduce="min")
    assert float(rows[2]["score"]) == pytest.approx(video.score, abs=1e-6)
    capsys.readouterr()
    assert main(["score", str(photo_files["coffee"]), "--model", str(tiny_head_dir), "-q"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "path,score"  # images alone: no frames column
    assert main(["score", str(folder / "cfr.mp4"), "--model", str(tiny_head_dir), "--maps", str(tmp_path / "m")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "path,score,frames,map" and out.splitlines()[1].endswith(",3,")
    assert "no map for" in err and "temu.explain(video)" in err


def test_cli_video_options_are_checked_before_the_model_loads(clips, tmp_path, capsys):
    import temu.video
    from temu.cli import main
    from temu.cli.score import REDUCTIONS

    assert REDUCTIONS == temu.video.REDUCTIONS  # the command's copy (its --help loads no torch)

    clip, missing = str(clips["cfr"]), str(tmp_path / "no-such-head")
    for extra, message in (
        (["--fps", "2", "--frames", "3"], "give one of them"),
        (["--frames", "9", "--max-frames", "8"], "more frames per video than --max-frames 8"),
        (["--per-frame", str(tmp_path / "f.json")], "--per-frame must end in .csv"),
        (["--output", str(tmp_path / "scores/"), "--per-frame", "f.csv"], "--per-frame takes no file in corpus mode"),
        (["--output", str(tmp_path / "scores/"), "--fps", "2", "--frames", "3"], "give one of them"),
        (["--per-frame"], "--per-frame needs a file here"),
    ):
        assert main(["score", clip, "--model", missing, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "cannot load model" not in err, err
    with pytest.raises(SystemExit):
        main(["score", clip, "--frames", "none"])
    assert "expected a positive integer or 'all'" in capsys.readouterr().err
