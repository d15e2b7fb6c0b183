"""Tests for temu.data (formats, records, splits, checks, dataset) and temu.MOSScale: pyiqa CSV formats, splits, checks, scale, Dataset."""

from __future__ import annotations

import csv
import json
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from temu.data import (
    DATASET_FORMATS,
    IQADataset,
    IQARecord,
    MOSScale,
    apply_split,
    check_records,
    column_split,
    get_format,
    random_split,
    read_records,
    resolve_format,
    write_split_file,
)


def make_image(path: Path, value: int = 128) -> Path:
    """A tiny RGB image; the format follows the file extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), (value, value // 2, 255 - value)).save(path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ------------------------------------------------------------ the 8 formats
#
# Each case: format key, image root below the datasets folder (pyiqa's layout),
# CSV header exactly as pyiqa's meta-info file, rows, and for each row the image
# file expected (relative to the image root) and the score expected.

FORMAT_CASES = {
    "koniq10k": (
        "koniq10k/512x384",
        [
            "img_name",
            "mos",
            "std",
            "c1",
            "c2",
            "c3",
            "c4",
            "c5",
            "c_total",
            "official_split",
        ],
        [
            [
                "10004473376.jpg",
                77.3836206897,
                0.527,
                0.0,
                0.0,
                0.238,
                0.695,
                0.066,
                105,
                "train",
            ],
            [
                "10007357496.jpg",
                68.7285714286,
                0.580,
                0.0,
                0.031,
                0.468,
                0.489,
                0.010,
                96,
                "test",
            ],
            [
                "10043785683.jpg",
                71.2043269231,
                0.497,
                0.0,
                0.0,
                0.433,
                0.566,
                0.0,
                106,
                "val",
            ],
        ],
    ),
    "spaq": (
        "SPAQ/TestImage",
        # the real file repeats 'Brightness' (attribute score and EXIF tag)
        [
            "Image name",
            "MOS",
            "Brightness",
            "Colorfulness",
            "Contrast",
            "Noisiness",
            "Sharpness",
            "Animal",
            "Focal length",
            "Brightness",
            "Time0",
            "Time1",
        ],
        [
            [
                "00001.jpg",
                48.86,
                47.43,
                55.57,
                55.71,
                37.86,
                42.57,
                0.0,
                4.2,
                -1.21,
                -0.97,
                -0.26,
            ],
            [
                "00002.jpg",
                62.5,
                55.38,
                67.13,
                53.13,
                57.5,
                47.5,
                0.0,
                4.04,
                3.0,
                -1.0,
                0.0,
            ],
        ],
    ),
    "livec": (
        "LIVEC/Images",
        ["img_name", "mos", "std"],
        [[f"t{i}.bmp", 50.0 + i, 18.0] for i in range(1, 8)]
        + [
            ["100.bmp", 32.56107532210109, 19.12],
            ["1000.JPG", 66.35954917017587, 20.2],
        ],
    ),
    "kadid10k": (
        "kadid10k/images",
        ["ref_name", "dist_name", "dmos", "std"],
        [
            ["I01.png", "I01_01_01.png", 4.57, 0.496],
            ["I01.png", "I01_01_03.png", 2.67, 0.789],
        ],
    ),
    "csiq": (
        "CSIQ/dst_imgs",
        ["ref_name", "dist_name", "dmos"],
        [
            ["1600.png", "1600.AWGN.1.png", 0.061989],
            ["1600.png", "1600.JPEG.5.png", 0.687127],
        ],
    ),
    "live": (
        "LIVEIQA_release2",
        ["ref_name", "dist_name", "mos"],
        [
            ["refimgs/studentsculpture.bmp", "jp2k/img2.bmp", 28.00384535689855],
            ["refimgs/rapids.bmp", "fastfading/img3.bmp", 34.01073628022137],
        ],
    ),
    "flive": (
        "FLIVE_Database/database",
        ["img_name/patch_name", "mos", "official_split"],
        [
            ["voc_emotic_ava/AVA__149.jpg", 70.2, "train"],
            ["blur_dataset/out_of_focus0607.jpg", 41.0, "test"],
            ["voc_emotic_ava/AVA__149_patch_0.jpg", 68.9, "train"],
        ],
    ),
    "agiqa3k": (
        "AGIQA-3K",
        [
            "name",
            "prompt",
            "adj1",
            "adj2",
            "style",
            "mos_quality",
            "std_quality",
            "mos_align",
            "std_align",
        ],
        [
            [
                "AttnGAN_normal_000.jpg",
                "statue of a man",
                "",
                "",
                "",
                1.5,
                0.6,
                2.9,
                0.7,
            ],
            [
                "midjourney_lowstep_019.jpg",
                "a cat, sitting; detailed",
                "fierce",
                "",
                "anime",
                3.9,
                0.5,
                4.1,
                0.6,
            ],
        ],
    ),
}

EXPECTED_SKIP = {"livec": 7}


def lay_out(tmp_path: Path, key: str) -> tuple[Path, Path, Path]:
    """A dataset folder as pyiqa lays it out for FORMAT_CASES[key]: (meta-info CSV, image root, reference root)."""
    root_rel, header, rows = FORMAT_CASES[key]
    fmt = DATASET_FORMATS[key]
    root = tmp_path / "datasets" / root_rel
    ref_root = root.parent / "src_imgs" if key == "csiq" else root
    for row in rows[EXPECTED_SKIP.get(key, 0) :]:
        make_image(root / row[header.index(fmt.path_col)])
    if fmt.ref_col:  # FR datasets: references where pyiqa expects them (temu does not read them)
        for row in rows:
            make_image(ref_root / row[header.index(fmt.ref_col)])
    return write_csv(tmp_path / "meta_info" / f"{key}.csv", header, rows), root, ref_root


@pytest.mark.parametrize("key", sorted(FORMAT_CASES))
def test_each_pyiqa_format_parses(tmp_path, key):
    _, header, rows = FORMAT_CASES[key]
    fmt = DATASET_FORMATS[key]
    skip = EXPECTED_SKIP.get(key, 0)
    path_i, mos_i = header.index(fmt.path_col), header.index(fmt.mos_col)
    csv_path, root, _ = lay_out(tmp_path, key)

    records = read_records(csv_path, root, format=key)

    kept = rows[skip:]
    assert [r.path for r in records] == [root / row[path_i] for row in kept]
    assert [r.mos for r in records] == pytest.approx([float(row[mos_i]) for row in kept])
    assert [r.row for r in records] == list(range(2 + skip, 2 + len(rows)))
    assert all(r.path.is_absolute() for r in records)
    assert check_records(records) == []


def test_format_directions_and_keys():
    assert DATASET_FORMATS["agiqa3k"].pyiqa_key is None  # directions of the others: next test, from pyiqa
    assert all(f.layout and f.name == k for k, f in DATASET_FORMATS.items())
    assert get_format("KonIQ-10k").name == "koniq10k"
    assert get_format("CLIVE").name == "livec"
    assert get_format("AGIQA-3K").name == "agiqa3k"
    with pytest.raises(ValueError, match="unknown dataset format 'tid9999'.*koniq10k"):
        get_format("tid9999")
    with pytest.raises(TypeError):
        DATASET_FORMATS["x"] = DATASET_FORMATS["live"]  # read-only registry


@pytest.mark.parametrize("key", sorted(set(FORMAT_CASES) - {"agiqa3k"}))  # not in pyiqa
def test_each_format_reads_what_pyiqa_reads(tmp_path, monkeypatch, key):
    """temu reads a meta-info CSV by column names, pyiqa by column positions. On the same files, the
    dataset class pyiqa's default_dataset_configs.yml names for the dataset gives the same images and
    scores in the same order, and temu's score direction and range are pyiqa's."""
    pyiqa = pytest.importorskip("pyiqa")
    from PIL import ImageFile
    from pyiqa.data import build_dataset

    # importing pyiqa's dataset modules sets Pillow's global LOAD_TRUNCATED_IMAGES = True (ava_dataset.py);
    # put it back afterwards, or temu's checks stop seeing truncated files in later tests
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", ImageFile.LOAD_TRUNCATED_IMAGES)

    fmt = DATASET_FORMATS[key]
    info = pyiqa.get_dataset_info(fmt.pyiqa_key)
    assert fmt.lower_better is bool(info["lower_better"])
    assert fmt.mos_range == tuple(float(v) for v in info["mos_range"])
    csv_path, root, ref_root = lay_out(tmp_path, key)
    # every row, unnormalised: none of pyiqa's split or resize options
    opt = {k: v for k, v in info.items() if k not in ("split_index", "split_file", "phase", "augment")}
    opt |= {"meta_info_file": str(csv_path), "dataroot_target": str(root), "dataroot_ref": str(ref_root)}
    theirs = build_dataset(opt)
    items = [theirs[i] for i in range(len(theirs))]
    ours = read_records(csv_path, root, format=key)
    assert [Path(item["img_path"]) for item in items] == [r.path for r in ours]
    assert [float(item["mos_label"]) for item in items] == pytest.approx([r.mos for r in ours], rel=1e-6)


def test_format_on_wrong_csv_is_reported(tmp_path):
    _, header, rows = FORMAT_CASES["spaq"]
    csv_path = write_csv(tmp_path / "spaq.csv", header, rows)
    with pytest.raises(ValueError, match=r"does not look like the KonIQ-10k.*'Image name'"):
        read_records(csv_path, tmp_path, format="koniq10k")


def test_format_columns_can_be_overridden(tmp_path):
    _, header, rows = FORMAT_CASES["agiqa3k"]
    csv_path = write_csv(tmp_path / "data.csv", header, rows)
    records = read_records(csv_path, tmp_path, format="agiqa3k", mos_col="MOS_ALIGN")
    assert [r.mos for r in records] == [2.9, 4.1]


# ------------------------------------------------------------- generic CSVs


def test_generic_detection(tmp_path):
    make_image(tmp_path / "imgs" / "a.png")
    csv_path = write_csv(tmp_path / "x.csv", ["Image", "Score", "std"], [["imgs/a.png", 3.5, 1]])
    fmt = resolve_format(csv_path)
    assert (fmt.name, fmt.path_col, fmt.mos_col, fmt.lower_better) == (
        "generic",
        "Image",
        "Score",
        False,
    )
    (record,) = read_records(csv_path, tmp_path)
    assert record == IQARecord(tmp_path / "imgs" / "a.png", 3.5, 2)


def test_generic_explicit_columns(tmp_path):
    csv_path = write_csv(tmp_path / "x.csv", ["file_id", "rating", "name"], [["a.png", "7", "x"]])
    (record,) = read_records(csv_path, tmp_path, path_col="FILE_ID", mos_col="rating")
    assert record.path == tmp_path / "a.png" and record.mos == 7.0
    with pytest.raises(
        ValueError,
        match=r"no mos column named 'quality'.*\['file_id', 'rating', 'name'\]",
    ):
        read_records(csv_path, tmp_path, path_col="file_id", mos_col="quality")


def test_generic_missing_column_lists_header(tmp_path):
    csv_path = write_csv(tmp_path / "x.csv", ["foo", "bar"], [["a.png", 1]])
    with pytest.raises(ValueError, match=r"could not find the path column.*\['foo', 'bar'\]"):
        read_records(csv_path, tmp_path)


def test_generic_ambiguous_columns(tmp_path):
    csv_path = write_csv(tmp_path / "x.csv", ["image_name", "MOS", "MOS_zscore"], [["a.png", 50, 0.1]])
    with pytest.raises(ValueError, match=r"2 columns could be the mos column: \['MOS', 'MOS_zscore'\]"):
        read_records(csv_path, tmp_path)
    (record,) = read_records(csv_path, tmp_path, mos_col="MOS_zscore")
    assert record.mos == 0.1


def test_generic_refuses_to_guess_dmos_direction(tmp_path):
    fr = write_csv(tmp_path / "fr.csv", ["ref_name", "dist_name", "mos"], [["r.bmp", "d.bmp", 30]])
    with pytest.raises(ValueError, match="full-reference meta-info.*format=NAME"):
        read_records(fr, tmp_path)
    dmos = write_csv(tmp_path / "d.csv", ["image", "dmos"], [["d.bmp", 30]])
    with pytest.raises(ValueError, match="'dmos' is lower-is-better differs"):
        read_records(dmos, tmp_path)
    fmt = resolve_format(dmos, mos_col="dmos", lower_better=True)
    assert (fmt.mos_col, fmt.lower_better) == ("dmos", True)
    assert read_records(dmos, tmp_path, format=fmt)[0].mos == 30.0  # the CLI's path
    assert read_records(dmos, tmp_path, mos_col="dmos")[0].mos == 30.0


def test_tab_separated_and_bom(tmp_path):
    csv_path = tmp_path / "x.tsv"
    csv_path.write_text("\ufeffimage\tmos\na.png\t2.5\n\nb.png\t3\n", encoding="utf-8")
    records = read_records(csv_path, tmp_path)
    assert [(r.path.name, r.mos, r.row) for r in records] == [
        ("a.png", 2.5, 2),
        ("b.png", 3.0, 4),
    ]


def test_missing_csv_and_image_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="CSV file not found"):
        read_records(tmp_path / "nope.csv", tmp_path)
    csv_path = write_csv(tmp_path / "x.csv", ["image", "mos"], [["a.png", 1]])
    with pytest.raises(FileNotFoundError, match="image root .* is not an existing folder"):
        read_records(csv_path, tmp_path / "missing")


# ----------------------------------------------------------------- bad rows


def test_bad_rows_are_reported_with_row_numbers(tmp_path):
    make_image(tmp_path / "good.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not an image")
    make_image(tmp_path / "good2.png")
    rows = [
        ["good.png", 3.0],  # line 2
        ["missing.png", 3.0],  # line 3
        ["empty.jpg", 3.0],  # line 4
        ["notes.jpg", 3.0],  # line 5
        ["good2.png", "abc"],  # line 6
        ["good2.png", ""],  # line 7
        ["", 2.0],  # line 8
        ["missing2.png", "n/a"],  # line 9: two problems, one row
    ]
    csv_path = write_csv(tmp_path / "x.csv", ["image", "mos"], rows)
    records = read_records(csv_path, tmp_path)
    assert len(records) == len(rows)  # parse failures do not drop or raise

    bad = {b.row: b.reason for b in check_records(records)}
    assert sorted(bad) == [3, 4, 5, 6, 7, 8, 9]
    assert "not found" in bad[3]
    assert "0 bytes" in bad[4]
    assert "not readable as an image" in bad[5]
    assert "score 'abc' is not a number" in bad[6] and "the CSV cell is empty" in bad[7]
    assert "folder" in bad[8]
    assert "not found" in bad[9] and "score 'n/a' is not a number" in bad[9]


@pytest.mark.parametrize(
    "cell, says",
    [
        ("3,5", "score '3,5' is not a number: write the decimal separator as '.' (3.5)"),
        ("14%", "score '14%' is not a number (expected a decimal number such as 3.5"),
        ("1e400", "score '1e400' is not a finite number (read as inf)"),
        (" ", "score is missing: the CSV cell is empty"),
    ],
)
def test_a_score_that_is_not_a_number_is_quoted_with_what_to_write(tmp_path, cell, says):
    make_image(tmp_path / "a.png")
    csv_path = tmp_path / "x.csv"
    csv_path.write_text(f'image,mos\na.png,"{cell}"\n')
    (bad,) = check_records(read_records(csv_path, tmp_path))
    assert bad.row == 2 and says in bad.reason, bad.reason


def test_full_check_decodes_images(tmp_path):
    path = make_image(tmp_path / "cut.png", 10)
    Image.new("RGB", (64, 64)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut
    records = [IQARecord(path, 1.0, 2)]
    assert check_records(records) == []  # header-only check is cheap and misses this
    (bad,) = check_records(records, full=True)
    assert bad.row == 2 and "truncated" in bad.reason  # the loader's own message


# ------------------------------------------------------------------- splits


def _records(n: int, root: Path = Path("/data")) -> list[IQARecord]:
    return [IQARecord(root / f"{i}.png", float(i), i + 2) for i in range(n)]


def test_split_file_round_trip(tmp_path):
    records = _records(10)
    split_path = tmp_path / "split.pkl"
    write_split_file(
        split_path,
        {
            1: {"train": [0, 2, 4, 6], "val": [1, 3], "test": [5, 7]},
            2: {"train": [9, 8], "val": [0]},
        },
    )
    parts = apply_split(records, split_path, 1)
    assert {k: [r.mos for r in v] for k, v in parts.items()} == {
        "train": [0, 2, 4, 6],
        "val": [1, 3],
        "test": [5, 7],
    }
    parts2 = apply_split(records, split_path, "2")  # CLI strings work for int keys
    assert [r.mos for r in parts2["train"]] == [9, 8] and parts2["test"] == []
    with pytest.raises(ValueError, match=r"no split 3; the file has splits \[1, 2\]"):
        apply_split(records, split_path, 3)


def test_split_file_written_like_pyiqa(tmp_path):
    # pyiqa's scripts pickle.dump a plain dict; numpy integers must load too
    split_path = tmp_path / "koniq10k_official.pkl"
    with split_path.open("wb") as handle:
        pickle.dump({1: {"train": list(np.arange(3)), "val": [3], "test": [4]}}, handle)
    parts = apply_split(_records(5), split_path, 1)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [3, 1, 1]


def test_split_file_errors(tmp_path):
    records = _records(4)
    path = tmp_path / "s.pkl"
    write_split_file(path, {1: {"train": [0, 9]}})
    with pytest.raises(ValueError, match=r"index 9, but there are 4 records"):
        apply_split(records, path, 1)
    write_split_file(path, {1: {"train": [0, 1], "test": [1]}})
    with pytest.raises(ValueError, match="index 1 is in both train and test"):
        apply_split(records, path, 1)
    path.write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(ValueError, match="may only hold dicts, lists and integers"):
        apply_split(records, path, 1)
    with pytest.raises(ValueError, match="parts"):
        write_split_file(path, {1: {"training": [0]}})


def test_livec_split_indices_count_after_the_skipped_rows(tmp_path):
    root_rel, header, rows = FORMAT_CASES["livec"]
    root = tmp_path / root_rel
    root.mkdir(parents=True)
    csv_path = write_csv(tmp_path / "livec.csv", header, rows)
    records = read_records(csv_path, root, format="livec")
    split_path = tmp_path / "livechallenge_seed123.pkl"
    write_split_file(split_path, {1: {"train": [1], "val": [0]}})
    parts = apply_split(records, split_path, 1)
    assert parts["val"][0].path.name == "100.bmp"  # index 0 = first row after t1..t7


def test_column_split(tmp_path):
    _, header, rows = FORMAT_CASES["koniq10k"]
    csv_path = write_csv(tmp_path / "koniq.csv", header, rows)
    records = read_records(csv_path, tmp_path, format="koniq10k")
    parts = column_split(csv_path, records, "official_split")
    assert [[r.path.name for r in parts[p]] for p in ("train", "val", "test")] == [
        ["10004473376.jpg"],
        ["10043785683.jpg"],
        ["10007357496.jpg"],
    ]
    with pytest.raises(ValueError, match=r"no split column 'ratio802_seed123_split_01'.*official_split"):
        column_split(csv_path, records, 1)


def test_random_split_is_deterministic_and_disjoint():
    records = _records(100)
    train, val = random_split(records, 0.2, seed=7)
    assert (train, val) == random_split(records, 0.2, seed=7)
    assert len(val) == 20 and len(train) == 80
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(records)
    assert train == sorted(train, key=records.index)  # input order kept
    assert random_split(records, 0.2, seed=8)[1] != val


def test_random_split_groups_and_errors():
    records = _records(30)
    train, val = random_split(records, 0.3, seed=1, group_key=lambda r: int(r.mos) // 3)
    val_groups = {int(r.mos) // 3 for r in val}
    assert len(val_groups) == 3
    assert not any(int(r.mos) // 3 in val_groups for r in train)
    with pytest.raises(ValueError, match="between 0 and 1"):
        random_split(records, 1.0, seed=0)
    with pytest.raises(ValueError, match="at least 2 records"):
        random_split(records[:1], 0.5, seed=0)


# -------------------------------------------------------------------- scale


def test_mos_scale_fit_and_round_trip():
    records = [IQARecord(Path(f"/{i}.png"), m, i) for i, m in enumerate([20.0, 60.0, 100.0])]
    scale = MOSScale.fit([r.mos for r in records])
    assert (scale.low, scale.high, scale.lower_better) == (20.0, 100.0, False)
    values = np.array([20.0, 60.0, 100.0])
    assert scale.normalise(values) == pytest.approx([0.0, 0.5, 1.0])
    assert scale.denormalise(scale.normalise(values)) == pytest.approx(values)
    assert scale.normalise(60) == 0.5 and isinstance(scale.normalise(60), float)
    assert scale.normalise([20, 100]).tolist() == [0.0, 1.0]
    tensor = scale.normalise(torch.tensor([60.0]))
    assert isinstance(tensor, torch.Tensor) and tensor.item() == pytest.approx(0.5)


def test_mos_scale_flips_dmos():
    scale = MOSScale(0.0, 1.0, lower_better=True)  # CSIQ DMOS range
    assert scale.normalise(np.array([0.0, 0.25, 1.0])) == pytest.approx([1.0, 0.75, 0.0])
    assert scale.denormalise(np.array([1.0, 0.75, 0.0])) == pytest.approx([0.0, 0.25, 1.0])
    dmos = np.array([10.0, 30.0, 50.0])
    live = MOSScale(10.0, 50.0, True)
    assert np.all(np.diff(live.normalise(dmos)) < 0)  # worse DMOS -> lower score


def test_mos_scale_dict_and_errors():
    scale = MOSScale(1.0, 5.0, True)
    assert MOSScale.from_dict(json.loads(json.dumps(scale.to_dict()))) == scale
    with pytest.raises(ValueError, match="keys"):
        MOSScale.from_dict({"low": 1.0, "high": 2.0})
    with pytest.raises(ValueError, match="high must be greater than low"):
        MOSScale(3.0, 3.0)
    with pytest.raises(ValueError, match="not finite numbers, first at position 1"):
        MOSScale.fit([1.0, float("nan")])


# ------------------------------------------------------------------ dataset


class CountingLoader:
    """Stands in for a real image loader; counts calls."""

    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, path: Path) -> torch.Tensor:
        self.calls.append(path)
        return torch.zeros(3, 8, 8)


def test_dataset_items_and_batches():
    records = [IQARecord(Path(f"/img/{i}.png"), m, i + 2) for i, m in enumerate([1.0, 3.0, 5.0])]
    load = CountingLoader()
    dataset = IQADataset(records, load, MOSScale(1.0, 5.0))
    image, target, index = dataset[1]
    assert image.shape == (3, 8, 8) and index == 1
    assert target.dtype == torch.float32 and target.shape == () and target.item() == 0.5
    assert load.calls == [Path("/img/1.png")]
    images, targets, indices = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert images.shape == (3, 3, 8, 8)
    assert targets.tolist() == [0.0, 0.5, 1.0] and indices.tolist() == [0, 1, 2]


def test_dataset_never_holds_decoded_images(tmp_path):
    """Each access decodes again, and what DataLoader workers receive (the pickled dataset) stays as
    small as the records after every image was read: no decoded image is kept."""
    from temu.images.transforms import InputSize

    records = [IQARecord(make_image(tmp_path / f"{i}.png", 40 * i), float(i), i + 2) for i in range(4)]
    load = CountingLoader()
    counted = IQADataset(records, load, MOSScale(0.0, 3.0))
    for _ in range(2):
        for i in range(len(counted)):
            counted[i]
    assert len(load.calls) == 8  # every access loads again

    dataset = IQADataset.for_model(records, InputSize(64, (8, 8)), MOSScale(0.0, 3.0))
    before = len(pickle.dumps(dataset))
    images = [dataset[i][0] for i in range(len(dataset))]
    assert all(image.shape == (3, 64, 64) for image in images)
    assert len(pickle.dumps(dataset)) == before < images[0].numel() * 4  # smaller than one decoded image


def test_dataset_rejects_bad_input():
    good = IQARecord(Path("/a.png"), 1.0, 2)
    with pytest.raises(ValueError, match="CSV row 3"):
        IQADataset(
            [good, IQARecord(Path("/b.png"), float("nan"), 3)],
            CountingLoader(),
            MOSScale(0.0, 1.0),
        )
    dataset = IQADataset([good], lambda path: Image.new("RGB", (2, 2)), MOSScale(0.0, 1.0))
    with pytest.raises(TypeError, match="must return a torch.Tensor"):
        dataset[0]


# ------------------------------------------- checks refuse what the loader refuses; duplicates; groups


def _float_tiff(path: Path) -> Path:
    """A 32-bit float TIFF (PIL mode 'F'): Pillow opens and decodes it, temu's reader refuses it."""
    Image.fromarray(np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)).save(path)
    return path


