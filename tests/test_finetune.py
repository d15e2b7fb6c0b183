"""temu-finetune end to end on a tiny random backbone: outputs, learning, resume, LDG, data checks, DDP.

The dataset is 40 real photographs with graded blur / noise / JPEG (tests/synthetic_iqa.py),
at 80x64 px, scored by the model at 64x64 (LDG boxes scale to 6-21 px). Runs use one torch
thread: on this project's shared 2-core machine two threads spin against each other and make
the tiny forward ~30x slower.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from synthetic_iqa import mos_of

import temu
import temu.errors
from temu import TeMuIQA
from temu.cli.args import parse_layers
from temu.cli.finetune import main
from temu.errors import NonFiniteLossError
from temu.evaluation.metrics import plcc
from temu.train.config import TrainConfig
from temu.train.trainer import METRIC_COLUMNS, Trainer

EPOCHS = 2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(synthetic_dataset) -> tuple[Path, Path]:
    return synthetic_dataset


@pytest.fixture(scope="module")
def base_args(dataset, tiny_kwargs) -> list[str]:
    csv_path, root = dataset
    return [
        "--train", str(csv_path), "--image-root", str(root),
        "--backbone", tiny_kwargs["backbone"], "--pretrained", tiny_kwargs["pretrained"],
        "--image-size", "64", "--batch-size", "8", "--lr", "0.01", "--seed", "0", "--quiet",
    ]  # fmt: skip


def run(args: list[str]) -> int:
    return main(args)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, base_args) -> Path:
    out = tmp_path_factory.mktemp("runs") / "full"
    assert run([*base_args, "--epochs", str(EPOCHS), "--output", str(out)]) == 0
    return out


def read_metrics(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def training_paths_and_targets(dataset) -> tuple[list[str], np.ndarray]:
    csv_path, root = dataset
    rows = read_metrics(csv_path)
    mos = np.array([float(r["mos"]) for r in rows])
    return [str(root / r["image"]) for r in rows], (mos - mos.min()) / (mos.max() - mos.min())


# ------------------------------------------------------------------ outputs and learning


def test_two_epoch_run_writes_every_output(full_run):
    for name in (
        "config.json",
        "model.safetensors",
        "README.md",
        "metrics.csv",
        "curves.png",
        "checkpoint.pt",
        "run.json",
    ):
        assert (full_run / name).is_file(), name
    rows = read_metrics(full_run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert list(rows[0]) == list(METRIC_COLUMNS)
    assert all(-1 <= float(r["val_srcc"]) <= 1 and float(r["val_rmse"]) >= 0 for r in rows)
    assert (full_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    torch.load(full_run / "checkpoint.pt", map_location="cpu", weights_only=True)  # plain data: safe to load
    config = json.loads((full_run / "config.json").read_text())["model"]
    lows = [mos_of(k, 3) for k in ("blur", "noise", "jpeg")]
    assert config["mos_scale"]["high"] == 90.0 and config["mos_scale"]["low"] >= min(lows)
    assert config["mos_scale"]["lower_better"] is False
    assert json.loads((full_run / "run.json").read_text())["data"]["train_images"] == 32


def test_the_lr_column_follows_one_cosine_over_all_steps_of_the_run(full_run):
    """Cosine annealing from --lr 0.01 to eta_min 0 over epochs x steps: after epoch e of E the rate is
    0.01 * (1 + cos(pi * e / E)) / 2. A schedule stepped over the wrong length would not match."""
    rows = read_metrics(full_run / "metrics.csv")
    want = [0.01 * (1 + math.cos(math.pi * e / EPOCHS)) / 2 for e in range(1, EPOCHS + 1)]
    assert [float(r["lr"]) for r in rows] == pytest.approx(want, abs=1e-9)


def test_training_loss_goes_down(full_run, dataset, tiny_kwargs):
    rows = read_metrics(full_run / "metrics.csv")
    # per-epoch means: the regression parts fall; the 1 - PLCC part of 4 batches of 8 is dominated by
    # which images share a batch, so the full objective is compared on the whole training set below
    assert float(rows[1]["train_mse"]) < float(rows[0]["train_mse"])
    assert float(rows[1]["train_ldg"]) < float(rows[0]["train_ldg"])
    paths, y = training_paths_and_targets(dataset)

    def objective(model) -> float:
        q = np.asarray(temu.score(paths, model=model.eval(), batch_size=64))
        return float(np.mean((q - y) ** 2) + 1 - plcc(q, y))

    assert objective(TeMuIQA.from_pretrained(full_run)) < objective(TeMuIQA(**tiny_kwargs)) - 0.02


def test_saved_head_is_the_best_epochs_and_loads_everywhere(full_run, dataset):
    """The head in the run folder scores the validation set as metrics.csv says the best epoch did."""
    from temu.data import DataOptions, prepare_training_data
    from temu.evaluation.report import evaluate_scores

    csv_path, root = dataset
    data = prepare_training_data(DataOptions(csv=csv_path, image_root=root), seed=0, log=lambda m: None)
    model = TeMuIQA.from_pretrained(full_run).eval()
    rows = read_metrics(full_run / "metrics.csv")
    best = max(rows, key=lambda r: float(r["val_srcc"]) + float(r["val_plcc"]))
    scores = temu.score([r.path for r in data.val], model=model)
    metrics = evaluate_scores(scores, data.scale.normalise([r.mos for r in data.val]))
    for key in ("srcc", "plcc", "krcc", "rmse"):
        assert metrics[key] == pytest.approx(float(best[f"val_{key}"]), rel=1e-5, abs=1e-6), key
    paths, _ = training_paths_and_targets(dataset)
    expected = temu.score(paths[:5], model=model)
    try:
        assert temu.score(paths[:5], model=str(full_run)) == pytest.approx(expected, abs=1e-6)
        assert temu.score(paths[:5], model=temu.load(full_run)) == pytest.approx(expected, abs=1e-6)
    finally:
        temu.clear_model_cache()
    scale = model.mos_scale
    assert scale is not None and model.to_mos(1.0) == scale.high and model.to_mos(0.0) == scale.low
    with pytest.raises(ValueError, match="no MOS range"):
        TeMuIQA.from_pretrained(full_run, mos_scale=None).to_mos(0.5)


# ------------------------------------------------------------------ resume


@pytest.fixture(scope="module")
def half_run(tmp_path_factory, base_args) -> Path:
    """The same run as full_run, stopped after its first epoch."""
    out = tmp_path_factory.mktemp("runs") / "half"
    assert run([*base_args, "--epochs", str(EPOCHS), "--output", str(out), "--stop-after-epochs", "1"]) == 0
    return out


def test_resume_equals_uninterrupted_run(full_run, half_run, base_args, tmp_path, capsys):
    out = tmp_path / "resumed"
    shutil.copytree(half_run, out)
    assert len(read_metrics(out / "metrics.csv")) == 1
    assert run([*base_args, "--epochs", str(EPOCHS), "--output", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert run([*base_args, "--epochs", str(EPOCHS), "--output", str(out), "--resume"]) == 0

    resumed, uninterrupted = load_file(out / "model.safetensors"), load_file(full_run / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    # the whole final state (last head, optimizer, schedule, RNG, best so far) is bit-identical, timings aside
    assert_same_state(
        torch.load(out / "checkpoint.pt", weights_only=True), torch.load(full_run / "checkpoint.pt", weights_only=True)
    )

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert strip(read_metrics(out / "metrics.csv")) == strip(read_metrics(full_run / "metrics.csv"))


def assert_same_state(a, b, where: str = "checkpoint") -> None:
    """Equal nested dicts / lists / tensors / numbers, bit for bit, except wall-clock 'seconds'."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            if key != "seconds":
                assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b or (a != a and b != b), where  # NaN == NaN here


