"""Evaluating a model on a labelled dataset: batched prediction, SRCC/PLCC/KRCC/RMSE, random splits.

Shared by the fine-tuning loop (validation after each epoch) and ``temu eval``.
Predictions are the model's scores in [0, 1]; targets are MOS normalised to [0, 1] with a
:class:`~temu.data.MOSScale` (1 = best), so RMSE is on that normalised scale. SRCC, PLCC and
KRCC do not depend on the (increasing, linear) normalisation.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .api import autocast_context
from .data import IQADataset, IQARecord, MOSScale, random_split
from .distributed import DistInfo, gather_cat
from .inputs import read_image
from .metrics import evaluate as metric_values
from .model import TeMuIQA
from .transforms import InputSize

__all__ = [
    "EvalReport",
    "ImageLoader",
    "SplitSummary",
    "build_dataset",
    "evaluate_model",
    "evaluate_scores",
    "make_loader",
    "predict",
    "random_subsets",
    "split_metrics",
    "target_scale",
]

METRICS = ("srcc", "plcc", "krcc", "rmse")


class ImageLoader:
    """``path -> [3, H, W]`` float32 in [0, 1] at the model's input size; runs in DataLoader workers.

    A plain class (not a lambda) so that it pickles into worker processes.
    """

    def __init__(self, input_size: InputSize) -> None:
        self.input_size = input_size

    def __call__(self, path: Path) -> torch.Tensor:
        return self.input_size(read_image(path)).contiguous()


def collate_same_size(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack ``(image, target, index)`` items into ``([B, 3, H, W], [B], [B])``; every image must have one size."""
    shapes = {tuple(img.shape) for img, _, _ in items}
    if len(shapes) > 1:
        raise ValueError(
            f"a batch holds images of different sizes {sorted(shapes)}: with --image-size native every training "
            "image must have the same size. Pass --image-size (e.g. 448) to resize them"
        )
    return _stack(items)


def collate_by_size(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Like :func:`collate_same_size`, but one ``(images, targets, indices)`` group per image size."""
    groups: dict[tuple[int, ...], list] = {}
    for item in items:
        groups.setdefault(tuple(item[0].shape), []).append(item)
    return [_stack(group) for group in groups.values()]


def _stack(items: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.stack([img for img, _, _ in items])
    targets = torch.stack([t for _, t, _ in items]).float()
    indices = torch.tensor([i for _, _, i in items], dtype=torch.long)
    return images, targets, indices


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    drop_last: bool,
    num_workers: int,
    info: DistInfo,
    by_size: bool = False,
) -> DataLoader:
    """A DataLoader whose sampler shards ``dataset`` over the processes and, if ``shuffle``,
    draws a new order each epoch from ``(seed, epoch)`` (call ``loader.sampler.set_epoch``).

    A :class:`~torch.utils.data.DistributedSampler` is used for one process too, so the order
    depends only on the seed and the epoch: a resumed run sees the same batches.
    Without ``drop_last`` the shards are padded to equal length by repeating items.
    Batches are ``(images, targets, indices)``; with ``by_size`` a list of them, one per image size.
    """
    sampler = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed, drop_last=False
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=info.device.type == "cuda",
        persistent_workers=num_workers > 0,
        collate_fn=collate_by_size if by_size else collate_same_size,
    )


@torch.inference_mode()
def predict(
    model: TeMuIQA,
    loader: DataLoader,
    *,
    size: int,
    info: DistInfo,
    precision: str = "auto",
    progress: bool = False,
    desc: str = "eval",
) -> np.ndarray:
    """Scores ``[size]`` (float64 in [0, 1]) of every item of ``loader.dataset``, in dataset order.

    The loader is made by :func:`make_loader` with ``by_size=True``; in a multi-process run each process scores
    its shard and the shards are gathered (every process gets the full result). Items that the
    sampler repeated to pad the shards are written twice with the same score.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = info.device
    scores: list[torch.Tensor] = []
    indices: list[torch.Tensor] = []
    with autocast_context(device, precision):
        for groups in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress, file=sys.stderr):
            for images, _, idx in groups:
                out = model(images.to(device, non_blocking=True), check_input=False)
                scores.append(out.float())
                indices.append(idx.to(device, non_blocking=True))
    model.train(was_training)
    local_scores = torch.cat(scores) if scores else torch.zeros(0, device=device)
    local_idx = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long, device=device)
    all_scores = gather_cat(info, local_scores).double().cpu().numpy()
    all_idx = gather_cat(info, local_idx).cpu().numpy()
    result = np.full(size, np.nan)
    result[all_idx] = all_scores
    missing = np.flatnonzero(np.isnan(result))
    if missing.size:
        raise RuntimeError(f"{missing.size} of {size} items got no score (first index {missing[0]}); this is a bug in temu")
    return result


