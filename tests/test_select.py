"""temu select / temu.corpus.select: the rules, ties, error rows, outputs, new shards, bad inputs;
and temu.corpus.run from Python with attribute columns (local engine)."""

from __future__ import annotations

import csv
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow", reason="corpus mode needs pyarrow (pip install 'temu[corpus]')")
import pyarrow.parquet as pq  # noqa: E402
from corpus_testing import add_member, fake_scores, read_outputs  # noqa: E402

import temu  # noqa: E402
import temu.corpus  # noqa: E402
from temu.cli import main  # noqa: E402
from temu.errors import CorpusError, TeMuWarning  # noqa: E402

#: id -> score of the list corpus; ties at 0.7 (e, b, h) and 0.5 (c, a); f and j are error rows
LIST_SCORES = {"a": 0.5, "b": 0.7, "c": 0.5, "d": 0.9, "e": 0.7, "f": None, "g": 0.1, "h": 0.7, "i": 0.3, "j": None}


@pytest.fixture
def listed(tmp_path, monkeypatch):
    """A corpus output of a .txt list of ten names (not read: the scores are chosen), in two shards."""
    monkeypatch.chdir(tmp_path)
    order = ["e", "a", "j", "b", "c", "d", "f", "h", "g", "i"]  # the list's order: ties are not in id order
    (tmp_path / "list.txt").write_text("".join(f"{n}\n" for n in order))
    fake_scores(
        tmp_path / "scores",
        ["list.txt"],
        LIST_SCORES.get,
        attributes={"sharpness": lambda n: 1 - LIST_SCORES[n]},
        shard_size=5,
    )
    return tmp_path


def select_cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(["select", *args])
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_top_fraction_top_k_and_min_score_rank_best_first_with_ties_by_id(listed):
    top = temu.corpus.select(listed / "scores", top=0.5)  # 8 scored: ceil(0.5 * 8) = 4
    assert top.table.column("id").to_pylist() == ["d", "b", "e", "h"]
    assert top.table.column("rank").to_pylist() == [1, 2, 3, 4]
    assert (top.kept, top.scored, top.dropped, top.errors) == (4, 8, 4, 2)
    assert top.threshold == pytest.approx(0.7) and top.complete
    assert top.summary() == "kept 4 of 8 (threshold score >= 0.7), errors 2"
    cut = temu.corpus.select(listed / "scores", top_k=5)  # the tie at 0.5 is cut by id: a before c
    assert cut.table.column("id").to_pylist() == ["d", "b", "e", "h", "a"]
    assert temu.corpus.select(listed / "scores", top_k=100).kept == 8  # never an error row
    floor = temu.corpus.select(listed / "scores", min_score=0.5)
    assert floor.table.column("id").to_pylist() == ["d", "b", "e", "h", "a", "c"] and floor.threshold == 0.5
    assert temu.corpus.select(listed / "scores", top=1.0).table.column("id").to_pylist()[-1] == "g"
    by = temu.corpus.select(listed / "scores", top_k=3, by="sharpness")  # 1 - score: the worst first
    assert by.table.column("id").to_pylist() == ["g", "i", "a"] and by.table.column_names[1] == "sharpness"


def test_outputs_txt_csv_parquet_and_selection_json(listed, capsys):
    code, out, err = select_cli(capsys, str(listed / "scores"), "--top-k", "3")  # no --output: ids on stdout
    assert code == 0 and out == "d\nb\ne\n" and "kept 3 of 8 (threshold score >= 0.7), errors 2" in err
    for suffix in (".txt", ".csv", ".parquet"):
        target = listed / f"keep{suffix}"
        code, _, err = select_cli(capsys, str(listed / "scores"), "--top-k", "3", "--output", str(target))
        assert code == 0, err
        record = json.loads((listed / "keep.selection.json").read_text())
        assert record["rule"] == {"top_k": 3, "by": "score"} and record["threshold"] == pytest.approx(0.7)
        assert (record["kept"], record["dropped"], record["errors"]) == (3, 5, 2)
        assert record["scores"]["location"] == str(listed / "scores") and record["source"]["inputs"] == ["list.txt"]
        (listed / "keep.selection.json").unlink()
    assert (listed / "keep.txt").read_text() == "d\nb\ne\n"
    rows = list(csv.DictReader(io.StringIO((listed / "keep.csv").read_text())))
    assert [(r["id"], r["rank"]) for r in rows] == [("d", "1"), ("b", "2"), ("e", "3")]
    assert float(rows[0]["score"]) == pytest.approx(0.9)
    table = pq.read_table(listed / "keep.parquet")
    assert table.column_names == ["id", "score", "rank", "id_bytes"] and table.column("id").to_pylist() == [
        "d",
        "b",
        "e",
    ]


