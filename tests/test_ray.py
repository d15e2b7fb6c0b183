"""temu.ray: TeMuScorer's fixed schema and scores, the Ray Data pipeline, GPU placement, and
``temu score --engine ray`` killed and resumed. One local Ray for the module (starting one costs seconds)."""

from __future__ import annotations

import os
import tarfile

import pytest

ray = pytest.importorskip("ray", reason="the Ray tests need Ray Data: pip install 'temu[ray]' (CI installs it)")
import pyarrow as pa  # noqa: E402
from corpus_testing import add_member, make_corpus, read_outputs, run_cli_killed_at  # noqa: E402

import temu  # noqa: E402
import temu.errors  # noqa: E402
from temu.cli import main  # noqa: E402
from temu.ray import TeMuScorer, choose_device  # noqa: E402


@pytest.fixture(autouse=True)
def no_launcher_environment(monkeypatch):
    """Corpus mode reads its shard from torchrun's or Slurm's variables: keep the runner's own out."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 4 logical CPUs (fewer stall small pipelines) and 2 logical GPUs (no CUDA behind them)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()  # never `ray stop`: other Ray users on the machine keep theirs


# ---------------------------------------------------------------- TeMuScorer, called directly (no cluster)


def test_scorer_schema_is_the_same_with_and_without_errors_and_scores_equal_temu_score(tiny_head_dir, photo_files):
    names = sorted(photo_files)
    expected = dict(zip(names, temu.score([photo_files[n] for n in names], model=temu.load(tiny_head_dir))))
    scorer = TeMuScorer(str(tiny_head_dir), image_column="jpg", id_column="__key__", keep_columns=["n"], batch_size=2)
    assert scorer.device.type == "cpu"
    good = pa.table(
        {
            "__key__": names[:3],
            "jpg": [photo_files[n].read_bytes() for n in names[:3]],
            "n": [1, 2, 3],
        }
    )
    bad = pa.table(
        {
            "__key__": ["null", "junk", names[3]],
            "jpg": [None, b"junk", photo_files[names[3]].read_bytes()],
            "n": [4, 5, 6],
        }
    )
    out_good, out_bad = scorer(good), scorer(bad)
    assert out_good.schema == out_bad.schema
    assert out_good.schema.names == ["__key__", "score", "error", "frames", "n"]
    assert out_good.schema.field("score").type == pa.float32()
    assert out_good.column("error").null_count == 3
    for key, score in zip(names[:3], out_good.column("score").to_pylist()):
        assert score == pytest.approx(expected[key], abs=1e-5)
    rows = out_bad.to_pylist()
    assert rows[0]["score"] is None and rows[0]["error"] == "null: no image (null)"
    assert rows[1]["score"] is None and rows[1]["error"].startswith("junk: not an image file")
    assert rows[2]["error"] is None and rows[2]["score"] == pytest.approx(expected[names[3]], abs=1e-5)
    assert [r["n"] for r in rows] == [4, 5, 6]
    # paths (a string column) and Ray's default numpy batches work the same
    import numpy as np

    paths = {
        "__key__": np.array(["p", "missing"], dtype=object),
        "jpg": np.array([str(photo_files[names[0]]), "/no/x.png"], dtype=object),
        "n": np.array([7, 8]),
    }
    out_paths = scorer(paths).to_pylist()
    assert out_paths[0]["score"] == pytest.approx(expected[names[0]], abs=1e-5)
    assert out_paths[1]["error"] == "missing: no such file"
    with pytest.raises(temu.errors.InvalidInputError, match="no column"):
        scorer(pa.table({"jpg": [b""]}))


def test_the_device_is_the_actors_gpu_when_ray_gives_one():
    import torch

    assert choose_device(None, [], cuda_available=True) == torch.device("cpu")
    assert choose_device(None, ["1"], cuda_available=True) == torch.device(
        "cuda", 0
    )  # Ray narrows CUDA_VISIBLE_DEVICES
    assert choose_device("cpu", ["1"], cuda_available=True) == torch.device("cpu")
    with pytest.raises(temu.TeMuError, match="torch sees no CUDA device"):
        choose_device(None, ["0"], cuda_available=False)


# ---------------------------------------------------------------- on a local Ray


def test_webdataset_pipeline_scores_raw_bytes_and_keeps_bad_members(ray_cluster, tmp_path, tiny_head_dir, photo_files):
    names = sorted(photo_files)
    expected = dict(zip(names, temu.score([photo_files[n] for n in names], model=temu.load(tiny_head_dir))))
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for name in names:
            add_member(tar, f"{name}.jpg", photo_files[name].read_bytes())
            add_member(tar, f"{name}.txt", b"a caption")
        add_member(tar, "broken.jpg", b"\xff\xd8 not a jpeg")
    ds = ray.data.read_webdataset(str(tmp_path / "00000.tar"), decoder=None)  # raw bytes: our decoder, our errors
    ds = ds.map_batches(
        TeMuScorer,
        fn_constructor_kwargs={"model": str(tiny_head_dir), "image_column": "jpg", "id_column": "__key__"},
        batch_size=3,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=1),
        num_cpus=1,
    )
    rows = {r["__key__"]: r for r in ds.take_all()}
    assert set(rows) == {*names, "broken"}
    assert rows["broken"]["score"] is None and "broken: " in rows["broken"]["error"]
    for name in names:
        assert rows[name]["error"] is None and rows[name]["score"] == pytest.approx(expected[name], abs=1e-5)


def test_each_actor_takes_its_own_logical_gpu(ray_cluster, tiny_head_dir):
    class Probe(TeMuScorer):
        """Takes Ray's GPU as if CUDA were there (there is none here), records the choice, scores on the CPU."""

        def pick_device(self, device):
            self.chosen = choose_device(device, self.gpu_ids, cuda_available=True)
            return choose_device("cpu", [], cuda_available=False)

        def where(self):
            return os.environ.get("CUDA_VISIBLE_DEVICES"), self.gpu_ids, str(self.chosen), str(self.device)

    actor = ray.remote(num_gpus=1, num_cpus=1)(Probe)
    kwargs = {"model": str(tiny_head_dir), "image_column": "jpg", "id_column": "id"}
    actors = [actor.remote(**kwargs) for _ in range(2)]
    places = ray.get([a.where.remote() for a in actors])
    visible = sorted(p[0] for p in places)
    assert visible == ["0", "1"] and sorted(p[1][0] for p in places) == ["0", "1"]
    assert [p[2:] for p in places] == [("cuda:0", "cpu")] * 2
    for a in actors:
        ray.kill(a)


