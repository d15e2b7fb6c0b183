"""The paper's protocol: one fine-tuning run on each of N splits of a dataset, and the summary over them.

Split ``K`` (1-based) is the run that a single run with seed ``config.seed + K - 1`` would be: its
split (:func:`temu.data.prepare_split_data`: random with that seed, grouped by reference image
where the data has one, or split number ``K`` of a split file / column), its head
initialisation (``torch.manual_seed`` before ``build_model``), shuffling and LDG draws. It is
written to ``output/split-K/`` as a single run writes its folder. When every split is done,
``output/summary.csv`` holds one row per split (the validation metrics of its best epoch) and
``output/summary.md`` the same table with the median, mean and standard deviation (population,
ddof=0) of each metric.

Resuming (``resume=True``) keeps the finished splits, continues the interrupted one from its
last epoch (:meth:`Trainer.resume`) and runs the rest; the result equals an uninterrupted run.
Under torchrun every process runs this function; rank 0 writes the files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..data.prepare import DataOptions, PreparedData, prepare_split_data
from ..evaluation.report import METRIC_LABELS, METRICS
from ..files import atomic_write
from ..model import TeMuIQA
from .checkpoint import CHECKPOINT_NAME, load_run_checkpoint
from .config import TrainConfig
from .distributed import DistInfo, barrier
from .runfiles import (
    BAD_ROWS_NAME,
    PROTOCOL_NAME,
    RUN_NAME,
    SUMMARY_CSV_NAME,
    SUMMARY_MD_NAME,
    delete_run_files,
    old_run_files,
    split_folder,
    write_run_file,
)
from .trainer import StepInfo, Trainer, steps_per_epoch

__all__ = [
    "STATISTICS",
    "SUMMARY_COLUMNS",
    "ProtocolResult",
    "SplitResult",
    "read_summary",
    "run_splits",
    "summarise",
    "write_summary",
]

#: Columns of summary.csv, in order.
SUMMARY_COLUMNS = ("split", "seed", "best_epoch", *METRICS, "train_images", "val_images")

#: The statistics over the splits in summary.md: the median (the IQA papers' usual statistic), mean, std (ddof=0).
STATISTICS = ("median", "mean", "std")


@dataclass(frozen=True)
class SplitResult:
    """One finished split: its number (1-based), seed, best epoch and that epoch's validation metrics."""

    split: int
    seed: int
    best_epoch: int
    metrics: dict[str, float]
    train_images: int
    val_images: int

    def row(self) -> dict[str, Any]:
        """The split's summary.csv row (:data:`SUMMARY_COLUMNS`)."""
        return {
            "split": self.split,
            "seed": self.seed,
            "best_epoch": self.best_epoch,
            **{key: self.metrics.get(key, math.nan) for key in METRICS},
            "train_images": self.train_images,
            "val_images": self.val_images,
        }


@dataclass(frozen=True)
class ProtocolResult:
    """What :func:`run_splits` returns.

    Attributes:
        output: the protocol's folder.
        splits: the finished splits, in order.
        planned: how many splits the protocol has.
        finished: False when it stopped early (``stop_after_epochs``); summary files are then not written.
        statistics: ``{"median" | "mean" | "std": {metric: value}}`` over the splits (empty unless finished).
    """

    output: Path
    splits: list[SplitResult]
    planned: int
    finished: bool
    statistics: dict[str, dict[str, float]] = field(default_factory=dict)


