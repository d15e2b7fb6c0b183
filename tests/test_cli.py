"""The `temu score` command: rows as scored, bad files reported, --strict, output formats, --maps."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

import temu
from temu.cli import main


@pytest.fixture
def folder(photo_files, tmp_path):
    """Four photographs plus a 0-byte image and a text file posing as an image."""
    d = photo_files["astronaut"].parent
    (d / "empty.jpg").write_bytes(b"")
    (d / "zz-notes.png").write_text("not an image")
    return d


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["score", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_folder_scores_good_files_reports_bad_ones_and_exits_zero(capsys, folder, tiny_head_dir):
    code, out, err = run(capsys, str(folder), "--model", str(tiny_head_dir), "--quiet")
    assert code == 0
    rows = list(csv.reader(out.splitlines()))
    assert rows[0] == ["path", "score"]
    assert [r[0].rsplit("/", 1)[-1] for r in rows[1:]] == ["astronaut.png", "chelsea.png", "coffee.png", "rocket.png"]
    expected = temu.score([r[0] for r in rows[1:]], model=temu.load(tiny_head_dir))
    assert [float(r[1]) for r in rows[1:]] == pytest.approx(expected, abs=1e-5)
    assert "empty.jpg: the file is empty (0 bytes)" in err and "zz-notes.png: not an image file" in err


def test_strict_exits_non_zero_when_a_file_is_bad(capsys, folder, tiny_head_dir):
    code, _, _ = run(capsys, str(folder), "--model", str(tiny_head_dir), "--quiet", "--strict")
    assert code == 1
    good = str(folder / "coffee.png")
    assert run(capsys, good, "--model", str(tiny_head_dir), "--quiet", "--strict")[0] == 0


def test_csv_output_keeps_every_row_including_failures(capsys, folder, tiny_head_dir, tmp_path):
    out_file = tmp_path / "out" / "scores.csv"
    code, stdout, err = run(
        capsys, str(folder), "--model", str(tiny_head_dir), "--output", str(out_file), "--batch-size", "2"
    )
    assert code == 0 and stdout == ""
    rows = list(csv.DictReader(out_file.open()))
    assert len(rows) == 6 and rows[0].keys() == {"path", "score", "error"}
    failed = [r for r in rows if r["error"]]
    assert len(failed) == 2 and all(r["score"] == "" for r in failed)
    assert "scored 4 image(s), 2 could not be read" in err


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_outputs(capsys, folder, tiny_head_dir, tmp_path, suffix):
    out_file = tmp_path / f"scores{suffix}"
    assert run(capsys, str(folder), "--model", str(tiny_head_dir), "--output", str(out_file), "-q")[0] == 0
    text = out_file.read_text()
    rows = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 6 and sum(r["score"] is None for r in rows) == 2
    assert all(set(r) == {"path", "score", "error"} for r in rows)


def test_maps_are_written_blended_over_each_image(capsys, photo_files, tiny_head_dir, tmp_path):
    maps = tmp_path / "maps"
    paths = [str(photo_files["coffee"]), str(photo_files["rocket"])]
    assert run(capsys, *paths, "--model", str(tiny_head_dir), "--maps", str(maps), "-q")[0] == 0
    assert sorted(p.name for p in maps.iterdir()) == ["coffee.png", "rocket.png"]
    with Image.open(maps / "coffee.png") as overlay, Image.open(photo_files["coffee"]) as original:
        assert overlay.size == original.size and overlay.mode == "RGB"


def test_unloadable_model_is_a_usage_level_failure(capsys, photo_files, tmp_path):
    code, _, err = run(capsys, str(photo_files["coffee"]), "--model", str(tmp_path / "missing-head"))
    assert code == 2 and "cannot load model" in err


def test_usage_errors_are_one_line_and_come_before_the_model_loads(capsys, photo_files, tmp_path):
    image, missing_model = str(photo_files["coffee"]), str(tmp_path / "no-such-head")
    (tmp_path / "folder.csv").mkdir()
    cases = [
        (["--output", str(tmp_path / "x.txt")], "--output must end in .csv, .jsonl, .json, got 'x.txt'"),
        (["--output", str(tmp_path / "folder.csv")], "is a folder"),
        (["--maps", str(photo_files["coffee"])], "is a file"),
    ]
    for extra, message in cases:
        assert main(["score", image, "--model", missing_model, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "cannot load model" not in err, err
    for extra in (["--batch-size", "0"], ["--workers", "-1"], ["--precision", "fp8"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["score", image, *extra])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("temu score: error:"), err


def test_presets_command_lists_shipped_presets(capsys):
    assert main(["presets"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["temu-iqa-i", "temu-iqa-s"]