def test_ids_that_are_not_utf8_round_trip_through_the_outputs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"caf\xe9.png")
    (tmp_path / "list.txt").write_bytes(b"caf\xe9.png\nplain.png\n")
    fake_scores(tmp_path / "scores", ["list.txt"], lambda n: 0.9 if n == name else 0.1)
    for suffix in (".txt", ".csv"):
        assert main(["select", "scores", "--top-k", "2", "--output", f"keep{suffix}", "-q", "--overwrite"]) == 0
    assert (tmp_path / "keep.txt").read_bytes() == b"caf\xe9.png\nplain.png\n"
    with open(tmp_path / "keep.csv", encoding="utf-8", errors="surrogateescape", newline="") as f:
        assert [r["id"] for r in csv.DictReader(f)] == [name, "plain.png"]
    kept = temu.corpus.select("scores", top_k=1).table
    assert kept.column("id_bytes").to_pylist() == [b"caf\xe9.png"] and kept.column("id").to_pylist() == ["caf\\xe9.png"]
    # a tar member so named: its sample is found again and copied under the same bytes
    with tarfile.open("s.tar", "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        add_member(tar, os.fsdecode(b"caf\xe9.jpg"), b"jpeg bytes")
        add_member(tar, os.fsdecode(b"caf\xe9.txt"), b"a caption")
    fake_scores(tmp_path / "tar-scores", ["s.tar"], lambda n: 0.5)
    assert main(["select", "tar-scores", "--top", "1", "--write-shards", "new/", "-q"]) == 0
    with tarfile.open("new/000000.tar", encoding="utf-8", errors="surrogateescape") as tar:
        assert [(os.fsencode(m.name), tar.extractfile(m).read()) for m in tar] == [
            (b"caf\xe9.jpg", b"jpeg bytes"),
            (b"caf\xe9.txt", b"a caption"),
        ]


def make_tar(path: Path, samples: list[str], photo: bytes) -> None:
    with tarfile.open(path, "w") as tar:
        for key in samples:
            add_member(tar, f"{key}.json", json.dumps({"key": key}).encode())  # before the image: kept too
            add_member(tar, f"{key}.jpg", photo)
            add_member(tar, f"{key}.cls", key.encode())


def members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]