def test_resume_refuses_a_different_run(half_run, base_args, tmp_path, capsys):
    out = tmp_path / "other"
    shutil.copytree(half_run, out)
    assert run([*base_args, "--epochs", str(EPOCHS), "--output", str(out), "--resume", "--ldg-weight", "0.5"]) == 2
    assert "--ldg-weight: checkpoint 1.0, now 0.5" in capsys.readouterr().err  # the CLI names its flag
    assert run([*base_args, "--epochs", str(EPOCHS), "--output", str(tmp_path / "empty"), "--resume"]) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err


# ------------------------------------------------------------------ LDG


def trainer_on(dataset, tiny_kwargs, output: Path, config: TrainConfig, on_step) -> Trainer:
    """A Trainer on the synthetic dataset (first 32 rows train, last 8 validate), as temu-finetune builds one."""
    from temu.data import MOSScale, read_records

    csv_path, root = dataset
    records = read_records(csv_path, root)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TeMuIQA(**tiny_kwargs)
    scale = MOSScale.fit([r.mos for r in records[:32]])
    return Trainer(model, records[:32], records[32:], scale, config, output, progress=False, on_step=on_step)


def test_ldg_targets_are_cw_ssim_fidelity_times_mos_in_one_forward(dataset, tiny_kwargs, tmp_path):
    """Observed through the documented on_step hook; the fidelity is recomputed here with pyiqa's CW-SSIM
    (temu's own where pyiqa is missing; tests/test_cwssim.py holds the two to 1e-7)."""
    from temu.data import read_records

    seen: list = []
    config = TrainConfig(epochs=1, batch_size=8, lr=0.01, seed=0)
    trainer_on(dataset, tiny_kwargs, tmp_path / "ldg", config, seen.append).fit()
    assert [(s.epoch, s.step) for s in seen] == [(1, k) for k in range(1, 5)]  # 32 images in steps of 8
    assert [s.forward_batch for s in seen] == [16] * 4  # originals and distorted copies in one 2N forward
    try:
        import pyiqa

        # the resized images overshoot [0, 1] a little (bicubic), which pyiqa's input check refuses
        metric = pyiqa.create_metric("cw_ssim", device="cpu", check_input_range=False)
    except ImportError:
        from temu.train.cwssim import cw_ssim as metric
    csv_path, root = dataset
    records = read_records(csv_path, root)
    mos = {str(r.path): r.mos for r in records[:32]}
    low, high = min(mos.values()), max(mos.values())
    for s in seen:
        y = torch.tensor([(mos[p] - low) / (high - low) for p in s.paths])
        torch.testing.assert_close(s.targets.double(), y.double(), atol=1e-6, rtol=0)  # the batch's own MOS
        outside = s.distorted == s.images
        assert outside.any() and not outside.all()  # a local distortion: part of each copy changed
        f = metric(s.distorted.double(), s.images.double()).reshape(-1).clamp(0, 1)
        torch.testing.assert_close(s.fidelity.double(), f, atol=1e-5, rtol=0)
        assert (f < 1).any()
        torch.testing.assert_close(s.ldg_targets.double(), f * y.double(), atol=1e-5, rtol=0)
    assert float(read_metrics(tmp_path / "ldg" / "metrics.csv")[0]["train_ldg"]) > 0


