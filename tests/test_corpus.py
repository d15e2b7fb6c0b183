"""Corpus mode without Ray: inputs of every kind, per-shard Parquet outputs, --shard I/N, resume after a kill."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch

pa = pytest.importorskip("pyarrow", reason="corpus mode needs pyarrow (pip install 'temu[corpus]')")
import pyarrow.parquet as pq  # noqa: E402
from corpus_testing import add_member, make_corpus, read_outputs, run_cli_killed_at  # noqa: E402

import temu  # noqa: E402
import temu.errors  # noqa: E402
from temu.cli import main  # noqa: E402
from temu.corpus.listing import Planner, list_ranges  # noqa: E402
from temu.corpus.names import expand_braces  # noqa: E402
from temu.corpus.plan import OutputFolder  # noqa: E402
from temu.corpus.read import read_shard  # noqa: E402
from temu.corpus.scorer import BatchScorer  # noqa: E402
from temu.corpus.uris import Filesystems  # noqa: E402
from temu.images.decode import decode_image, read_image  # noqa: E402
from temu.runtime import Launch, launch_from_environment  # noqa: E402


@pytest.fixture(autouse=True)
def no_launcher_environment(monkeypatch):
    """Corpus mode reads its shard from torchrun's or Slurm's variables: keep the runner's own out."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def corpus(tmp_path, photo_files, tiny_head_dir, monkeypatch):
    root = tmp_path / "corpus"
    root.mkdir()
    monkeypatch.chdir(root)
    return make_corpus(root, photo_files, temu.load(tiny_head_dir))


def score_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["score", *args])
    return code, capsys.readouterr().err


def check_outputs(folder: Path, corpus, *, abs_tol: float = 1e-5) -> None:
    """Every image of the corpus exactly once, scored as temu.score scores it, or an error row."""
    table = read_outputs(folder)
    assert table.schema.names == ["id", "score", "frames", "error", "shard", "id_bytes"]
    rows = table.to_pylist()
    pairs = [(r["shard"], r["id"]) for r in rows]
    assert len(pairs) == len(set(pairs)) == corpus.images
    for r in rows:
        want = corpus.expected[r["id"]]
        if want is None:
            assert r["score"] is None and r["error"], r
        else:
            assert r["error"] is None and r["score"] == pytest.approx(want, abs=abs_tol), r
    assert (folder / "_SUCCESS").is_file()


# ---------------------------------------------------------------- decoding bytes like files


def test_decode_image_equals_read_image_for_the_same_file(tmp_path, photos):
    from PIL import Image

    img = Image.fromarray(photos["coffee"])
    exif = img.getexif()
    exif[0x0112] = 6  # EXIF orientation: the bytes path must apply it too
    img.save(tmp_path / "r.jpg", exif=exif, quality=90)
    img.convert("P").save(tmp_path / "p.png")
    for name in ("r.jpg", "p.png"):
        path = tmp_path / name
        assert (decode_image(path.read_bytes(), name) == read_image(path)).all()
    with pytest.raises(temu.errors.ImageReadError, match="x.jpg: the image data is empty"):
        decode_image(b"", "x.jpg")
    with pytest.raises(temu.errors.ImageReadError, match="x.jpg: not an image file"):
        decode_image(b"GIF89 nope", "x.jpg")


# ---------------------------------------------------------------- planning


def test_expand_braces_like_a_shell():
    assert expand_braces("s/{00000..00002}.tar") == ["s/00000.tar", "s/00001.tar", "s/00002.tar"]
    assert expand_braces("{a,b{1..2}}.txt") == ["a.txt", "b1.txt", "b2.txt"]
    assert expand_braces("s3://b/{8..10}.tar") == ["s3://b/8.tar", "s3://b/9.tar", "s3://b/10.tar"]
    assert expand_braces("plain{x}.tar") == ["plain{x}.tar"]


