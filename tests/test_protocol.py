"""``temu-finetune --splits N`` and temu.train.protocol.run_splits: N runs on N splits, the summary, resume.

The data are the synthetic dataset of tests/synthetic_iqa.py as a full-reference CSV: the 10
versions of each of the 4 photographs share a 'ref' cell, so a random split holds out whole
photographs (0.25 of 4 references: one photograph, 10 images, per split).
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from temu import TeMuIQA
from temu.cli.finetune import main
from temu.data import DataOptions, prepare_split_data, write_split_file
from temu.evaluation.report import METRICS
from temu.train.config import TrainConfig
from temu.train.protocol import read_summary, run_splits, summarise

pytestmark = pytest.mark.usefixtures("one_thread")

SPLITS, EPOCHS = 3, 2


@pytest.fixture(scope="module")
def fr_dataset(synthetic_dataset, tmp_path_factory) -> tuple[Path, Path]:
    """(fr.csv, image root): the synthetic dataset with a 'ref' column naming each image's photograph."""
    csv_path, root = synthetic_dataset
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    path = tmp_path_factory.mktemp("fr") / "fr.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "ref", "mos"])
        writer.writerows([r["image"], r["image"].split("/")[1].split("_")[0], r["mos"]] for r in rows)
    return path, root


@pytest.fixture(scope="module")
def base_args(fr_dataset, tiny_kwargs) -> list[str]:
    csv_path, root = fr_dataset
    return [
        "--train", str(csv_path), "--image-root", str(root),
        "--backbone", tiny_kwargs["backbone"], "--pretrained", tiny_kwargs["pretrained"],
        "--image-size", "64", "--batch-size", "8", "--lr", "0.01", "--epochs", str(EPOCHS),
        "--val-fraction", "0.25", "--quiet",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory, base_args) -> Path:
    out = tmp_path_factory.mktemp("protocol") / "three"
    assert main([*base_args, "--splits", str(SPLITS), "--output", str(out)]) == 0
    return out


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def without_seconds(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_three_splits_are_three_runs_on_different_grouped_validation_sets(
    protocol_run, fr_dataset, base_args, tmp_path
):
    csv_path, root = fr_dataset
    for k in range(1, SPLITS + 1):
        for name in ("config.json", "model.safetensors", "metrics.csv", "checkpoint.pt", "run.json", "curves.png"):
            assert (protocol_run / f"split-{k}" / name).is_file(), (k, name)
    assert not (protocol_run / "checkpoint.pt").exists()  # nothing of a single run at the top
    datas = prepare_split_data(
        DataOptions(csv=csv_path, image_root=root), splits=SPLITS, seed=0, val_fraction=0.25, log=print
    )
    with csv_path.open(newline="") as handle:
        ref_of = {i + 2: row["ref"] for i, row in enumerate(csv.DictReader(handle))}
    val_sets = [frozenset(r.path for r in d.val) for d in datas]
    assert len(set(val_sets)) == SPLITS  # three different validation sets
    for k, data in enumerate(datas, start=1):
        val_refs, train_refs = {ref_of[r.row] for r in data.val}, {ref_of[r.row] for r in data.train}
        assert len(val_refs) == 1 and val_refs.isdisjoint(train_refs)  # one whole photograph held out
        run = json.loads((protocol_run / f"split-{k}" / "run.json").read_text())
        assert run["split"] == k and run["seed"] == k - 1 and run["train"]["seed"] == k - 1
        assert run["data"]["grouped_by"] == "ref" and run["data"]["val_images"] == len(data.val) == 10
        assert f"(seed {k - 1};" in run["data"]["split"]
    assert [r.seed for r in read_summary(protocol_run / "summary.csv")] == [0, 1, 2]

    # split 2 is exactly the single run with --seed 1
    single = tmp_path / "seed-1"
    assert main([*base_args, "--seed", "1", "--output", str(single)]) == 0
    assert without_seconds(read_rows(single / "metrics.csv")) == without_seconds(
        read_rows(protocol_run / "split-2" / "metrics.csv")
    )


def test_summary_medians_are_those_of_the_split_files(protocol_run):
    summary = read_summary(protocol_run / "summary.csv")
    assert [r.split for r in summary] == [1, 2, 3]
    per_split = []
    for result in summary:
        rows = read_rows(protocol_run / f"split-{result.split}" / "metrics.csv")
        assert list(rows[0])[:11] == [
            "epoch", "lr", "train_loss", "train_mse", "train_plcc", "train_ldg",
            "val_srcc", "val_plcc", "val_fitted_plcc", "val_krcc", "val_rmse",
        ]  # fmt: skip
        best = max(rows, key=lambda r: float(r["val_srcc"]) + float(r["val_plcc"]))  # first of equals, as the trainer
        assert result.best_epoch == int(best["epoch"])
        values = {key: float(best[f"val_{key}"]) for key in METRICS}
        assert result.metrics == pytest.approx(values, rel=1e-5, abs=1e-6)
        per_split.append(values)
    markdown = (protocol_run / "summary.md").read_text()
    for stat, fn in (("median", np.median), ("mean", np.mean), ("std (ddof=0)", np.std)):
        (line,) = [line for line in markdown.splitlines() if line.startswith(f"| {stat} |")]
        cells = [float(c) for c in line.strip("|").split("|")[1:]]
        expected = [fn([p[key] for p in per_split]) for key in METRICS]
        assert cells == pytest.approx(expected, abs=1.5e-4), stat  # 4 decimals in summary.md
    medians = summarise(summary)["median"]
    assert medians == pytest.approx({key: np.median([p[key] for p in per_split]) for key in METRICS}, abs=1e-5)


def test_a_stopped_protocol_resumes_to_the_same_summary(protocol_run, base_args, tmp_path, capsys):
    out = tmp_path / "stopped"
    args = [*base_args, "--splits", str(SPLITS), "--output", str(out)]
    assert main([*args, "--stop-after-epochs", str(EPOCHS + 1)]) == 0  # split 1 done, split 2 after its epoch 1
    assert len(read_rows(out / "split-2" / "metrics.csv")) == 1 and not (out / "split-3").exists()
    assert not (out / "summary.csv").exists()
    assert "continue with the same command plus --resume" in capsys.readouterr().err
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "pass --resume to continue" in err
    assert main([*args, "--resume"]) == 0
    assert (out / "summary.csv").read_text() == (protocol_run / "summary.csv").read_text()
    for k in range(1, SPLITS + 1):
        assert without_seconds(read_rows(out / f"split-{k}" / "metrics.csv")) == without_seconds(
            read_rows(protocol_run / f"split-{k}" / "metrics.csv")
        )


def test_run_splits_in_python_killed_mid_split_resumes(protocol_run, fr_dataset, tiny_kwargs, tmp_path):
    """The library function with the CLI's recipe: an exception in split 3 (an interrupted job), then resume=True."""
    csv_path, root = fr_dataset
    options = DataOptions(csv=csv_path, image_root=root)
    config = TrainConfig(epochs=EPOCHS, batch_size=8, lr=0.01, seed=0)

    def build() -> TeMuIQA:
        return TeMuIQA(**tiny_kwargs)

    steps: list[tuple[int, int]] = []

    def kill_in_split_3(info) -> None:
        steps.append((info.epoch, info.step))
        if len(steps) == (2 * EPOCHS + 1) * info.steps_per_epoch + 2:  # split 3, epoch 2, step 2
            raise KeyboardInterrupt

    out = tmp_path / "killed"
    common = dict(splits=SPLITS, val_fraction=0.25, progress=False, log=lambda msg: None)
    with pytest.raises(KeyboardInterrupt):
        run_splits(options, config, build, out, on_step=kill_in_split_3, **common)
    assert steps[-1] == (2, 2) and not (out / "summary.csv").exists()
    assert len(read_rows(out / "split-3" / "metrics.csv")) == 1  # its epoch 1 was checkpointed
    result = run_splits(options, config, build, out, resume=True, **common)
    assert result.finished and [r.split for r in result.splits] == [1, 2, 3]
    assert (out / "summary.csv").read_text() == (protocol_run / "summary.csv").read_text()
    assert result.statistics["median"] == pytest.approx(
        summarise(read_summary(out / "summary.csv"))["median"], abs=1e-5
    )


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("--splits 0", "argument --splits: expected a positive integer, got '0'"),
        ("split file without split 3", "no split '3'; the file has splits [1, 2]"),
        ("split file of another CSV", "index 45, but there are 40 records"),
        ("too small for 5 validation sets", "too small for --splits 5 different validation sets"),
        ("no such reference column", "no group column named 'scene'"),
        ("--val with --splits", "--val gives one fixed validation set"),
        ("a named split column", "--split-column official_split is one split"),
    ],
)
def test_bad_protocol_input_is_one_line_before_training(case, says, fr_dataset, base_args, tmp_path, capsys):
    csv_path, root = fr_dataset
    split_file = tmp_path / "split.pkl"
    indices = list(range(40))
    if case == "split file of another CSV":
        write_split_file(split_file, {k: {"train": indices[:30], "val": [*indices[30:39], 45]} for k in (1, 2, 3)})
    else:
        write_split_file(split_file, {k: {"train": indices[:30], "val": indices[30:]} for k in (1, 2)})
    with_column = tmp_path / "with_split.csv"
    with_column.write_text(
        "\n".join(
            [line + ("," + ("official_split" if i == 0 else "train" if i % 4 else "val")) for i, line in
             enumerate(csv_path.read_text().splitlines())]
        ) + "\n"
    )  # fmt: skip
    no_fraction = [a for a in base_args if a not in ("--val-fraction", "0.25")]
    args = {
        "--splits 0": [*base_args, "--splits", "0"],
        "split file without split 3": [*no_fraction, "--splits", "3", "--split-file", str(split_file)],
        "split file of another CSV": [*no_fraction, "--splits", "3", "--split-file", str(split_file)],
        "too small for 5 validation sets": [*base_args, "--splits", "5"],
        "no such reference column": [*base_args, "--splits", "2", "--group-column", "scene"],
        "--val with --splits": [*base_args, "--splits", "2", "--val", str(csv_path)],
        "a named split column": [
            *no_fraction, "--train", str(with_column), "--splits", "2", "--split-column", "official_split",
        ],
    }[case]  # fmt: skip
    out = tmp_path / "out"
    try:
        status = main([*args, "--output", str(out)])
    except SystemExit as stop:  # argparse's own refusal
        status = stop.code
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("temu-finetune: error: ") and says in lines[0], lines
    assert not out.exists()  # nothing written, nothing trained