def evaluate_scores(pred: Any, target: Any) -> dict[str, float]:
    """SRCC, PLCC, KRCC and RMSE of predictions against normalised targets (see :mod:`temu.metrics`).

    A constant prediction (an untrained or collapsed head) has no correlation: SRCC/PLCC/KRCC
    are then reported as NaN instead of raising, RMSE is still computed.
    """
    from .metrics import rmse

    try:
        return metric_values(pred, target)
    except ValueError as err:
        if "constant" not in str(err):
            raise
        return {"srcc": math.nan, "plcc": math.nan, "krcc": math.nan, "rmse": rmse(pred, target)}


def random_subsets(n: int, k: int, fraction: float, seed: int) -> list[np.ndarray]:
    """``k`` random subsets of ``range(n)`` for ``temu eval --splits``.

    Subset ``j`` (``j = 0..k-1``) is the held-out part of :func:`temu.data.random_split` of the
    ``n`` items with ``val_fraction=fraction`` and ``seed=seed + j``: ``round(fraction * n)``
    items (at least 1, at most ``n - 1``), drawn without replacement, sorted. This is the test
    part a random train/test split would give, so averaging a fixed model over the ``k`` subsets
    follows the "mean of k random splits" protocol without retraining.
    """
    if k < 1:
        raise ValueError(f"--splits must be >= 1, got {k}")
    positions = list(range(n))
    return [np.asarray(random_split(positions, fraction, seed + j)[1], dtype=np.int64) for j in range(k)]


@dataclass(frozen=True)
class SplitSummary:
    """Metrics over ``k`` random subsets: ``mean`` and ``std`` (population std, ddof=0) per metric, and each subset's values."""

    k: int
    fraction: float
    seed: int
    size: int
    mean: dict[str, float]
    std: dict[str, float]
    per_split: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "fraction": self.fraction,
            "seed": self.seed,
            "items_per_split": self.size,
            "mean": self.mean,
            "std": self.std,
            "per_split": self.per_split,
        }


def split_metrics(pred: np.ndarray, target: np.ndarray, k: int, fraction: float, seed: int) -> SplitSummary:
    """Metrics on each of :func:`random_subsets` ``(len(pred), k, fraction, seed)``, with mean and std."""
    subsets = random_subsets(len(pred), k, fraction, seed)
    per = [evaluate_scores(pred[s], target[s]) for s in subsets]
    mean = {m: float(np.mean([p[m] for p in per])) for m in METRICS}
    std = {m: float(np.std([p[m] for p in per])) for m in METRICS}
    return SplitSummary(k, fraction, seed, len(subsets[0]), mean, std, per)


def build_dataset(records: Sequence[IQARecord], model: TeMuIQA, scale: MOSScale) -> IQADataset:
    """An :class:`IQADataset` that decodes and resizes to ``model``'s input size (in the workers)."""
    return IQADataset(records, ImageLoader(model.input_size), scale)


# --------------------------------------------------------------------------- temu eval


@dataclass
class EvalReport:
    """Result of ``temu eval``: metrics on all items, optional split statistics, and how targets were scaled.

    ``pred`` (model scores) and ``target`` (normalised MOS) are ``[n]`` arrays in record order.
    """

    model: str
    data: str
    n: int
    metrics: dict[str, float]
    scale: MOSScale
    scale_source: str
    pred: np.ndarray
    target: np.ndarray
    splits: SplitSummary | None = None
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; an undefined correlation (constant predictions) is None."""
        return _json_safe({
            "model": self.model,
            "data": self.data,
            "images": self.n,
            "skipped_rows": self.skipped,
            "metrics": self.metrics,
            "rmse_scale": (
                f"RMSE between scores in [0, 1] and MOS normalised to [0, 1] with the range "
                f"{self.scale.low:g}..{self.scale.high:g} ({self.scale_source})"
            ),
            "mos_scale": self.scale.to_dict(),
            "splits": self.splits.to_dict() if self.splits is not None else None,
        })


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def target_scale(choice: str, model: TeMuIQA, records: Sequence[IQARecord], lower_better: bool) -> tuple[MOSScale, str]:
    """The MOS scale of ``temu eval --mos-range``: ``auto``, ``model``, ``data`` or ``LOW,HIGH``.

    ``model``: the range the head was fine-tuned on (its ``config.mos_scale``); ``data``: the
    min and max of the evaluated rows; ``auto``: ``model`` when the head has a range, else
    ``data``. The direction (lower is better or not) always comes from the dataset's format.
    """
    choice = choice.strip().lower()
    if choice in ("auto", "model"):
        saved = model.config.mos_scale
        if saved is not None:
            return MOSScale(saved["low"], saved["high"], lower_better), "the range the head was fine-tuned on"
        if choice == "model":
            raise ValueError("--mos-range model: this head has no MOS range (it was not fine-tuned); use --mos-range data or LOW,HIGH")
    if choice in ("auto", "data"):
        return MOSScale.fit(records, lower_better=lower_better), "the evaluated rows' own min and max"
    try:
        low, high = (float(v) for v in choice.split(","))
    except ValueError:
        raise ValueError(f"--mos-range {choice!r}: expected auto, model, data or LOW,HIGH (e.g. 1,100)") from None
    return MOSScale(low, high, lower_better), "--mos-range"


def evaluate_model(
    model: TeMuIQA,
    records: Sequence[IQARecord],
    scale: MOSScale,
    *,
    batch_size: int = 32,
    workers: int = 0,
    precision: str = "auto",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Score ``records`` with ``model`` (on its device); returns ``(pred, target, metrics)``, target = normalised MOS."""
    device = next(model.parameters()).device
    info = DistInfo(device=device)
    dataset = build_dataset(records, model, scale)
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, seed=0, drop_last=False, num_workers=workers, info=info, by_size=True)
    pred = predict(model, loader, size=len(dataset), info=info, precision=precision, progress=progress, desc="temu eval")
    target = np.asarray(scale.normalise([r.mos for r in records]), dtype=np.float64)
    return pred, target, evaluate_scores(pred, target)