def test_list_ranges_cover_every_entry_once_across_shards(tmp_path):
    lines = ["a.jpg", "", "b.jpg", "  ", "c.jpg", "d.jpg", "e.jpg"]
    data = "\n".join(lines).encode()  # no newline at the end
    ranges = list_ranges(io.BytesIO(data), 2, block=3)  # blocks smaller than a line
    entries = [e.strip() for a, b, _ in ranges for e in data[a:b].decode().split("\n") if e.strip()]
    assert entries == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"] and [n for *_, n in ranges] == [2, 2, 1]


def test_planner_names_every_shard_uniquely_and_reads_back_every_row(corpus, tmp_path):
    fs = Filesystems()
    folder = OutputFolder(str(tmp_path / "out"), fs)
    shards = Planner(folder, fs, shard_size=2).plan([*corpus.inputs, "00000.tar"])
    names = [s.name for s in shards]
    assert len(set(names)) == len(names) and "00000" in names and "00000.2" in names
    assert names[:3] == ["photos-00000", "photos-00001", "photos-00002"]
    rows = [r for s in shards for chunk in read_shard(s, fs, max_member_size=1 << 20) for r in chunk.to_pylist()]
    assert len(rows) == corpus.images + 4  # the tar twice
    by_id = {r["id"]: r for r in rows}
    assert by_id[b"t-a"]["image"] is not None and by_id[b"photos/missing.png"]["path"] == bytes(
        corpus.root / "photos/missing.png"
    )