def test_split_file_and_numbered_split_column_give_their_numbered_splits(fr_dataset, base_args, tmp_path, capsys):
    csv_path, _ = fr_dataset
    split_file = tmp_path / "split.pkl"
    parts = {k: {"train": [i for i in range(40) if i % 4 != k], "val": list(range(k, 40, 4))} for k in (1, 2, 3)}
    write_split_file(split_file, parts)
    no_fraction = [a for a in base_args if a not in ("--val-fraction", "0.25")]
    args = [*no_fraction, "--splits", "2", "--split-file", str(split_file), "--split-index", "2", "--dry-run"]
    assert main([*args, "--output", str(tmp_path / "dry")]) == 0
    summaries = json.loads(capsys.readouterr().out)["splits"]
    assert [s["split"] for s in summaries] == [
        f"--split-file {split_file} (--split-index {k}), validating on its 'val' part" for k in (2, 3)
    ]
    assert [s["val_images"] for s in summaries] == [10, 10] and not (tmp_path / "dry").exists()

    header, *rows = csv_path.read_text().splitlines()
    with_columns = tmp_path / "columns.csv"
    names = [f"ratio802_seed123_split_{k:02d}" for k in (1, 2, 3)]
    lines = [",".join([header, *names])]
    for i, row in enumerate(rows):
        lines.append(",".join([row, *("test" if i % 4 == k else "train" for k in (1, 2, 3))]))
    with_columns.write_text("\n".join(lines) + "\n")
    args = [*no_fraction, "--train", str(with_columns), "--splits", "3", "--split-column", "1", "--val-part", "test"]
    assert main([*args, "--dry-run", "--output", str(tmp_path / "dry")]) == 0
    summaries = json.loads(capsys.readouterr().out)["splits"]
    assert [s["split"].split(",")[0] for s in summaries] == [f"--split-column {k}" for k in (1, 2, 3)]