def run_eval(args: Any) -> int:
    """``temu eval`` with parsed arguments (see :func:`temu.cli.build_parser`); returns the exit status."""
    import json

    from .api import default_device, load
    from .errors import TeMuError
    from .finetune import DataError, handle_bad_rows, read_labelled

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        records, fmt = read_labelled(
            args.csv, args.image_root, format=args.format, path_col=args.path_col, mos_col=args.mos_col, lower_better=args.lower_better
        )
        if args.split_file is not None and args.split_column is not None:
            raise DataError("give --split-file or --split-column, not both")
        if args.split_file is not None or args.split_column is not None:
            from .data import apply_split, column_split

            parts = apply_split(records, args.split_file, args.split_index) if args.split_file is not None else column_split(args.csv, records, args.split_column)
            records = parts[args.part]
            if not records:
                raise DataError(f"the split has no '{args.part}' items; choose another --part")
        from .data import check_records

        bad = check_records(records, full=args.check_images == "full")
        handle_bad_rows(bad, skip=args.skip_bad, what=str(args.csv), log=log, bad_file=None)
        bad_ids = {(b.row, b.path) for b in bad}
        records = [r for r in records if (r.row, r.path) not in bad_ids]
        if len(records) < 2:
            raise DataError(f"{len(records)} usable row(s) left; at least 2 are needed for a correlation")
        device = args.device or default_device()
        model = load(args.model, device=device)
        scale, source = target_scale(args.mos_range, model, records, fmt.lower_better)
        workers = args.workers if args.workers is not None else (0 if torch.device(device).type == "cpu" else min(8, os.cpu_count() or 1))
        show = (not args.quiet) and sys.stderr.isatty()
        pred, target, metrics = evaluate_model(
            model, records, scale, batch_size=args.batch_size, workers=workers, precision=args.precision, progress=show
        )
        splits = split_metrics(pred, target, args.splits, args.split_fraction, args.seed) if args.splits else None
    except (DataError, TeMuError, ValueError, FileNotFoundError, RuntimeError) as err:
        log(f"temu eval: error: {err}")
        return 2
    report = EvalReport(str(args.model), str(args.csv), len(records), metrics, scale, source, pred, target, splits, len(bad))
    print(format_report(report))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    if args.plot is not None:
        from .plots import plot_scatter

        plot_scatter(pred, target, args.plot, title=f"{args.model} on {Path(args.csv).name} (n={len(records)})", metrics={k: metrics[k] for k in ("srcc", "plcc")})
    return 0


def format_report(report: EvalReport) -> str:
    """The lines ``temu eval`` prints."""
    lines = [f"model {report.model} on {report.data}: {report.n} images"]
    for key in METRICS:
        lines.append(f"{key.upper()}  {report.metrics[key]:.4f}")
    lines.append(f"(RMSE on MOS normalised to [0, 1] with range {report.scale.low:g}..{report.scale.high:g}: {report.scale_source})")
    if report.splits is not None:
        s = report.splits
        lines.append(f"{s.k} random subsets of {s.size} images ({s.fraction:g} of the rows, seeds {s.seed}..{s.seed + s.k - 1}), mean ± std:")
        for key in METRICS:
            lines.append(f"{key.upper()}  {s.mean[key]:.4f} ± {s.std[key]:.4f}")
    return "\n".join(lines)
