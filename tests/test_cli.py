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


@pytest.mark.parametrize(
    "field, value, expected",
    [("image_size", 100_000, "expected an int in 16..4096"), ("layers", [-1, 999], "numbered from 1")],
)
def test_a_head_config_out_of_range_is_one_line_naming_field_value_range_and_file(
    capsys, photo_files, tiny_head_dir, tmp_path, field, value, expected
):
    import shutil

    bad = shutil.copytree(tiny_head_dir, tmp_path / "bad")
    raw = json.loads((bad / "config.json").read_text())
    raw["model"][field] = value
    (bad / "config.json").write_text(json.dumps(raw))
    code, out, err = run(capsys, str(photo_files["coffee"]), "--model", str(bad))
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"temu score: error: cannot load model '{bad}': {bad / 'config.json'}: ")
    assert f"{field}={value!r}: " in err and expected in err


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


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_attributes_add_one_column_each(capsys, folder, tiny_head_dir, tmp_path, suffix):
    out_file = tmp_path / f"scores{suffix}"
    args = [str(folder), "--model", str(tiny_head_dir), "--output", str(out_file), "-q"]
    assert run(capsys, *args, "--attributes", "sharpness,noise")[0] == 0
    text = out_file.read_text()
    if suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        assert list(rows[0]) == ["path", "score", "sharpness", "noise", "error"]
        parse = lambda v: float(v) if v else None  # noqa: E731
    else:
        rows = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines()]
        assert all(list(r) == ["path", "score", "sharpness", "noise", "error"] for r in rows)
        parse = lambda v: v  # noqa: E731
    good = [r for r in rows if not r["error"]]
    assert len(rows) == 6 and len(good) == 4
    assert all(parse(r["sharpness"]) is None and parse(r["noise"]) is None for r in rows if r["error"])
    expected = temu.explain(
        [r["path"] for r in good], model=temu.load(tiny_head_dir), attributes=["sharpness", "noise"]
    )
    for row, e in zip(good, expected):
        assert parse(row["score"]) == pytest.approx(e.score, abs=1e-5)
        assert parse(row["sharpness"]) == pytest.approx(e.attributes["sharpness"], abs=1e-5)
        assert parse(row["noise"]) == pytest.approx(e.attributes["noise"], abs=1e-5)


def test_attributes_without_a_value_mean_all_of_them(capsys, photo_files, tiny_head_dir):
    code, out, _ = run(capsys, str(photo_files["coffee"]), "--model", str(tiny_head_dir), "-q", "--attributes")
    header = out.splitlines()[0].split(",")
    assert code == 0 and header == ["path", "score", *temu.DEFAULT_ATTRIBUTES]
    assert all(0.0 <= float(v) <= 1.0 for v in out.splitlines()[1].split(",")[1:])


def test_maps_with_attributes_are_one_panel_per_image(capsys, photo_files, tiny_head_dir, tmp_path):
    maps = tmp_path / "panels"
    paths = [str(photo_files["coffee"]), str(photo_files["astronaut"])]
    args = [*paths, "--model", str(tiny_head_dir), "--maps", str(maps), "-q"]
    assert run(capsys, *args, "--attributes", "sharpness,noise")[0] == 0
    assert sorted(p.name for p in maps.iterdir()) == ["astronaut.png", "coffee.png"]
    with Image.open(maps / "astronaut.png") as panel, Image.open(photo_files["astronaut"]) as photo:
        # photo, quality, sharpness, noise in one row, each tile the photo's size (128 px, under the bound), + colour bar
        assert panel.format == "PNG" and photo.size == (128, 128)
        assert 4 * 128 < panel.width < 4 * 128 + 250 and 128 < panel.height < 128 + 80
    assert run(capsys, *args, "--attributes")[0] == 0  # all seven: 9 tiles in two rows
    with Image.open(maps / "astronaut.png") as panel:
        assert 2 * 128 < panel.height < 2 * (128 + 80)


def test_unknown_attribute_is_a_usage_error_before_the_model_loads(capsys, photo_files, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(photo_files["coffee"]), "--model", str(tmp_path / "none"), "--attributes", "sharpnes"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "Did you mean sharpness" in err
    assert "dict" not in err  # a Python-only way to give other prompts; the command line has none


def test_number_options_refuse_what_is_not_a_usable_number():
    import argparse

    from temu.cli.args import fraction, non_negative_float, non_negative_int, positive_float, positive_int

    assert (positive_int("3"), non_negative_int("0"), fraction("0.25")) == (3, 0, 0.25)
    assert (positive_float("0.5"), non_negative_float("0")) == (0.5, 0.0)
    cases = [
        (positive_int, "0", "a positive integer"),
        (positive_int, "2.5", "a positive integer"),
        (non_negative_int, "-1", "an integer >= 0"),
        (fraction, "1", "a fraction between 0 and 1 (exclusive)"),
        (fraction, "nan", "a fraction between 0 and 1 (exclusive)"),
        (positive_float, "nan", "a positive number"),
        (positive_float, "inf", "a positive number"),
        (positive_float, "x", "a positive number"),
        (non_negative_float, "inf", "a number >= 0"),
        (non_negative_float, "-0.5", "a number >= 0"),
    ]
    for parse, text, expected in cases:
        with pytest.raises(argparse.ArgumentTypeError) as info:
            parse(text)
        assert str(info.value) == f"expected {expected}, got {text!r}"