def test_checks_refuse_every_image_the_loader_refuses(tmp_path):
    from temu.errors import ImageReadError
    from temu.images.decode import read_image

    cut = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # header intact, pixel data cut
    images = {
        "rgb.png": make_image(tmp_path / "rgb.png"),
        "gray16.png": tmp_path / "gray16.png",
        "float.tif": _float_tiff(tmp_path / "float.tif"),
        "cut.png": cut,
    }
    Image.fromarray(np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).save(images["gray16.png"])
    records = [IQARecord(path, 1.0, i + 2) for i, path in enumerate(images.values())]
    full = {b.path.name: b.reason for b in check_records(records, full=True)}
    header = {b.path.name: b.reason for b in check_records(records)}
    for name, path in images.items():
        try:
            read_image(path)
            loader_refuses = False
        except ImageReadError:
            loader_refuses = True
        assert (name in full) == loader_refuses, (name, full)
    assert set(full) == {"float.tif", "cut.png"}
    assert set(header) == {"float.tif"}  # the header tells the pixel format; only decoding finds the cut
    assert "mode 'F'" in header["float.tif"] and "mode 'F'" in full["float.tif"]


def test_permission_denied_and_fifo_are_named_as_such(tmp_path, monkeypatch):
    import builtins
    import os

    locked = make_image(tmp_path / "locked.png")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    real_open = builtins.open

    def deny(file, *args, **kwargs):  # chmod 000 does not stop root, who runs the tests here
        if os.fspath(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    records = [IQARecord(locked, 1.0, 2), IQARecord(fifo, 1.0, 3)]
    for full in (False, True):
        reasons = [b.reason for b in check_records(records, full=full)]
        assert reasons[0].startswith("permission denied"), reasons
        assert "FIFO" in reasons[1] and "empty" not in reasons[1], reasons
        assert not any("corrupt" in r or "not readable" in r for r in reasons), reasons


def test_duplicate_rows_are_bad_rows_and_never_in_train_and_val(tmp_path):
    from temu.data import DataOptions, drop_bad_rows

    a, b, c = (make_image(tmp_path / f"{n}.png") for n in "abc")
    records = [
        IQARecord(a, 3.0, 2),
        IQARecord(b, 1.0, 3),
        IQARecord(a, 3.0, 4),  # the same image with the same score
        IQARecord(b, 1.0000001, 5),  # the same image, another score (by a hair)
        IQARecord(c, float("nan"), 6),  # a bad row of its own ...
        IQARecord(c, 2.0, 7),  # ... so this is the only usable row of c
    ]
    bad = {x.row: x.reason for x in check_records(records)}
    assert sorted(bad) == [3, 4, 5, 6]
    assert "the same image as row 2" in bad[4]
    assert "different scores" in bad[3] and "1.0000001" in bad[3] and bad[3] == bad[5]

    options = DataOptions(csv=tmp_path / "x.csv", image_root=tmp_path, skip_bad=True)
    train, val = [IQARecord(a, 3.0, 2), IQARecord(b, 1.0, 3)], [IQARecord(a, 3.0, 4), IQARecord(c, 2.0, 7)]
    (train_kept, val_kept), dropped = drop_bad_rows([train, val], options=options, what="x", log=lambda m: None)
    assert train_kept == train and val_kept == [val[1]] and [d.row for d in dropped] == [4]
    # two CSVs whose rows share line numbers: only the repeat is dropped, named with its file
    same_line = [IQARecord(a, 3.0, 2)]
    (t, v), dropped = drop_bad_rows(
        [same_line, same_line], options=options, what="x", log=lambda m: None, sources=["--train t.csv", "--val v.csv"]
    )
    assert t == same_line and v == [] and "row 2 of --train t.csv" in dropped[0].reason


def _kadid_like(root: Path, refs: int = 6, per_ref: int = 5) -> Path:
    """A generic CSV laid out like the third-party KADID-10k CSVs: dis_img_path, dis_type, ref_img_path, score."""
    rows = []
    for r in range(1, refs + 1):
        for d in range(1, per_ref + 1):
            name = f"images/I{r:02d}_{d:02d}_01.png"
            make_image(root / name, value=10 * r + d)
            rows.append([name, ("GBLUR", "JPEG")[d % 2], f"images/I{r:02d}.png", round(5.0 - 0.7 * d + 0.01 * r, 2)])
    return write_csv(root / "kadid.csv", ["dis_img_path", "dis_type", "ref_img_path", "score"], rows)


def test_reference_column_keeps_each_reference_on_one_side(tmp_path):
    from temu.data import DataOptions, prepare_training_data
    from temu.errors import DataError

    csv_path = _kadid_like(tmp_path)
    header_ref = {r.row: r for r in read_records(csv_path, tmp_path)}
    with csv_path.open(newline="") as handle:
        ref_of = {i + 2: row["ref_img_path"] for i, row in enumerate(csv.DictReader(handle))}

    def split(**options):
        return prepare_training_data(
            DataOptions(csv=csv_path, image_root=tmp_path, **options), val_fraction=0.34, seed=0, log=print
        )

    data = split()
    train_refs, val_refs = {ref_of[r.row] for r in data.train}, {ref_of[r.row] for r in data.val}
    assert train_refs.isdisjoint(val_refs) and len(val_refs) == 2 and len(data.val) == 10
    assert data.summary()["grouped_by"] == "ref_img_path" and "'ref_img_path'" in data.split
    assert len(header_ref) == 30

    single = split(group=False)
    assert single.summary()["grouped_by"] is None and len(single.val) == 10
    assert {ref_of[r.row] for r in single.train} & {ref_of[r.row] for r in single.val}  # leaks, as asked
    by_type = split(group_column="dis_type")
    assert by_type.summary()["grouped_by"] == "dis_type"
    with pytest.raises(DataError, match="contradict"):
        split(group=False, group_column="dis_type")
    with pytest.raises(DataError, match="no group column named 'scene'"):
        split(group_column="scene")

    two = tmp_path / "two.csv"
    two.write_text(csv_path.read_text().replace("dis_type", "ref_name", 1))
    with pytest.raises(DataError, match=r"2 columns could name each row's reference image.*group_column=NAME"):
        prepare_training_data(DataOptions(csv=two, image_root=tmp_path), seed=0, log=print)