def test_engine_ray_killed_mid_run_resumes_with_every_image_once(
    ray_cluster, tmp_path, photo_files, tiny_head_dir, monkeypatch, capsys
):
    root = tmp_path / "corpus"
    root.mkdir()
    monkeypatch.chdir(root)
    corpus = make_corpus(root, photo_files, temu.load(tiny_head_dir))
    argv = [
        "score",
        *corpus.inputs,
        "--model",
        str(tiny_head_dir),
        "--output",
        "out/",
        "--engine",
        "ray",
        "--shard-size",
        "2",
        "--gpus-per-worker",
        "0",
        "--cpus-per-worker",
        "1",
        "--max-workers",
        "1",
        "--attributes",
        "sharpness",
    ]
    # a driver joined to this cluster, SIGKILLed while it writes its third shard
    run_cli_killed_at([*argv, "--address", ray_cluster, "-q"], write=3, cwd=root)
    out = root / "out"
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    assert len(done) == 2 and not (out / "_SUCCESS").exists()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert " in 6 shard(s)," in err and "2 shard(s) were done before" in err, err  # only the pending shards ran
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet") if p.name in done} == done
    assert not list(out.glob(".*.tmp-*")) and (out / "_SUCCESS").is_file()
    table = read_outputs(out)
    assert table.schema.names == ["id", "score", "sharpness", "frames", "error", "shard", "id_bytes"]
    rows = table.to_pylist()
    assert all((r["sharpness"] is None) == (r["score"] is None) for r in rows)
    assert all(0 <= r["sharpness"] <= 1 for r in rows if r["sharpness"] is not None)
    assert len(rows) == len({(r["shard"], r["id"]) for r in rows}) == corpus.images
    for r in rows:
        want = corpus.expected[r["id"]]
        if want is None:
            assert r["score"] is None and r["error"], r
        else:
            assert r["error"] is None and r["score"] == pytest.approx(want, abs=1e-5), r