def test_no_ldg_runs_no_distorted_forward(dataset, tiny_kwargs, tmp_path):
    seen: list = []
    out = tmp_path / "noldg"
    trainer_on(dataset, tiny_kwargs, out, TrainConfig(epochs=1, batch_size=8, ldg=False), seen.append).fit()
    assert [s.forward_batch for s in seen] == [8] * 4
    assert all(s.distorted is None and s.fidelity is None and s.ldg_targets is None for s in seen)
    assert all(float(s.losses[3]) == 0 for s in seen)
    assert float(read_metrics(out / "metrics.csv")[0]["train_ldg"]) == 0.0


# ------------------------------------------------------------------ data through the CLI


def test_each_dataset_format_parses_through_the_cli(tmp_path, capsys):
    from test_data import EXPECTED_SKIP, FORMAT_CASES, make_image, write_csv

    from temu.data import DATASET_FORMATS

    for key, (root_rel, header, rows) in sorted(FORMAT_CASES.items()):
        fmt = DATASET_FORMATS[key]
        root = tmp_path / key / root_rel
        skip = EXPECTED_SKIP.get(key, 0)
        for row in rows[skip:]:
            make_image(root / row[header.index(fmt.path_col)])
        csv_path = write_csv(tmp_path / key / "meta.csv", header, rows)
        # the validation CSV: the same rows, other image files (an image may not be in both sets)
        column = header.index(fmt.path_col)
        val_rows = [[f"val/{c}" if i == column else c for i, c in enumerate(row)] for row in rows]
        for row in val_rows[skip:]:
            make_image(root / row[column])
        val_csv = write_csv(tmp_path / key / "val.csv", header, val_rows)
        args = ["--train", str(csv_path), "--val", str(val_csv), "--image-root", str(root), "--format", key]
        args += ["--batch-size", "2"]
        assert main([*args, "--output", str(tmp_path / "out"), "--dry-run"]) == 0, key
        summary = json.loads(capsys.readouterr().out)
        assert summary["format"] == key and summary["lower_better"] == fmt.lower_better
        assert summary["train_images"] == summary["val_images"] == len(rows) - skip
        scores = [float(row[header.index(fmt.mos_col)]) for row in rows[skip:]]
        assert (summary["mos_scale"]["low"], summary["mos_scale"]["high"]) == (min(scores), max(scores))