def test_write_shards_copies_every_member_of_kept_samples_in_input_order(tmp_path, monkeypatch, photo_files, capsys):
    monkeypatch.chdir(tmp_path)
    photo = photo_files["coffee"].read_bytes()
    make_tar(tmp_path / "00000.tar", ["s00", "s01", "s02", "s03"], photo)
    make_tar(tmp_path / "00001.tar", ["s10", "s11", "s12"], photo)
    (tmp_path / "photos").mkdir()
    for n in ("p1", "p2"):
        (tmp_path / "photos" / f"{n}.png").write_bytes(photo)
    table = pa.table({"key": ["t0", "t1", "t2", "t3"], "jpg": [photo] * 4, "extra": [0, 1, 2, 3]})
    pq.write_table(table, tmp_path / "table.parquet", row_group_size=3)
    values = {"s00": 0.9, "s01": 0.1, "s02": 0.8, "s03": 0.7, "s10": 0.95, "s11": 0.2, "s12": 0.85}
    values |= {"photos/p1.png": 0.1, "photos/p2.png": 0.99, "t0": 0.1, "t1": 0.9, "t2": 0.2, "t3": 0.8}
    inputs = ["00000.tar", "00001.tar", "photos/", "table.parquet"]
    fake_scores(tmp_path / "scores", inputs, values.get, shard_size=2)
    args = [str(tmp_path / "scores"), "--min-score", "0.75", "--write-shards", "new/", "--samples-per-shard", "2"]
    code, _, err = select_cli(capsys, *args)
    assert code == 0, err
    assert "folder and list inputs have no shards to copy" in err and "photos.txt" in err
    out = tmp_path / "new"
    assert sorted(p.name for p in out.iterdir()) == [
        "000000.tar",
        "000001.tar",
        "photos.txt",
        "selection.json",
        "table-00000.parquet",
    ]
    copied = [m for name in ("000000.tar", "000001.tar") for m in members(out / name)]
    originals = members(tmp_path / "00000.tar") + members(tmp_path / "00001.tar")
    kept = ["s00", "s02", "s10", "s12"]  # in input order, each with its .json and .cls
    assert copied == [m for m in originals if m[0].split(".")[0] in kept]
    assert [len(members(out / n)) for n in ("000000.tar", "000001.tar")] == [6, 6]  # 2 samples of 3 members
    subset = pq.read_table(out / "table-00000.parquet")
    assert subset.to_pylist() == [r for r in table.to_pylist() if r["key"] in ("t1", "t3")]
    assert (out / "photos.txt").read_text() == "photos/p2.png\n"
    record = json.loads((out / "selection.json").read_text())
    assert record["samples_per_shard"] == 2 and len(record["files"]) == 4
    # again over it: refused without --overwrite; with it, the earlier selection's files are replaced
    code, _, err = select_cli(capsys, *args)
    assert code == 2 and "is not empty" in err and "--overwrite" in err
    code, _, err = select_cli(capsys, args[0], "--top-k", "1", "--write-shards", "new/", "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["photos.txt", "selection.json"]


def test_write_shards_refuses_a_tar_that_changed_since_scoring(tmp_path, monkeypatch, photo_files, capsys):
    monkeypatch.chdir(tmp_path)
    make_tar(tmp_path / "00000.tar", ["a", "b"], photo_files["coffee"].read_bytes())
    fake_scores(tmp_path / "scores", ["00000.tar"], lambda n: 0.5)
    make_tar(tmp_path / "00000.tar", ["a", "b", "c"], photo_files["coffee"].read_bytes())
    code, _, err = select_cli(capsys, "scores", "--top", "1", "--write-shards", "new/")
    assert code == 2 and err.count("\n") == 1 and "00000.tar changed since it was scored" in err, err
    assert not (tmp_path / "new").exists()


def test_bad_inputs_are_one_line_exit_2_and_nothing_written(listed, capsys):
    scores = str(listed / "scores")
    (listed / "taken.txt").write_text("mine\n")
    cases = [
        ([scores, "--top", "1.5"], "--top: expected a fraction in (0, 1]"),
        ([scores, "--top", "0"], "--top: expected a fraction in (0, 1]"),
        ([scores, "--top-k", "2", "--by", "sharpnes"], "--by sharpnes: "),
        ([scores, "--top-k", "2", "--output", "taken.txt"], "exists; pass --overwrite"),
        ([scores, "--top-k", "2", "--output", "keep.json"], "expected a file ending in .txt, .csv, .parquet"),
        ([str(listed), "--top-k", "2"], "not the output folder of a corpus run"),
        # places that cannot be written: under a file, a URI scheme nobody knows (tracebacks before)
        ([scores, "--top-k", "2", "--output", "taken.txt/keep.txt"], "keep.txt: cannot be written"),
        ([scores, "--top-k", "2", "--write-shards", "taken.txt/new/"], "--write-shards taken.txt/new/: cannot be"),
        ([scores, "--top-k", "2", "--output", "nosuch://bucket/keep.txt"], "--output nosuch://bucket/keep.txt"),
    ]
    for args, message in cases:
        code, out, err = select_cli(capsys, *args)
        assert code == 2 and err.count("\n") == 1 and message in err and not out, (args, err)
    assert "it ranks by score, sharpness" in select_cli(capsys, scores, "--top-k", "2", "--by", "x")[2]
    assert sorted(p.name for p in listed.iterdir()) == ["list.txt", "scores", "taken.txt"]
    assert (listed / "taken.txt").read_text() == "mine\n"
    with pytest.raises(CorpusError, match=r"top=1.5: expected a fraction in \(0, 1\]"):
        temu.corpus.select(scores, top=1.5)
    with pytest.raises(CorpusError, match="give exactly one rule"):
        temu.corpus.select(scores, top=0.5, top_k=3)
    # an unfinished run: a warning saying how many shards are missing, or refused with --require-complete
    (listed / "scores" / "list-00001.parquet").unlink()
    (listed / "scores" / "_SUCCESS").unlink()
    with pytest.warns(TeMuWarning, match="1 of 2 shards have no output yet"):
        assert temu.corpus.select(scores, top=1.0).kept == 4
    code, out, err = select_cli(capsys, scores, "--top", "1", "--require-complete")
    assert code == 2 and err.count("\n") == 1 and "not a finished run (1 of 2 shards" in err and not out
    code, out, err = select_cli(capsys, scores, "--top", "1")
    assert code == 0 and "temu: warning:" in err and "1 of 2 shards" in err


def test_run_from_python_with_attribute_columns(tmp_path, photo_files, tiny_head_dir):
    names = sorted(photo_files)
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in names:
        (folder / f"{n}.png").write_bytes(photo_files[n].read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    model = temu.load(tiny_head_dir)
    expected = {
        r.name: r for r in temu.iter_scores(str(folder), model, attributes=["sharpness", "noise"], on_error="report")
    }
    report = temu.corpus.run(
        str(folder), tmp_path / "scores", model=str(tiny_head_dir), attributes=["sharpness", "noise"], progress=False
    )
    assert (report.images, report.errors, report.shards_done, report.complete) == (5, 1, 1, True)
    assert report.output == str(tmp_path / "scores") and report.scored == 4 and report.count_error_rows() == 1
    table = read_outputs(tmp_path / "scores")
    assert table.column_names == ["id", "score", "sharpness", "noise", "frames", "error", "shard", "id_bytes"]
    assert table.schema.field("sharpness").type == pa.float32()
    for row in table.to_pylist():
        want = expected[row["id"]]
        if want.error is not None:
            assert row["error"] and row["score"] is None and row["sharpness"] is None
            continue
        assert row["score"] == pytest.approx(want.score, abs=1e-5)
        for name in ("sharpness", "noise"):
            assert row[name] == pytest.approx(want.attributes[name], abs=1e-5)
    again = temu.corpus.run(
        str(folder), tmp_path / "scores", model=str(tiny_head_dir), attributes=["sharpness", "noise"], progress=False
    )
    assert again.shards_skipped == 1 and again.shards_done == 0 and again.complete
    with pytest.raises(CorpusError, match="other options .*attributes"):
        temu.corpus.run(
            str(folder), tmp_path / "scores", model=str(tiny_head_dir), attributes=["sharpness"], progress=False
        )
    for kwargs, message in (
        ({"shard_size": 0}, "shard_size=0: expected a positive integer"),
        ({"engine": "spark"}, "engine='spark': expected one of 'local', 'ray'"),
        ({"shard": (2, 2)}, "shard=(2, 2): expected (index, count)"),
        ({"address": "auto"}, "address= is an option of engine='ray'"),
        ({"attributes": {"id": ("a b", "c d")}}, "name columns of the output"),
    ):
        with pytest.raises(CorpusError, match=message.replace("(", r"\(").replace(")", r"\)")):
            temu.corpus.run(str(folder), tmp_path / "other", model=str(tiny_head_dir), progress=False, **kwargs)
    assert not (tmp_path / "other").exists()