def test_engine_ray_bad_model_or_changed_input_is_one_line_not_rays_traceback(
    ray_cluster, tmp_path, tiny_head_dir, photo_files, capsys
):
    import shutil

    from temu.corpus.plan import OutputFolder, Shard
    from temu.corpus.ray import RayEngine
    from temu.corpus.uris import Filesystems

    head = tmp_path / "broken"
    shutil.copytree(tiny_head_dir, head)
    (head / "model.safetensors").write_bytes(b"{not a safetensors file")
    (tmp_path / "photos").mkdir()
    shutil.copy(photo_files["coffee"], tmp_path / "photos" / "a.png")
    argv = ["score", str(tmp_path / "photos"), "--output", str(tmp_path / "out/"), "--engine", "ray"]
    argv += ["--address", ray_cluster, "--gpus-per-worker", "0", "--cpus-per-worker", "1", "--model", str(head)]
    assert main(argv) == 2  # the driver loads the model before any actor starts
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot load model" in err and "not a readable safetensors file" in err, err
    # a reader task that finds its list changed: temu's message, not Ray's traceback
    (tmp_path / "l.txt").write_text(f"{photo_files['coffee']}\n")
    shard = Shard("l-00000", "list", str(tmp_path / "l.txt"), "l.txt", 0, None, 1, stamp={"size": 1})
    engine = RayEngine(
        str(tiny_head_dir),
        address=ray_cluster,
        gpus_per_worker=0,
        cpus_per_worker=1,
        max_workers=1,
        batch_size=2,
        precision="fp32",
        decode_threads=1,
        compile=False,
        attributes=None,
        max_member_size=1 << 20,
    )
    engine.start()
    folder = OutputFolder(str(tmp_path / "out2"), Filesystems())
    with pytest.raises(temu.errors.CorpusError, match="l.txt changed since the run was planned"):
        engine.score_shards([shard], folder, on_shard=lambda result: None)
    engine.close()
    assert "Traceback" not in capsys.readouterr().err


def test_engine_ray_scores_videos_and_scales_as_the_local_engine(
    ray_cluster, tmp_path, photos, tiny_head_dir, monkeypatch
):
    pytest.importorskip("av")
    import pyarrow.parquet as pq
    from corpus_testing import make_calibrated_head, make_media

    from temu.corpus import run

    root = make_media(tmp_path, photos)
    monkeypatch.chdir(root)
    head = make_calibrated_head(tiny_head_dir, tmp_path / "calibrated")
    options = dict(model=str(head), fps=4, per_frame=True, scale=["mos", "percentile"], shard_size=2)
    options.update(precision="fp32", progress=False)
    inputs = ["media/", "clips.tar", "clips.parquet"]
    local = run(inputs, "local", **options)
    remote = run(inputs, "remote", engine="ray", address=ray_cluster, gpus_per_worker=0, cpus_per_worker=1,
                 max_workers=1, **options)  # fmt: skip
    assert local.complete and remote.complete and remote.images == 8 and remote.errors == 2
    for what in ("", "_frames"):  # the shards' rows, then the per-frame rows
        a, b = (pq.read_table(root / name / what) for name in ("local", "remote"))
        assert a.schema == b.schema and a.num_rows == b.num_rows
        key = (lambda r: (r["id"], r["frame"])) if what else (lambda r: (r["shard"], r["id"]))
        for x, y in zip(sorted(a.to_pylist(), key=key), sorted(b.to_pylist(), key=key)):
            for column, value in x.items():
                if isinstance(value, float):
                    assert y[column] == pytest.approx(value, abs=1e-5), (column, x, y)
                else:
                    assert y[column] == value, (column, x, y)