def sizes(summary: dict) -> tuple[int, int]:
    return summary["train_images"], summary["val_images"]


def test_split_file_split_column_and_random_split(dataset, tmp_path, capsys):
    from temu.data import write_split_file

    csv_path, root = dataset
    common = ["--train", str(csv_path), "--image-root", str(root), "--output", str(tmp_path / "o"), "--dry-run"]
    common += ["--batch-size", "8"]
    split_file = tmp_path / "split.pkl"
    write_split_file(
        split_file, {1: {"train": list(range(30)), "val": list(range(30, 35)), "test": list(range(35, 40))}}
    )
    assert main([*common, "--split-file", str(split_file)]) == 0
    assert sizes(json.loads(capsys.readouterr().out)) == (30, 5)

    rows = read_metrics(csv_path)
    with_column = tmp_path / "with_split.csv"
    with with_column.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mos", "official_split"])
        writer.writerows([r["image"], r["mos"], "train" if i % 4 else "test"] for i, r in enumerate(rows))
    column = ["--train", str(with_column), *common[2:], "--split-column", "official_split"]
    assert main(column) == 2
    assert "no 'val' items; it has 10 'test' items: pass --val-part test" in capsys.readouterr().err
    assert main([*column, "--val-part", "test"]) == 0
    assert sizes(json.loads(capsys.readouterr().out)) == (30, 10)

    assert main([*common, "--val-fraction", "0.25", "--seed", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["val_images"] == 10
    assert main([*common, "--val-fraction", "0.25", "--val", str(csv_path)]) == 2
    assert "choose one way" in capsys.readouterr().err


def test_bad_rows_stop_the_run_before_training(dataset, base_args, tmp_path, capsys):
    csv_path, root = dataset
    (root / "images" / "corrupt.png").write_bytes(b"not a png at all")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(
        csv_path.read_text() + "images/missing.png,50\nimages/corrupt.png,40\nimages/rocket_pristine.png,n/a\n"
    )
    args = [*base_args, "--train", str(bad_csv), "--epochs", "1"]
    out = tmp_path / "bad"
    assert run([*args, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "3 row(s)" in err
    for row, reason in (
        (42, "image file not found"),
        (43, "not readable as an image"),
        (44, "score 'n/a' is not a number"),
    ):
        assert f"row {row}:" in err and reason in err
    assert "--skip-bad" in err
    assert not (out / "checkpoint.pt").exists() and not (out / "model.safetensors").exists()
    assert (out / "bad_rows.txt").read_text().count("row ") == 3

    assert run([*args, "--output", str(tmp_path / "skipped"), "--skip-bad"]) == 0
    assert "leaving out 3 unusable row(s)" in capsys.readouterr().err
    assert json.loads((tmp_path / "skipped" / "run.json").read_text())["data"]["skipped_rows"] == 3


# ------------------------------------------------------------------ failures, options, DDP


def test_nan_loss_stops_naming_the_batch(dataset, tiny_kwargs, tmp_path):
    seen: list = []
    trainer: Trainer

    def poison_after_first_step(info) -> None:  # from step 2 on, every score (and so the loss) is NaN
        seen.append(info)
        if info.step == 1:
            with torch.no_grad():
                for p in trainer.model.head.parameters():
                    p.fill_(float("nan"))

    config = TrainConfig(epochs=1, batch_size=8, ldg=False, sync_every=3)
    trainer = trainer_on(dataset, tiny_kwargs, tmp_path, config, poison_after_first_step)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 2 of 4") as info:
        trainer.fit()
    # the NaN appeared at step 2 and was found at the check after step 3 (sync_every=3)
    assert [s.step for s in seen] == [1, 2, 3]
    assert torch.isfinite(seen[0].losses).all() and not torch.isfinite(seen[1].losses[0])
    assert str(seen[1].paths) in str(info.value)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_world_of_one_process_group_matches_a_plain_run(monkeypatch, half_run, base_args, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
    }.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "ddp"
    assert (
        run([*base_args, "--epochs", str(EPOCHS), "--output", str(out), "--stop-after-epochs", "1", "--device", "cpu"])
        == 0
    )
    assert not torch.distributed.is_initialized()  # the group it made is gone
    assert json.loads((out / "run.json").read_text())["world_size"] == 1
    a, b = load_file(out / "model.safetensors"), load_file(half_run / "model.safetensors")
    assert a.keys() == b.keys()
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    assert read_metrics(out / "metrics.csv")[0]["val_srcc"] == read_metrics(half_run / "metrics.csv")[0]["val_srcc"]


def test_options_are_validated(base_args, tmp_path, capsys):
    assert parse_layers("all") is None and parse_layers("14") == 14
    assert parse_layers("1-3,7") == [1, 2, 3, 7]
    with pytest.raises(ValueError, match="PLCC loss needs two images"):
        TrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="ldg_magnitude"):
        TrainConfig(ldg_magnitude=40)
    assert run([*base_args, "--batch-size", "64", "--epochs", "1", "--output", str(tmp_path / "big")]) == 2
    assert "fewer than one batch of 64" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_match_one_on_the_same_global_batches(base_args, tmp_path):
    """torchrun with 2 CPU processes (gloo): sharded data, DDP-averaged gradients, gathered validation.

    With the MSE loss alone and no LDG the gradient of a global batch is the mean of the two
    shards' gradients, and DistributedSampler gives 2 processes the same global batches as 1,
    so both runs must agree (up to float summation order).
    """
    import os
    import subprocess
    import sys

    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    repo = Path(temu.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    args = [*base_args, "--epochs", "2", "--plcc-weight", "0", "--no-ldg", "--device", "cpu", "--precision", "fp32"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        "-m",
        "temu.cli.finetune",
    ]
    done = subprocess.run(
        [*launch, *args, "--output", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x 2 processes" in done.stderr
    assert run([*args, "--output", str(tmp_path / "one")]) == 0

    two, one = read_metrics(tmp_path / "two" / "metrics.csv"), read_metrics(tmp_path / "one" / "metrics.csv")
    for a, b in zip(two, one):
        for key in ("train_mse", "val_srcc", "val_plcc", "val_krcc", "val_rmse"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=2e-5), key
    heads = load_file(tmp_path / "two" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    for key in heads[0]:
        torch.testing.assert_close(heads[0][key], heads[1][key], rtol=0, atol=2e-4)


def test_variant_i_with_chosen_layers_trains_and_loads(base_args, tmp_path):
    out = tmp_path / "variant-i"
    assert run([*base_args, "--epochs", "1", "--variant", "i", "--layers", "1-2", "--output", str(out)]) == 0
    model = temu.load(out)
    assert model.config.variant == "I" and model.config.layers == (1, 2) and model.mos_scale is not None
    with pytest.raises(temu.errors.WeightsError, match="unexpected keys"):  # the prompt learner was saved with the head
        TeMuIQA.from_pretrained(out, variant="S")


# ------------------------------------------------------------------ what real folders hold: bad data and old runs


@pytest.mark.parametrize("kind", ["empty", "truncated", "foreign pickle", "foreign torch file"])
def test_resume_from_an_unusable_checkpoint_is_one_line(kind, half_run, base_args, tmp_path, capsys):
    out = tmp_path / "broken"
    shutil.copytree(half_run, out)
    checkpoint = out / "checkpoint.pt"
    data = checkpoint.read_bytes()
    if kind == "empty":
        checkpoint.write_bytes(b"")
    elif kind == "truncated":
        checkpoint.write_bytes(data[: len(data) // 2])
    elif kind == "foreign pickle":
        torch.save({"model": Path("weights.bin")}, checkpoint)  # a Python object no checkpoint holds
    else:
        torch.save({"state_dict": {"weight": torch.zeros(2)}}, checkpoint)
    assert run([*base_args, "--epochs", str(EPOCHS), "--output", str(out), "--resume"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("temu-finetune: ") for line in lines), lines  # no traceback, no torch warning
    (error,) = [line for line in lines if line.startswith("temu-finetune: error:")]
    assert str(checkpoint) in error and "--overwrite" in error and "weights_only" not in error


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("batch larger than the training set", "fewer than one batch of 64"),
        ("one validation image", "validation set has 1 image(s)"),
        ("constant validation scores", "all 3 validation images have the same score"),
        ("--val is the --train CSV", "is the --train CSV"),
    ],
)
def test_dry_run_refuses_what_the_run_would(case, says, dataset, base_args, tmp_path, capsys):
    csv_path, _ = dataset
    header, *rows = csv_path.read_text().splitlines()

    def write(name: str, lines: list[str]) -> str:
        (tmp_path / name).write_text("\n".join([header, *lines]) + "\n")
        return str(tmp_path / name)

    extra = {
        "batch larger than the training set": ["--batch-size", "64"],  # 32 training images
        "one validation image": ["--train", write("t1.csv", rows[1:]), "--val", write("v1.csv", rows[:1])],
        "constant validation scores": [
            "--train", write("t3.csv", rows[3:]),
            "--val", write("v3.csv", [row.rsplit(",", 1)[0] + ",50" for row in rows[:3]]),
        ],
        "--val is the --train CSV": ["--val", str(csv_path)],
    }[case]  # fmt: skip
    assert run([*base_args, *extra, "--output", str(tmp_path / "dry"), "--dry-run"]) == 2
    assert says in capsys.readouterr().err


def test_float_tiff_is_refused_by_the_check_not_mid_epoch(dataset, base_args, tmp_path, capsys):
    from test_data import _float_tiff

    csv_path, root = dataset
    tiff = _float_tiff(tmp_path / "float.tif")
    bad_csv = tmp_path / "with_tiff.csv"
    bad_csv.write_text(csv_path.read_text() + f"{tiff},55\n")
    args = [*base_args, "--train", str(bad_csv), "--epochs", "1", "--no-ldg"]
    for check in ("header", "full"):
        assert run([*args, "--check-images", check, "--output", str(tmp_path / check), "--dry-run"]) == 2
        assert "row 42:" in capsys.readouterr().err
    assert run([*args, "--skip-bad", "--output", str(tmp_path / "trained")]) == 0
    assert "leaving out 1 unusable row(s)" in capsys.readouterr().err
    assert len(read_metrics(tmp_path / "trained" / "metrics.csv")) == 1


def test_old_run_files_are_refused_or_cleared(base_args, tiny_head_dir, tmp_path, capsys):
    head = tmp_path / "head"
    shutil.copytree(tiny_head_dir, head)  # a saved head: config.json, model.safetensors, README.md
    args = [*base_args, "--epochs", "1", "--no-ldg", "--output", str(head)]
    before = (head / "model.safetensors").read_bytes()
    for extra in ([], ["--dry-run"]):
        assert run([*args, *extra]) == 2
        assert "already holds a head" in capsys.readouterr().err
    assert (head / "model.safetensors").read_bytes() == before
    assert run([*args, "--overwrite", "--train", str(tmp_path / "typo.csv")]) == 2  # data unreadable: keep the head
    assert "CSV file not found" in capsys.readouterr().err
    assert (head / "model.safetensors").read_bytes() == before

    (head / "bad_rows.txt").write_text("row 9: stale\n")
    (head / "README.md").write_text("the card of another model\n")
    (head / "notes.txt").write_text("mine\n")
    assert run([*args, "--overwrite"]) == 0
    assert "--overwrite: deleted" in capsys.readouterr().err
    assert not (head / "bad_rows.txt").exists() and (head / "notes.txt").read_text() == "mine\n"
    assert "another model" not in (head / "README.md").read_text()
    assert (head / "model.safetensors").read_bytes() != before
    assert json.loads((head / "config.json").read_text())["model"]["mos_scale"] is not None