@pytest.mark.parametrize(
    "inputs, message",
    [
        (["nothing/"], "nothing/: no such file or folder"),
        (["notes.csv"], "not a corpus input"),
        (["bad.parquet"], "no image column"),
    ],
)
def test_planning_problems_are_usage_errors_before_the_model_loads(
    capsys, corpus, tiny_head_dir, monkeypatch, inputs, message
):
    (corpus.root / "notes.csv").write_text("a,b\n")
    pq.write_table(pa.table({"n": [1, 2]}), corpus.root / "bad.parquet")
    monkeypatch.setattr(temu.api, "cached_model", lambda *a, **k: pytest.fail("the model was loaded"))
    code, err = score_cli(capsys, *inputs, "--model", str(tiny_head_dir), "--output", "out/", "-q")
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_a_tar_that_breaks_off_keeps_its_good_members_and_reports_the_rest(tmp_path, photo_files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add_member(tar, "a.png", photo_files["coffee"].read_bytes())
        add_member(tar, "b.png", photo_files["rocket"].read_bytes())
    (tmp_path / "cut.tar").write_bytes(buf.getvalue()[:1800])  # inside b.png's data
    fs = Filesystems()
    shards = Planner(OutputFolder(str(tmp_path / "o"), fs), fs, shard_size=10).plan([str(tmp_path / "cut.tar")])
    rows = [r for chunk in read_shard(shards[0], fs, max_member_size=1 << 20) for r in chunk.to_pylist()]
    assert [r["id"] for r in rows][-1] == bytes(tmp_path / "cut.tar")
    assert "truncated or corrupt tar" in rows[-1]["read_error"]


# ---------------------------------------------------------------- scoring


def test_batch_scorer_matches_temu_score_and_turns_bad_images_into_errors(tiny_head_dir, photo_files):
    model = temu.load(tiny_head_dir)
    files = [photo_files[n] for n in sorted(photo_files)]
    expected = temu.score(files, model=model)
    scorer = BatchScorer(model, batch_size=3, threads=2)
    items = [(files[0].read_bytes(), "a"), (str(files[1]), "b"), (None, "c"), (b"junk", "d"), (str(files[2]), "e")]
    items += [(files[3].read_bytes(), "f"), ("/no/such.png", "g")]
    results = [(r.score, r.error) for r in scorer.score(items)]
    scorer.close()
    assert [s for s, _ in results][:2] == pytest.approx(expected[:2], abs=1e-6)
    assert results[4][0] == pytest.approx(expected[2], abs=1e-6) and results[5][0] == pytest.approx(
        expected[3], abs=1e-6
    )
    assert results[2] == (None, "c: no image (null)")
    assert results[3][0] is None and results[3][1].startswith("d: not an image file")
    assert results[6] == (None, "g: no such file")


def test_a_non_finite_score_is_that_images_error_not_a_score(tiny_head_dir, photo_files):
    model = temu.load(tiny_head_dir)
    with torch.no_grad():
        model.head.patch_weight.bias.fill_(float("nan"))
    scorer = BatchScorer(model, batch_size=2, threads=1)
    results = [
        (r.score, r.error) for r in scorer.score([(str(photo_files["coffee"]), "a"), (str(photo_files["rocket"]), "b")])
    ]
    scorer.close()
    assert [s for s, _ in results] == [None, None]
    assert [e.split(":")[0] for _, e in results] == ["a", "b"]
    assert all("non-finite score (nan): the head weights may be corrupt" in e for _, e in results)


def test_a_fault_while_one_image_is_resized_is_that_images_error(tiny_head_dir, photo_files, monkeypatch):
    model = temu.load(tiny_head_dir)
    real = type(model.input_size).__call__

    def fails_on_rocket(self, x, *, name=None):  # resizing one photo fails, as when memory runs out
        if name is not None and "rocket" in name:
            raise RuntimeError("out of memory (simulated)")
        return real(self, x, name=name)

    monkeypatch.setattr(type(model.input_size), "__call__", fails_on_rocket)
    scorer = BatchScorer(model, batch_size=3, threads=1)
    results = [
        (r.score, r.error) for r in scorer.score([(str(photo_files[n]), n) for n in ("coffee", "rocket", "chelsea")])
    ]
    scorer.close()
    assert results[0][0] is not None and results[2][0] is not None
    assert results[1][0] is None and results[1][1].startswith("rocket: cannot be read (unexpected RuntimeError")


def test_a_fault_that_is_not_a_bad_image_is_raised(tiny_head_dir, photo_files):
    model = temu.load(tiny_head_dir)
    scorer = BatchScorer(model, batch_size=2, threads=1)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    scorer.predictor.model.forward = broken
    with pytest.raises(RuntimeError, match="out of memory"):
        list(scorer.score([(str(photo_files["coffee"]), "a")]))
    scorer.close()


# ---------------------------------------------------------------- the command line, local engine


def test_corpus_mode_scores_every_input_kind_once(capsys, corpus, tiny_head_dir):
    code, err = score_cli(
        capsys, *corpus.inputs, "--model", str(tiny_head_dir), "--output", "out/", "--shard-size", "2"
    )
    assert code == 0, err
    check_outputs(corpus.root / "out", corpus)
    assert "scored 11 image(s) in 8 shard(s), 4 could not be read" in err
    assert "photos/missing.png: no such file" in err
    # every shard file has the same schema, with and without errors
    schemas = {pq.read_schema(p).remove_metadata() for p in (corpus.root / "out").glob("*.parquet")}
    assert len(schemas) == 1
    # --strict: exit 1 because some images could not be read; a rerun with nothing left to do agrees
    code, err = score_cli(
        capsys, *corpus.inputs, "--model", str(tiny_head_dir), "--output", "out/", "--shard-size", "2", "--strict"
    )
    assert code == 1 and "8 shard(s) were done before" in err


def test_two_shards_of_n_give_every_image_exactly_once(capsys, corpus, tiny_head_dir):
    args = [*corpus.inputs, "--model", str(tiny_head_dir), "--output", "out/", "--shard-size", "3", "-q"]
    assert main(["score", *args, "--shard", "1/2"]) == 0
    assert not (corpus.root / "out/_SUCCESS").exists()
    first = {p.name for p in (corpus.root / "out").glob("*.parquet")}
    with pytest.MonkeyPatch.context() as env:  # the other half from torchrun's variables
        env.setenv("RANK", "0")
        env.setenv("WORLD_SIZE", "2")
        assert main(["score", *args]) == 0
    second = {p.name for p in (corpus.root / "out").glob("*.parquet")} - first
    assert first and second and not first & second
    check_outputs(corpus.root / "out", corpus)
    capsys.readouterr()


def test_an_input_damaged_after_planning_is_one_line_and_the_finished_shards_stay(
    capsys, corpus, tiny_head_dir, monkeypatch
):
    args = ["table.parquet", "list.txt", "--model", str(tiny_head_dir), "--output", "out/", "--shard-size", "3", "-q"]
    assert main(["score", *args, "--shard", "0/2"]) == 0  # the plan, and the table's shard
    finished = sorted(p.name for p in (corpus.root / "out").glob("*.parquet"))
    capsys.readouterr()
    (corpus.root / "list.txt").unlink()
    (corpus.root / "list.txt").mkdir()  # replaced by a folder: not a path list any more
    code, err = score_cli(capsys, *args, "--shard", "1/2")  # a rerun is refused before anything is scored
    assert code == 2 and err.count("\n") == 1 and "list.txt cannot be read any more" in err and "--overwrite" in err
    # damaged while the run goes on (after the plan was checked): one line, exit 1, the finished shards stay
    import temu.corpus.plan

    monkeypatch.setattr(temu.corpus.plan.Plan, "changed_source", lambda self, *args: None)
    code, err = score_cli(capsys, *args, "--shard", "1/2")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("temu score: error: list.txt cannot be read any more") and "rerun the same command" in err
    assert sorted(p.name for p in (corpus.root / "out").glob("*.parquet")) == finished
    capsys.readouterr()


def test_an_interrupted_corpus_run_is_one_line_and_the_shell_status(capsys, corpus, tiny_head_dir, monkeypatch):
    import os
    import signal

    from temu.corpus.local import LocalEngine

    real = LocalEngine.score_shards

    def interrupted_after_the_first_shard(self, todo, folder, *, on_shard, on_rows=None):
        def stop(*a, **k):
            on_shard(*a, **k)
            os.kill(os.getpid(), signal.SIGTERM)

        return real(self, todo, folder, on_shard=stop, on_rows=on_rows)

    monkeypatch.setattr(LocalEngine, "score_shards", interrupted_after_the_first_shard)
    args = ["table.parquet", "list.txt", "--model", str(tiny_head_dir), "--output", "out/", "--shard-size", "3", "-q"]
    code, err = score_cli(capsys, *args)
    last = err.splitlines()[-1]
    assert code == 143 and "Traceback" not in err and last.startswith("temu: interrupted by SIGTERM; the finished"), err
    assert len(list((corpus.root / "out").glob("*.parquet"))) == 1 and not (corpus.root / "out/_SUCCESS").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is given back


def test_a_table_damaged_after_planning_is_a_corpus_error_naming_it(tmp_path, photo_files):
    from temu.errors import CorpusError

    pq.write_table(
        pa.table({"jpg": pa.array([photo_files["coffee"].read_bytes()], pa.binary())}), tmp_path / "t.parquet"
    )
    fs = Filesystems()
    (shard,) = Planner(OutputFolder(str(tmp_path / "o"), fs), fs, shard_size=10).plan([str(tmp_path / "t.parquet")])
    (tmp_path / "t.parquet").write_bytes(b"PAR1 not a parquet file any more PAR1")
    with pytest.raises(CorpusError, match="t.parquet changed since the run was planned .*; shard t is not read"):
        list(read_shard(shard, fs, max_member_size=1 << 20))


def test_shard_from_torchrun_or_a_slurm_array():
    torchrun = launch_from_environment({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert torchrun == Launch(3, 8, 1, "RANK/WORLD_SIZE") and torchrun.torchrun
    slurm = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    array = launch_from_environment({**slurm, "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_MAX": "7"})
    assert (array.rank, array.world_size, array.torchrun) == (3, 4, False)
    with pytest.raises(ValueError, match="not evenly spaced"):
        launch_from_environment({**slurm, "SLURM_ARRAY_TASK_MAX": "9"})
    with pytest.raises(ValueError, match="rank 8 of 8 .* out of range"):
        launch_from_environment({"RANK": "8", "WORLD_SIZE": "8"})
    assert launch_from_environment({}) is None


def test_a_run_killed_while_writing_resumes_with_every_image_once(capsys, corpus, tiny_head_dir):
    args = ["score", *corpus.inputs, "--model", str(tiny_head_dir), "--output", "out/", "--shard-size", "2", "-q"]
    run_cli_killed_at(args, write=4, cwd=corpus.root)
    out = corpus.root / "out"
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    assert len(done) == 3 and not (out / "_SUCCESS").exists()
    assert len(list(out.glob(".*.tmp-*"))) == 1  # the shard it was writing: never renamed, so never read
    code, err = score_cli(capsys, *args[1:-1])
    assert code == 0 and "3 shard(s) were done before" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet") if p.name in done} == done  # not redone
    assert not list(out.glob(".*.tmp-*"))
    check_outputs(out, corpus)


def test_a_rerun_with_other_settings_is_refused_unless_overwrite(capsys, corpus, tiny_head_dir):
    args = [*corpus.inputs[:1], "--model", str(tiny_head_dir), "--output", "out/", "-q"]
    assert main(["score", *args]) == 0
    capsys.readouterr()
    code, err = score_cli(capsys, *args, "--precision", "bf16")
    assert code == 2 and err.count("\n") == 1 and 'precision: "fp32" then, "bf16" now' in err
    code, err = score_cli(capsys, *corpus.inputs[:2], *args[1:])
    assert code == 2 and "other inputs" in err
    assert main(["score", *args, "--precision", "bf16", "--overwrite"]) == 0
    assert '"precision": "bf16"' in (corpus.root / "out/_temu/plan.json").read_text()


def test_corpus_usage_errors_are_one_line_before_the_model_loads(capsys, corpus, tmp_path):
    missing = str(tmp_path / "no-head")
    cases = [
        (["photos/", "--engine", "ray"], "give --output DIR/"),
        (["photos/", "--shard", "0/2", "--output", "x.csv"], "not the file x.csv"),
        (["photos/", "--output", "out/", "--maps", "m/"], "--maps"),
        (["photos/", "--output", "out/", "--address", "auto"], "--address is an option of --engine ray"),
        (["photos/", "--output", "out/", "--shard", "0/2", "--overwrite"], "--overwrite with several shard processes"),
        (["00000.tar"], "corpus input"),
        (["photos/", "missing-{1..2}.tar", "--output", "out/"], "missing-1.tar: no such file"),
        (["photos/", "--shard-size", "5"], "--shard-size is an option of corpus mode"),
    ]
    for extra, message in cases:
        code, err = score_cli(capsys, *extra, "--model", missing)
        assert code == 2 and err.count("\n") == 1 and message in err and "cannot load" not in err, (extra, err)
    with pytest.raises(SystemExit) as stop:
        main(["score", "photos/", "--output", "out/", "--shard", "2/2"])
    assert stop.value.code == 2 and "expected I/N with 0 <= I < N" in capsys.readouterr().err


def test_an_output_folder_that_cannot_be_read_is_one_line_not_a_traceback(capsys, corpus, tiny_head_dir):
    from temu.errors import CorpusError

    Path("taken").write_text("a file, not a folder\n")
    code, err = score_cli(capsys, "photos/", "--output", "taken/sub/", "--model", str(tiny_head_dir))
    assert code == 2 and err.count("\n") == 1 and "taken/sub/_temu/plan.json: cannot be read" in err, err
    with pytest.raises(CorpusError, match="cannot be read as part of the output folder"):
        run_corpus(["photos/"], "taken/sub/", tiny_head_dir)
    assert Path("taken").read_text() == "a file, not a folder\n"


# ---------------------------------------------------------------- nothing lost (issue 20): resume, limits, names, plans


def run_corpus(inputs, output, model, **kwargs):
    """temu.corpus.run on the tiny model, quietly."""
    from temu.corpus import run

    return run(inputs, str(output), model=str(model), progress=False, **kwargs)


def test_a_list_or_table_changed_since_planning_is_refused_never_resumed(tmp_path, photo_files, tiny_head_dir):
    import os

    from temu.errors import CorpusError

    names = sorted(photo_files)
    (tmp_path / "list.txt").write_text("".join(f"{photo_files[n]}\n" for n in names))
    table = pa.table({"id": names, "jpg": [photo_files[n].read_bytes() for n in names]})
    pq.write_table(table, tmp_path / "t.parquet")
    out = tmp_path / "out"
    for source, change in (
        ("list.txt", lambda p: p.write_text(f"{photo_files[names[0]]}\n" + p.read_text())),  # a line at the top
        ("t.parquet", lambda p: pq.write_table(pa.concat_tables([table, table]), p)),  # grown
    ):
        path = tmp_path / source
        first = run_corpus([str(path)], out, tiny_head_dir, shard_size=2, shard=(0, 2), overwrite=False)
        assert first.shards_done == 1 and not first.complete
        change(path)
        with pytest.raises(CorpusError, match=f"{source} changed since the run was planned .*overwrite=True"):
            run_corpus([str(path)], out, tiny_head_dir, shard_size=2, shard=(1, 2))
        assert not (out / "_SUCCESS").exists()
        again = run_corpus([str(path)], out, tiny_head_dir, shard_size=2, overwrite=True)
        ids = pq.read_table(out).column("id").to_pylist()
        assert again.complete and len(ids) == again.images == (5 if source == "list.txt" else 8)
        import shutil

        shutil.rmtree(out)
    # the same size and modification time, other contents: the content sample tells
    path = tmp_path / "list.txt"
    run_corpus([str(path)], out, tiny_head_dir, shard_size=2, shard=(0, 2))
    before = path.stat()
    text = path.read_bytes()
    path.write_bytes(text.replace(b"rocket", b"rockex"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(CorpusError, match="list.txt changed since the run was planned .its contents differ"):
        run_corpus([str(path)], out, tiny_head_dir, shard_size=2, shard=(1, 2))


def test_members_and_images_over_max_member_size_are_error_rows_never_read(
    capsys, tmp_path, photo_files, tiny_head_dir, monkeypatch
):
    import gzip

    big = photo_files["coffee"].read_bytes()
    small = photo_files["rocket"].read_bytes()
    limit = (len(big) + len(small)) // 2
    assert len(small) < limit < len(big)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add_member(tar, "a.png", big)
        add_member(tar, "b.png", small)
    (tmp_path / "s.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    (tmp_path / "list.txt").write_text(f"{photo_files['coffee']}\n{photo_files['rocket']}\n")
    pq.write_table(pa.table({"id": ["ta", "tb"], "jpg": [big, small]}), tmp_path / "t.parquet")
    reads = []
    real = tarfile.ExFileObject.read
    monkeypatch.setattr(tarfile.ExFileObject, "read", lambda self, size=-1: reads.append(size) or real(self, size))
    inputs = [str(tmp_path / n) for n in ("s.tar.gz", "list.txt", "t.parquet")]
    args = ["score", *inputs, "--model", str(tiny_head_dir), "--output", str(tmp_path / "out/"), "-q"]
    assert main([*args, "--max-member-size", str(limit)]) == 0
    rows = {r["id"]: r for r in read_outputs(tmp_path / "out").to_pylist()}
    too_big = [k for k, r in rows.items() if r["error"] and "more than max_member_size" in r["error"]]
    assert sorted(too_big) == sorted(["a", str(photo_files["coffee"]), "ta"])
    assert all(rows[k]["score"] is not None for k in ("b", str(photo_files["rocket"]), "tb"))
    assert reads == [len(small)]  # the big member was never read; the small one with its size as the bound
    # the limit is recorded in the plan: another one is refused, like other options
    code, err = score_cli(capsys, *args[1:], "--max-member-size", "1G")
    assert code == 2 and "max_member_size" in err and "--overwrite" in err


def test_names_that_are_not_utf8_are_scored_and_kept_exactly(tmp_path, photo_files, tiny_head_dir):
    import os

    latin = b"caf\xe9"  # Latin-1, not UTF-8
    folder = tmp_path / "photos"
    folder.mkdir()
    data = photo_files["coffee"].read_bytes()
    (folder / os.fsdecode(latin + b".png")).write_bytes(data)
    (folder / "plain.png").write_bytes(data)
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        add_member(tar, os.fsdecode(latin + b".png"), data)
    (tmp_path / "s.tar").write_bytes(buf.getvalue())
    listed = bytes(folder) + b"/" + latin + b".png"
    (tmp_path / "list.txt").write_bytes(listed + b"\n")
    inputs = [str(folder), str(tmp_path / "s.tar"), str(tmp_path / "list.txt")]
    report = run_corpus(inputs, tmp_path / "out", tiny_head_dir)
    assert report.complete and report.errors == 0 and report.images == 4
    rows = read_outputs(tmp_path / "out").to_pylist()
    exact = {r["id_bytes"]: r for r in rows if r["id_bytes"] is not None}
    assert set(exact) == {bytes(folder) + b"/" + latin + b".png", latin, listed}
    assert {r["id"] for r in exact.values()} == {k.decode("utf-8", "backslashreplace") for k in exact}
    assert exact[latin]["id"] == "caf\\xe9"  # text for display: the byte as \xNN
    assert os.path.exists(os.fsdecode(listed))  # id_bytes names the very file
    assert all(r["id_bytes"] is None for r in rows if r["id"].endswith("plain.png"))
    scores = {r["score"] for r in rows}
    assert len(scores) == 1  # the same picture under every name


@pytest.mark.parametrize(
    "text, message",
    [
        ("[]", "the plan is list, not an object"),
        (
            '{"format": 2, "settings": {}, "inputs": [], "options": {}, "shards": [{"name": "../../x", '
            '"kind": "tar", "source": "/x.tar", "label": "x.tar"}]}',
            "'../../x' is not a file name",
        ),
        ('{"format": 2, "settings": {}, "inputs": "a", "options": {}, "shards": []}', "'inputs' is 'a'"),
        (
            '{"format": 2, "settings": {}, "inputs": [], "options": {}, "shards": [{"name": "a", "kind": "tar", '
            '"source": "/x.tar", "label": "x", "start": "0"}]}',
            "shard field 'start' is '0'",
        ),
        ('{"format": 2, "settings": {}, "inp', "not a temu shard plan"),
    ],
)
def test_a_damaged_plan_is_one_error_and_overwrite_clears_it(capsys, corpus, tiny_head_dir, text, message):
    from temu.errors import CorpusError

    out = corpus.root / "out"
    args = ["table.parquet", "--model", str(tiny_head_dir), "--output", "out/", "-q"]
    assert main(["score", *args]) == 0
    capsys.readouterr()
    (out / "mine.parquet").write_bytes(b"PAR1 a file the user keeps PAR1")  # not temu's: never deleted
    (out / "_temu/plan.json").write_text(text)
    fs = Filesystems()
    with pytest.raises(CorpusError, match="overwrite=True"):
        OutputFolder(str(out), fs).read_plan()
    code, err = score_cli(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and message in err and "pass --overwrite" in err, err
    (out / "mine.parquet").unlink()
    assert main(["score", *args, "--overwrite"]) == 0  # clears the damaged plan and temu's outputs
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "_temu", "table.parquet"]
    (out / "_temu/plan.json").write_bytes(b"\xff\xfe not UTF-8")
    code, err = score_cli(capsys, *args)
    assert code == 2 and "not UTF-8" in err
    capsys.readouterr()


def test_a_user_parquet_file_is_never_cleared_by_overwrite(capsys, corpus, tiny_head_dir):
    out = corpus.root / "out"
    out.mkdir()
    pq.write_table(pa.table({"x": [1]}), out / "mine.parquet")
    args = ["table.parquet", "--model", str(tiny_head_dir), "--output", "out/", "-q"]
    for extra in ([], ["--overwrite"]):
        code, err = score_cli(capsys, *args, *extra)
        assert code == 2 and "temu did not write" in err or "no temu plan" in err, err
    assert (out / "mine.parquet").exists()


def test_odd_lists_tables_and_tars(tmp_path, photo_files, tiny_head_dir, capsys):
    from temu.errors import CorpusError

    names = sorted(photo_files)
    spaced = tmp_path / " lead.png"  # a name that begins with a space
    spaced.write_bytes(photo_files[names[0]].read_bytes())
    # a BOM, CRLF line endings, a blank line and a line of spaces: entries are the lines less their endings
    (tmp_path / "list.txt").write_bytes(b"\xef\xbb\xbf" + f"{photo_files[names[1]]}\r\n\r\n   \n{spaced}\n".encode())
    pq.write_table(
        pa.table({"id": pa.array([b"ok", b"\xff\xfe"], pa.binary()), "jpg": [photo_files[names[2]].read_bytes()] * 2}),
        tmp_path / "binary-ids.parquet",
    )
    pq.write_table(
        pa.table({"id": [{"a": 1}], "jpg": [photo_files[names[2]].read_bytes()]}), tmp_path / "struct-ids.parquet"
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("x.png", "x.jpg", "x.png", "x.png"):  # two images of one sample; x.png three times
            add_member(tar, name, photo_files[names[3]].read_bytes())
    (tmp_path / "dup.tar").write_bytes(buf.getvalue())
    inputs = [str(tmp_path / n) for n in ("list.txt", "binary-ids.parquet", "dup.tar")]
    report = run_corpus(inputs, tmp_path / "out", tiny_head_dir)
    rows = {
        name: pq.read_table(tmp_path / "out" / f"{name}.parquet").to_pylist()
        for name in ("list-00000", "binary-ids", "dup")
    }
    assert report.errors == 0 and report.images == sum(map(len, rows.values())) == 2 + 2 + 4
    assert [r["id"] for r in rows["list-00000"]] == [str(photo_files[names[1]]), str(spaced)]
    assert [r["id"] for r in rows["binary-ids"]] == ["ok", "\\xff\\xfe"] and rows["binary-ids"][1][
        "id_bytes"
    ] == b"\xff\xfe"
    # unique within the shard, in member order
    assert [r["id"] for r in rows["dup"]] == ["x", "x.jpg", "x.png#2", "x.png#3"]
    with pytest.raises(CorpusError, match="struct-ids.parquet: id column 'id' is struct<a: int64>.*id_column="):
        run_corpus([str(tmp_path / "struct-ids.parquet")], tmp_path / "out2", tiny_head_dir)
    assert not (tmp_path / "out2" / "_temu").exists()


def test_a_full_disk_is_one_line_naming_the_file(capsys, corpus, tiny_head_dir, monkeypatch):
    import errno

    real = pq.write_table

    def full(table, where, **kwargs):
        if ".photos-00001.parquet.tmp-" in str(where):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", full)
    args = ["photos/", "--model", str(tiny_head_dir), "--output", "out/", "--shard-size", "2", "-q"]
    code, err = score_cli(capsys, *args)
    assert code == 1 and err.count("\n") == 1, err
    assert "out/photos-00001.parquet: cannot be written (No space left on device)" in err and "rerun" in err
    assert not list((corpus.root / "out").glob(".*tmp-*"))