def test_splits_1_keeps_the_single_run_layout_and_refuses_a_protocol_folder(protocol_run, base_args, tmp_path, capsys):
    out = tmp_path / "reuse"
    shutil.copytree(protocol_run, out)
    assert main([*base_args, "--output", str(out)]) == 2  # --splits 1 (the default) in a protocol's folder
    assert "split-1/checkpoint.pt" in capsys.readouterr().err
    assert main([*base_args, "--output", str(out), "--overwrite", "--no-ldg", "--epochs", "1"]) == 0
    assert not (out / "split-1").exists() and not (out / "summary.csv").exists()
    assert (out / "checkpoint.pt").is_file() and (out / "metrics.csv").is_file()
    assert main([*base_args, "--splits", "2", "--output", str(out), "--resume"]) == 2
    assert "holds a single run" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_run_the_protocol(base_args, tmp_path):
    """torchrun with 2 CPU processes (gloo) runs every split on both and writes one summary."""
    import os
    import subprocess
    import sys

    import temu

    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    repo = Path(temu.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    out = tmp_path / "two"
    args = [*base_args, "--splits", "2", "--epochs", "1", "--no-ldg", "--device", "cpu", "--output", str(out)]
    done = subprocess.run(
        [*launch, "-m", "temu.cli.finetune", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("2 splits done") == 1  # rank 0 speaks
    summary = read_summary(out / "summary.csv")
    assert [r.split for r in summary] == [1, 2]
    assert all(json.loads((out / f"split-{k}" / "run.json").read_text())["world_size"] == 2 for k in (1, 2))


def test_one_progress_bar_over_all_splits_with_the_time_left(fr_dataset, tiny_kwargs, tmp_path):
    import contextlib
    import io

    csv_path, root = fr_dataset
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        result = run_splits(
            DataOptions(csv=csv_path, image_root=root),
            TrainConfig(epochs=1, batch_size=8, ldg=False),
            lambda: TeMuIQA(**tiny_kwargs),
            tmp_path / "bar",
            splits=2,
            val_fraction=0.25,
            progress=True,
            log=lambda msg: None,
        )
    assert result.finished
    states = [line for line in stderr.getvalue().replace("\r", "\n").splitlines() if "step" in line]
    assert states and all("/6 [" in line for line in states)  # one bar: 2 splits x 1 epoch x 3 steps, no per-epoch bars
    assert "split 2/2 epoch 1/1: 100%" in states[-1] and "<00:00" in states[-1]  # elapsed<left, as tqdm writes it
