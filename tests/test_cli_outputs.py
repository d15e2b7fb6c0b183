"""`temu score`'s outputs and messages under hostile but real conditions: file names that are not
UTF-8 or hold line breaks, NaN, signals, broken pipes, existing and unwritable outputs, maps that
cannot be written or are drawn from huge photos, typo'd model paths, skipped entries."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import temu
import temu.errors
import temu.images.decode
from temu.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["score", *args])
    out, err = capsys.readouterr()
    return code, out, err


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity (as JavaScript's JSON.parse and most other parsers do)."""

    def refuse(constant: str):
        raise ValueError(f"bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def read_rows(path: Path) -> list[dict]:
    """The rows of a CSV, JSON Lines or JSON output, file names as surrogate-escaped str (see temu.cli.writers)."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
            return list(csv.DictReader(f))
    text = path.read_text(encoding="ascii")  # JSON outputs are ASCII: everything else is escaped
    if path.suffix == ".jsonl":
        return [strict_json(line) for line in text.splitlines()]
    return strict_json(text)


@pytest.fixture
def small_image(photos) -> Image.Image:
    return Image.fromarray(photos["coffee"]).resize((32, 24))


# ---------------------------------------------------------------- file names


@pytest.fixture
def byte_named(tmp_path, small_image) -> tuple[Path, list[bytes]]:
    """A folder of 12 images, 6 of them named with bytes that are not UTF-8 (Latin-1 names from an old disk)."""
    folder = tmp_path / "old-disk"
    folder.mkdir()
    names = [b"photo-%02d%s.png" % (i, b"-caf\xe9-\xff" if i % 2 else b"") for i in range(12)]
    try:
        for name in names:
            small_image.save(os.path.join(os.fsencode(folder), name))
    except OSError as err:  # file systems that insist on UTF-8 names (macOS)
        pytest.skip(f"this file system refuses non-UTF-8 names: {err}")
    return folder, names


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_names_that_are_not_utf8_are_written_in_every_row_and_read_back_as_their_bytes(
    capsys, byte_named, tiny_head_dir, tmp_path, suffix
):
    folder, names = byte_named
    out = tmp_path / f"scores{suffix}"
    code, _, err = run(capsys, str(folder), "--model", str(tiny_head_dir), "--output", str(out), "-q")
    assert code == 0, err
    rows = read_rows(out)
    assert len(rows) == 12 and not any(r["error"] for r in rows)
    assert sorted(os.path.basename(os.fsencode(r["path"])) for r in rows) == sorted(names)
    if suffix == ".csv":  # the bytes themselves are in the file
        assert b"photo-01-caf\xe9-\xff.png," in out.read_bytes()


def test_names_that_are_not_utf8_reach_stdout_as_their_bytes(byte_named, tiny_head_dir, monkeypatch):
    folder, names = byte_named
    raw = io.BytesIO()
    # a UTF-8 terminal or pipe, as Python sets up stdout outside the C locale: errors="strict"
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline=""))
    assert main(["score", str(folder), "--model", str(tiny_head_dir), "-q"]) == 0
    sys.stdout.flush()
    lines = raw.getvalue().split(b"\n")
    assert lines[0] == b"path,score" and len([line for line in lines[1:] if line]) == 12
    assert sorted(os.path.basename(line.rsplit(b",", 1)[0]) for line in lines[1:] if line) == sorted(names)


def test_line_breaks_in_names_do_not_split_csv_rows_and_formula_names_stay_as_they_are(
    capsys, tmp_path, small_image, tiny_head_dir
):
    folder = tmp_path / "odd"
    folder.mkdir()
    names = ["a\rb.png", "c\nd.png", "=1+2.png", "@sum.png", "plain.png"]
    for name in names:
        small_image.save(folder / name)
    for out in (tmp_path / "scores.csv", None):
        args = [str(folder), "--model", str(tiny_head_dir), "-q"]
        code, stdout, _ = run(capsys, *args, *(["--output", str(out)] if out else []))
        assert code == 0
        text = out.open(encoding="utf-8", newline="").read() if out else stdout
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert sorted(Path(r["path"]).name for r in rows) == sorted(names)
        assert all(float(r["score"]) > 0 for r in rows)


# ---------------------------------------------------------------- inputs the CLI must answer for


def test_an_unreadable_folder_is_an_error_row_naming_it_and_the_rest_is_scored(
    capsys, photo_files, tiny_head_dir, tmp_path, monkeypatch
):
    import temu.images.folders
    import temu.images.sources

    root = photo_files["coffee"].parent
    (root / "locked").mkdir()
    (root / "sub" / "locked-too").mkdir(parents=True)
    real = os.scandir

    def scandir(path):  # as chmod 000 does for a user other than root (the tests may run as root)
        if Path(path).name.startswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(temu.images.folders.os, "scandir", scandir)
    for args, locked in (
        ([str(root / "locked"), str(root)], ["locked"]),
        ([str(root), "-r"], ["locked", "locked-too"]),
    ):
        out = tmp_path / f"{len(locked)}.csv"
        code, _, err = run(capsys, *args, "--model", str(tiny_head_dir), "--output", str(out))
        rows = read_rows(out)
        bad = [r for r in rows if r["error"]]
        assert code == 0 and len(rows) - len(bad) == 4
        assert [Path(r["path"]).name for r in bad] == locked
        assert all("cannot list the folder (permission denied)" in r["error"] for r in bad) and locked[-1] in err


@pytest.mark.parametrize("output", [None, "scores.csv", "corpus/"])
def test_an_empty_path_is_a_usage_error_before_the_model_loads(capsys, tmp_path, output, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["", "--model", str(tmp_path / "no-such-head"), *(["--output", output] if output else [])]
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "empty path" in err and "cannot load model" not in err
    assert sorted(os.listdir(tmp_path)) == []


def test_the_summary_names_what_was_skipped(capsys, photo_files, tiny_head_dir):
    root = photo_files["coffee"].parent
    (root / "notes.txt").write_text("x")
    (root / "IMG_1.CR2").write_bytes(b"raw")
    (root / ".DS_Store").write_bytes(b"")
    code, _, err = run(capsys, str(root), "--model", str(tiny_head_dir))
    assert code == 0
    assert "temu: skipped 2 files without an image or video extension: IMG_1.CR2, notes.txt" in err
    assert "temu: skipped 1 hidden entry" in err
    assert "skipped" not in run(capsys, str(root), "--model", str(tiny_head_dir), "-q")[2]


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_the_writers_never_write_nan_or_infinity(capsys, photo_files, tiny_head_dir, tmp_path, monkeypatch, suffix):
    import temu.api

    def iter_scores(inputs, *args, **kwargs):  # what a corrupt head or an overflow could give
        values = [(math.nan, 0.5), (0.25, math.inf), (0.75, 0.5)]
        for i, (path, (score, sharpness)) in enumerate(zip(inputs, values)):
            yield temu.api.ScoreResult(i, path, score, None, attributes={"sharpness": sharpness})

    monkeypatch.setattr(temu.api, "iter_scores", iter_scores)
    out = tmp_path / f"scores{suffix}"
    paths = [str(photo_files[n]) for n in ("coffee", "rocket", "chelsea")]
    args = [*paths, "--model", str(tiny_head_dir), "--output", str(out), "--attributes", "sharpness"]
    code, _, err = run(capsys, *args)
    rows = read_rows(out)  # strict JSON: a bare NaN or Infinity fails here
    assert [r["path"] for r in rows] == paths
    assert "non-finite score" in rows[0]["error"] and "non-finite sharpness" in rows[1]["error"]
    assert [r["score"] in (None, "") for r in rows] == [True, True, False] and not rows[2]["error"]
    assert [r["sharpness"] in (None, "") for r in rows] == [False, True, False]
    assert "scored 1 image(s), 2 could not be read" in err
    assert run(capsys, *args, "--overwrite", "--strict")[0] == 1


def test_an_out_of_range_value_is_shown_with_the_digits_that_put_it_out(capsys):
    x = torch.full((1, 3, 8, 8), 0.5)
    x[0, 0, 0, 0] = 1.0000001
    with pytest.raises(temu.errors.InvalidInputError, match=r"found min 0\.5 and max 1\.0000001\b"):
        temu.images.sources.check_batch(x)
    x[0, 0, 0, 0] = -1e-7
    with pytest.raises(temu.errors.InvalidInputError, match=r"min -1e-07 and max 0\.5"):
        temu.images.sources.check_batch(x)


# ---------------------------------------------------------------- the output file


def test_an_existing_output_is_refused_without_overwrite_and_replaced_with_it(
    capsys, photo_files, tiny_head_dir, tmp_path
):
    out = tmp_path / "scores.csv"
    out.write_text("an earlier run\n")
    image = str(photo_files["coffee"])
    code, _, err = run(capsys, image, "--model", str(tmp_path / "no-such-head"), "--output", str(out))
    assert code == 2 and err.count("\n") == 1 and "exists; give --overwrite" in err and "cannot load" not in err
    assert out.read_text() == "an earlier run\n"
    assert run(capsys, image, "--model", str(tiny_head_dir), "--output", str(out), "--overwrite", "-q")[0] == 0
    assert [r["path"] for r in read_rows(out)] == [image]
    assert [p.name for p in tmp_path.iterdir() if "scores" in p.name] == ["scores.csv"]  # no temporary left


def slowed_scores(monkeypatch, after_first=None, delay: float = 0.0):
    """Wrap temu.api.iter_scores (which the command imports when it runs): call ``after_first()`` after
    the first result, sleep ``delay`` after each."""
    import temu.api

    real = temu.api.iter_scores

    def iter_scores(*args, **kwargs):
        for i, result in enumerate(real(*args, **kwargs)):
            yield result
            if i == 0 and after_first is not None:
                after_first()
            time.sleep(delay)

    monkeypatch.setattr(temu.api, "iter_scores", iter_scores)


def test_a_file_written_meanwhile_by_another_run_is_not_replaced_and_no_row_is_lost(
    capsys, photo_files, tiny_head_dir, tmp_path, monkeypatch
):
    out = tmp_path / "scores.json"
    slowed_scores(monkeypatch, after_first=lambda: out.write_text('["the other run"]\n'))
    images = [str(photo_files[n]) for n in ("coffee", "rocket", "chelsea")]
    code, _, err = run(capsys, *images, "--model", str(tiny_head_dir), "--output", str(out), "--batch-size", "1")
    assert out.read_text() == '["the other run"]\n'
    assert code == 1 and "appeared while scoring" in err and "scores.partial.json" in err
    assert [r["path"] for r in read_rows(tmp_path / "scores.partial.json")] == images


@pytest.mark.parametrize("target", ["output", "maps"])
def test_unwritable_places_are_usage_errors_before_the_model_loads(capsys, photo_files, tmp_path, target):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    where = ["--output", str(blocker / "scores.csv")] if target == "output" else ["--maps", str(blocker / "maps")]
    code, out, err = run(capsys, str(photo_files["coffee"]), "--model", str(tmp_path / "no-such-head"), *where)
    assert code == 2 and err.count("\n") == 1 and "a-file is a file, not a folder" in err, err
    assert "cannot load model" not in err


# ---------------------------------------------------------------- signals and pipes (real subprocesses)

SLOW_RUN = """
import sys, time
import temu.api
real = temu.api.iter_scores
def iter_scores(*args, **kwargs):
    for result in real(*args, **kwargs):
        yield result
        time.sleep(0.25)
temu.api.iter_scores = iter_scores
from temu.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def many_images(tmp_path, small_image) -> Path:
    """60 images (hard links to one PNG): enough that a slowed run is still going when it is stopped."""
    folder = tmp_path / "many"
    folder.mkdir()
    small_image.save(folder / "000.png")
    for i in range(1, 60):
        os.link(folder / "000.png", folder / f"{i:03d}.png")
    return folder


def slow_temu(argv: list[str], cwd: Path, *, sigint=signal.SIG_DFL, **kwargs) -> subprocess.Popen:
    """``temu`` in a child process with each result slowed; it starts with SIGINT set to ``sigint`` (SIG_DFL,
    as from a terminal, whatever this process has: as a background job of a script pytest starts with it ignored)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, *argv],
        cwd=cwd,
        env=env,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
        **kwargs,
    )


@pytest.fixture
def sigint_raises():
    """SIGINT as Python sets it when started from a terminal (KeyboardInterrupt); as a background job of a
    script Python starts with SIGINT ignored, and a signal this process sends itself would be ignored too."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def lines_in(folder: Path) -> int:
    total = 0
    for path in folder.iterdir():
        try:
            total += path.read_bytes().count(b"\n")
        except OSError:
            pass
    return total


@pytest.mark.parametrize("signum,suffix", [(signal.SIGTERM, ".json"), (signal.SIGINT, ".csv")])
def test_a_signal_mid_run_leaves_a_valid_file_one_line_and_the_shell_status(
    many_images, tiny_head_dir, tmp_path, signum, suffix
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    argv = ["score", str(many_images), "--model", str(tiny_head_dir), "--batch-size", "2", "-q"]
    proc = slow_temu([*argv, "--output", str(out_dir / f"scores{suffix}")], tmp_path, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while lines_in(out_dir) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert f"interrupted by {signal.Signals(signum).name}" in err
    partial = out_dir / f"scores.partial{suffix}"
    assert sorted(p.name for p in out_dir.iterdir()) == [partial.name]  # no --output: that means a complete run
    rows = read_rows(partial)
    assert 3 <= len(rows) < 60 and all(r["score"] not in (None, "") for r in rows)
    assert f"after {len(rows)} row(s)" in err


def test_an_interrupt_keeps_json_lines_valid_and_the_old_output_untouched(
    capsys, photo_files, tiny_head_dir, tmp_path, monkeypatch, sigint_raises
):
    handlers = [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)]
    out = tmp_path / "scores.jsonl"
    out.write_text('{"earlier": "run"}\n')
    slowed_scores(monkeypatch, after_first=lambda: os.kill(os.getpid(), signal.SIGINT))
    images = [str(photo_files[n]) for n in ("coffee", "rocket", "chelsea")]
    args = [*images, "--model", str(tiny_head_dir), "--output", str(out), "--overwrite", "--batch-size", "1"]
    code, _, err = run(capsys, *args)
    assert (
        code == 130
        and err == f"temu: interrupted by SIGINT after 1 row(s); they are in {tmp_path / 'scores.partial.jsonl'}\n"
    )
    assert out.read_text() == '{"earlier": "run"}\n'
    assert [r["path"] for r in read_rows(tmp_path / "scores.partial.jsonl")] == images[:1]
    assert [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)] == handlers  # given back


def test_a_run_started_with_sigint_ignored_keeps_ignoring_it_and_stops_on_sigterm(many_images, tiny_head_dir, tmp_path):
    """``nohup temu score ... &`` in a script, or after ``trap '' INT``: the shell asked for SIGINT to be ignored."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    argv = ["score", str(many_images), "--model", str(tiny_head_dir), "--batch-size", "2", "-q"]
    proc = slow_temu(
        [*argv, "--output", str(out_dir / "scores.csv")], tmp_path, sigint=signal.SIG_IGN, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while lines_in(out_dir) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    seen = lines_in(out_dir)
    while lines_in(out_dir) < seen + 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None and lines_in(out_dir) >= seen + 3, proc.communicate()[1]  # still scoring
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "interrupted by SIGTERM" in err and err.count("\n") == 1, err
    assert len(read_rows(out_dir / "scores.partial.csv")) >= seen + 2


def test_the_interrupt_guard_leaves_an_ignored_signal_ignored_and_gives_back_handlers(sigint_raises):
    from temu.cli.interrupts import Interrupted, InterruptGuard

    def mine(signum, frame):
        raise AssertionError("the guard's handler should be in place")

    before = signal.signal(signal.SIGTERM, mine)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with InterruptGuard() as guard:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == guard._handle
            os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing is raised, nothing recorded
            time.sleep(0.01)
            assert guard.pending is None
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is mine
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with pytest.raises(Interrupted) as stop, InterruptGuard():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert stop.value.exit_status == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_closed_pipe_ends_the_run_quietly(many_images, tiny_head_dir, tmp_path):
    argv = ["score", str(many_images), "--model", str(tiny_head_dir), "--batch-size", "2", "-q"]
    proc = slow_temu(argv, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == "path,score\n"  # `| head -1`
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode in (0, 141) and "Traceback" not in err and "BrokenPipe" not in err, err


# ---------------------------------------------------------------- quality maps


def test_a_map_that_cannot_be_written_is_that_images_problem_not_the_runs(capsys, photo_files, tiny_head_dir, tmp_path):
    maps = tmp_path / "maps"
    (maps / "coffee.png").mkdir(parents=True)  # something in the way of one map
    out = tmp_path / "scores.csv"
    paths = [str(photo_files[n]) for n in ("astronaut", "coffee", "rocket")]
    args = [*paths, "--model", str(tiny_head_dir), "--maps", str(maps), "--output", str(out)]
    code, _, err = run(capsys, *args)
    assert code == 0 and "no map for" in err and "coffee.png" in err and "1 map(s) could not be written" in err
    rows = read_rows(out)
    assert [Path(r["path"]).name for r in rows] == ["astronaut.png", "coffee.png", "rocket.png"]
    assert all(r["score"] and not r["error"] for r in rows)
    assert [r["map"] for r in rows] == [str(maps / "astronaut.png"), "", str(maps / "rocket.png")]
    assert (maps / "rocket.png").is_file()
    assert run(capsys, *args, "--overwrite", "--strict", "-q")[0] == 1


@pytest.mark.parametrize("suffix", [".csv", ".json", None])
def test_the_output_names_each_images_map(capsys, photo_files, tiny_head_dir, tmp_path, suffix):
    (tmp_path / "b").mkdir()
    twin = tmp_path / "b" / "coffee.png"  # same name, other folder: its map gets another name
    twin.write_bytes(photo_files["coffee"].read_bytes())
    maps = tmp_path / "maps"
    out = tmp_path / f"scores{suffix}" if suffix else None
    args = [str(photo_files["coffee"]), str(twin), "--model", str(tiny_head_dir), "--maps", str(maps), "-q"]
    code, stdout, _ = run(capsys, *args, *(["--output", str(out)] if out else []))
    assert code == 0
    rows = read_rows(out) if out else list(csv.DictReader(io.StringIO(stdout)))
    assert [(r["path"], r["map"]) for r in rows] == [
        (str(photo_files["coffee"]), str(maps / "coffee.png")),
        (str(twin), str(maps / "coffee-2.png")),
    ]
    assert all(Path(r["map"]).is_file() for r in rows)


def test_maps_are_drawn_from_a_bounded_copy_of_a_big_photo(capsys, photos, tiny_head_dir, tmp_path):
    big = tmp_path / "big.jpg"
    Image.fromarray(photos["astronaut"]).resize((3000, 2000)).save(big, quality=90)
    maps = tmp_path / "maps"
    assert run(capsys, str(big), "--model", str(tiny_head_dir), "--maps", str(maps), "-q")[0] == 0
    with Image.open(maps / "big.png") as overlay:
        assert overlay.size == (1024, 683)


def test_a_preview_is_bounded_upright_and_its_errors_name_the_file(photos, tmp_path):
    from temu.plots import read_preview

    upright = Image.fromarray(photos["coffee"]).resize((400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: shown after a 90-degree turn
    path = tmp_path / "turned.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    preview = read_preview(path, max_side=200)
    assert preview.shape == (3, 150, 200) and preview.dtype == torch.float32
    full = temu.images.decode.read_image(path)
    assert full.shape == (3, 300, 400)
    small = torch.nn.functional.interpolate(full[None], size=(150, 200), mode="bicubic", antialias=True)[0]
    assert (preview - small.clamp(0, 1)).abs().mean() < 0.03  # the same picture, the same way up
    assert read_preview(path, max_side=1024).shape == (3, 300, 400)  # small images keep their size
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(temu.errors.ImageReadError, match="bad.jpg"):
        read_preview(tmp_path / "bad.jpg")


# ---------------------------------------------------------------- --model


def test_a_local_looking_model_path_that_does_not_exist_is_no_such_folder(tmp_path, monkeypatch):
    import temu.model.hub

    calls = []
    monkeypatch.setattr(
        temu.model.hub, "download", lambda repo, *a, **k: calls.append(repo) or tmp_path / "config.json"
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for typo in ("runs/koniq", "./koniq", "runs/koniq/best", "~/koniq-head"):
        with pytest.raises(temu.errors.WeightsError, match="no such folder"):
            temu.model.hub.resolve_head_dir(typo)
    assert calls == []
    temu.model.hub.resolve_head_dir("someone/temu-koniq")  # org/name with no local 'someone': the Hub
    assert calls == ["someone/temu-koniq", "someone/temu-koniq"]


def test_the_model_path_message_reaches_the_command_line(capsys, photo_files, tmp_path, monkeypatch, hub_cache):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    code, _, err = run(capsys, str(photo_files["coffee"]), "--model", "runs/koniq-s")
    assert code == 2 and "runs/koniq-s: no such folder" in err and "Hugging Face cache" not in err