def summarise(results: Sequence[SplitResult]) -> dict[str, dict[str, float]]:
    """Median, mean and population standard deviation (ddof=0) of each metric over ``results``.

    Args:
        results: at least one split. A NaN metric (an undefined correlation) makes its statistics NaN.

    Returns:
        ``{"median": {metric: value}, "mean": {...}, "std": {...}}`` over :data:`~temu.evaluation.METRICS`.
    """
    if not results:
        raise ValueError("results is empty: at least one split is needed for a summary")
    values = {key: np.array([r.metrics.get(key, math.nan) for r in results], dtype=np.float64) for key in METRICS}
    return {
        "median": {key: float(np.median(v)) for key, v in values.items()},
        "mean": {key: float(np.mean(v)) for key, v in values.items()},
        "std": {key: float(np.std(v)) for key, v in values.items()},
    }


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_summary(results: Sequence[SplitResult], output: Path, *, about: str = "") -> tuple[Path, Path]:
    """Write ``summary.csv`` (one row per split) and ``summary.md`` (that table and the statistics) atomically.

    Args:
        results: the finished splits, in order.
        output: the protocol's folder.
        about: a line for summary.md saying what was run (data, splits, seeds).

    Returns:
        The paths of summary.csv and summary.md.
    """
    output = Path(output)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for result in results:
        row = result.row()
        writer.writerow([_number(row[c]) for c in SUMMARY_COLUMNS])
    csv_path = output / SUMMARY_CSV_NAME
    atomic_write(csv_path, buffer.getvalue().encode("utf-8"))

    stats = summarise(results)
    labels = [METRIC_LABELS[key] for key in METRICS]
    lines = [f"# {len(results)} splits: validation metrics of each split's best epoch", ""]
    if about:
        lines += [about, ""]
    lines += [
        "| split | seed | best epoch | " + " | ".join(labels) + " | train images | val images |",
        "|---|---|---|" + "---|" * len(labels) + "---|---|",
    ]
    for r in results:
        cells = [f"{r.metrics.get(key, math.nan):.4f}" for key in METRICS]
        lines.append(
            f"| {r.split} | {r.seed} | {r.best_epoch} | "
            + " | ".join(cells)
            + f" | {r.train_images} | {r.val_images} |"
        )
    lines += ["", "| statistic | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    names = {"median": "median", "mean": "mean", "std": "std (ddof=0)"}
    for stat in STATISTICS:
        lines.append(f"| {names[stat]} | " + " | ".join(f"{stats[stat][key]:.4f}" for key in METRICS) + " |")
    lines += [
        "",
        "RMSE is on the [0, 1] scale (each split's MOS normalised with its training set's range). "
        "Fitted PLCC: the PLCC after the VQEG 4-parameter logistic map fitted on the validation pairs.",
        "",
    ]
    md_path = output / SUMMARY_MD_NAME
    atomic_write(md_path, "\n".join(lines).encode("utf-8"))
    return csv_path, md_path


def read_summary(path: str | os.PathLike[str]) -> list[SplitResult]:
    """The splits of a ``summary.csv`` written by :func:`write_summary` (values as written, 6 significant digits)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        SplitResult(
            split=int(row["split"]),
            seed=int(row["seed"]),
            best_epoch=int(row["best_epoch"]),
            metrics={key: float(row[key]) for key in METRICS},
            train_images=int(row["train_images"]),
            val_images=int(row["val_images"]),
        )
        for row in rows
    ]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_splits(
    options: DataOptions,
    config: TrainConfig,
    build_model: Callable[[], TeMuIQA],
    output: str | os.PathLike[str],
    *,
    splits: int,
    val_fraction: float | None = None,
    val_part: str = "val",
    resume: bool = False,
    overwrite: bool = False,
    stop_after_epochs: int | None = None,
    info: DistInfo | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    run_info: Mapping[str, Any] | None = None,
) -> ProtocolResult:
    """Fine-tune on ``splits`` splits of one dataset, each in ``output/split-K``, then write the summary.

    Every split is prepared and checked before the first one trains, so bad data, a split file that
    does not fit the CSV, or a dataset too small for ``splits`` different validation sets stop it
    at once. Split ``K`` uses seed ``config.seed + K - 1`` for everything random (module docstring).

    Args:
        options: the dataset and how to read and split it (a split file / column gives split K its
            K-th numbered split, counted from ``split_index`` / the column number).
        config: the recipe, the same for every split (its ``seed`` is the first split's).
        build_model: makes the model to train; called once per split, after ``torch.manual_seed``.
        output: the protocol's folder.
        splits: how many splits (>= 1; 1 still writes ``split-1`` and a summary, unlike a single run).
        val_fraction: share of the rows (or reference images) held out at random (default 0.2).
        val_part: the part of a split file / column validated on.
        resume: keep the finished splits and continue the rest; overwrite: delete an earlier run's files.
        stop_after_epochs: stop after this many epochs in this call (all splits together); resume later.
        info: this process's rank and device (:func:`temu.train.distributed.setup`); default one CPU process.
        progress: one progress bar over all splits (rank 0), with the time left.
        log: where rank 0's one-line messages go (default stderr).
        on_step: passed to every split's :class:`Trainer`.
        run_info: more entries for each split's ``run.json`` and ``protocol.json`` (e.g. the command).

    Returns:
        The finished splits and, when all are done, their statistics.

    Raises:
        DataError: the folder holds another run (without ``resume``/``overwrite``), or the data or a
            checkpoint to resume cannot be used. NonFiniteLossError: a split's loss became NaN.
    """
    info = info or DistInfo()
    output = Path(output)
    main = info.is_main

    def say(msg: str) -> None:
        if main:
            (log or (lambda m: print(m, file=sys.stderr, flush=True)))(msg)

    old = old_run_files(output, protocol=True, resume=resume, overwrite=overwrite)
    bad_file = output / BAD_ROWS_NAME if main else None
    if old and main:  # the data check below writes the new run's list of bad rows
        (output / BAD_ROWS_NAME).unlink(missing_ok=True)
    datas = prepare_split_data(
        options, splits=splits, seed=config.seed, val_fraction=val_fraction, val_part=val_part, log=say,
        bad_file=bad_file,
    )  # fmt: skip
    steps = [steps_per_epoch(len(d.train), config.batch_size, info.world_size) for d in datas]
    if old and main:  # only once the data are read and checked: a mistake in the call keeps the old run
        delete_run_files(output, [p for p in old if p != output / BAD_ROWS_NAME], log=say)
    states: list[dict[str, Any] | None] = [None] * splits
    if resume:  # read (and checked) before anything trains
        for k in range(splits):
            folder = split_folder(output, k + 1)
            if (folder / CHECKPOINT_NAME).is_file():
                states[k] = load_run_checkpoint(folder)
    seeds = [config.seed + k for k in range(splits)]
    if main:
        output.mkdir(parents=True, exist_ok=True)
        if not resume:  # a resumed protocol's file is rewritten once its splits have been checked (below)
            _write_protocol_file(output, options, config, datas, seeds, dict(run_info or {}), info.world_size)
    barrier(info)
    for k, data in enumerate(datas):
        say(
            f"split {k + 1}/{splits} (seed {seeds[k]}): {len(data.train)} training and {len(data.val)} validation images ({data.split})"
        )

    total = sum(config.epochs * s for s in steps)
    done_before = sum(min(int(st["epoch"]), config.epochs) * s for st, s in zip(states, steps) if st is not None)
    bar = _bar(total, done_before, enabled=progress and main)
    start, trained_steps = time.perf_counter(), 0
    results: list[SplitResult] = []
    remaining = stop_after_epochs
    finished = True
    try:
        for k, data in enumerate(datas):
            if remaining is not None and remaining <= 0:
                finished = False
                break
            number = k + 1

            def split_log(msg: str, number: int = number) -> None:
                if bar is not None:
                    with bar.external_write_mode(file=sys.stderr):
                        say(f"split {number}/{splits}: {msg}")
                else:
                    say(f"split {number}/{splits}: {msg}")

            def step(step_info: StepInfo, number: int = number) -> None:
                nonlocal trained_steps
                trained_steps += 1
                if bar is not None:
                    if step_info.step == 1:
                        bar.set_description(f"split {number}/{splits} epoch {step_info.epoch}/{config.epochs}")
                    bar.update(1)
                if on_step is not None:
                    on_step(step_info)

            split_config = dataclasses.replace(config, seed=seeds[k])
            torch.manual_seed(seeds[k])  # the head's initialisation, as a single run with this seed
            model = build_model()
            folder = split_folder(output, number)
            trainer = Trainer(
                model, data.train, data.val, data.scale, split_config, folder,
                info=info, progress=False, log=split_log, on_step=step,
            )  # fmt: skip
            if states[k] is not None:
                trainer.resume(states[k])
                states[k] = None
            if main:
                folder.mkdir(parents=True, exist_ok=True)
                extra = {**dict(run_info or {}), "split": number, "splits": splits, "seed": seeds[k]}
                write_run_file(
                    folder / RUN_NAME, data=data, config=split_config, model=model, world_size=info.world_size,
                    extra=extra,
                )  # fmt: skip
            epochs_before = trainer.epoch
            result = trainer.fit(stop_after=remaining)
            if remaining is not None:
                remaining -= result.epochs_done - epochs_before
            if not result.finished:
                finished = False
                break
            results.append(
                SplitResult(
                    number, seeds[k], result.best_epoch, dict(result.best_metrics), len(data.train), len(data.val)
                )
            )
            best = result.best_metrics
            left = sum(config.epochs * s for s in steps[number:])
            elapsed = time.perf_counter() - start
            eta = f"; about {_duration(elapsed / trained_steps * left)} left" if trained_steps and left else ""
            split_log(
                f"done, best epoch {result.best_epoch}: "
                + ", ".join(f"{METRIC_LABELS[key]} {best.get(key, math.nan):.4f}" for key in METRICS)
                + eta
            )
            del trainer, model
            if info.device.type == "cuda":
                torch.cuda.empty_cache()
    finally:
        if bar is not None:
            bar.close()
    statistics: dict[str, dict[str, float]] = {}
    if finished:
        statistics = summarise(results)
        if main:
            write_summary(results, output, about=_about(datas, seeds, options))
            _write_protocol_file(output, options, config, datas, seeds, dict(run_info or {}), info.world_size)
        barrier(info)
        say(
            f"{splits} splits done; median "
            + ", ".join(f"{METRIC_LABELS[key]} {statistics['median'][key]:.4f}" for key in METRICS)
            + f" (summary in {output / SUMMARY_MD_NAME})"
        )
    else:
        say(f"stopped after {len(results)} finished split(s) of {splits}; continue with resume=True")
    return ProtocolResult(output, results, splits, finished, statistics)


def _about(datas: Sequence[PreparedData], seeds: Sequence[int], options: DataOptions) -> str:
    first = datas[0]
    return (
        f"Data: {options.csv} ({first.format.name}); splits like split 1's: {first.split}. "
        f"Seeds {seeds[0]}..{seeds[-1]}."
    )


def _bar(total: int, initial: int, *, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # smoothing=0: the rate (and so the time left) is the average since the start, validation included
    return tqdm(total=total, initial=initial, unit="step", smoothing=0, file=sys.stderr, dynamic_ncols=True)


def _write_protocol_file(
    output: Path,
    options: DataOptions,
    config: TrainConfig,
    datas: Sequence[PreparedData],
    seeds: Sequence[int],
    run_info: dict[str, Any],
    world_size: int,
) -> None:
    def plain(value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    info = {
        "temu_version": __version__,
        **run_info,
        "splits": len(datas),
        "seeds": list(seeds),
        "data_options": {k: plain(v) for k, v in dataclasses.asdict(options).items()},
        "train": config.to_dict(),
        "world_size": world_size,
        "split_data": [d.summary() for d in datas],
    }
    atomic_write(output / PROTOCOL_NAME, (json.dumps(info, indent=2, default=str) + "\n").encode("utf-8"))
