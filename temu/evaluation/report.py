"""Evaluation results: SRCC/PLCC/fitted PLCC/KRCC/RMSE, statistics over random splits, and the ``temu eval`` report.

Predictions are the model's scores in [0, 1]; targets are MOS normalised to [0, 1] with a
:class:`~temu.MOSScale` (1 = best), so RMSE is on that normalised scale. SRCC, PLCC and KRCC do
not depend on the (increasing, linear) normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.records import IQARecord
from ..data.splits import random_split
from ..errors import ConstantInputError, DataError
from ..model import TeMuIQA
from ..model.scale import MOSScale
from .fitting import fitted_plcc
from .metrics import evaluate as metric_values
from .metrics import rmse

__all__ = [
    "METRICS",
    "EvalReport",
    "SplitSummary",
    "METRIC_LABELS",
    "evaluate_scores",
    "fit_failed",
    "format_metric",
    "format_report",
    "markdown_table",
    "random_subsets",
    "split_metrics",
    "split_subsets",
    "table_rows",
    "target_scale",
]

#: The metrics every report holds, in this order.
METRICS = ("srcc", "plcc", "fitted_plcc", "krcc", "rmse")

#: How each metric is written in tables and messages.
METRIC_LABELS = {"srcc": "SRCC", "plcc": "PLCC", "fitted_plcc": "fitted PLCC", "krcc": "KRCC", "rmse": "RMSE"}


def evaluate_scores(pred: Any, target: Any) -> dict[str, float]:
    """The :data:`METRICS` of predictions against normalised targets, as floats.

    SRCC, PLCC, KRCC and RMSE are :mod:`temu.evaluation.metrics`'s; ``fitted_plcc`` is the PLCC
    after the VQEG 4-parameter logistic map fitted on these pairs
    (:func:`temu.evaluation.fitting.fitted_plcc`), NaN when that fit does not converge. A
    constant prediction (an untrained or collapsed head) has no correlation: the correlations
    are then NaN instead of raising, RMSE is still computed.

    Args:
        pred: ``[N]`` predicted scores; target: ``[N]`` targets (N >= 2).

    Returns:
        ``{"srcc", "plcc", "fitted_plcc", "krcc", "rmse"}`` -> float.
    """
    try:
        values = metric_values(pred, target)
    except ConstantInputError:
        nan = math.nan
        return {"srcc": nan, "plcc": nan, "fitted_plcc": nan, "krcc": nan, "rmse": rmse(pred, target)}
    values["fitted_plcc"] = fitted_plcc(pred, target)
    return {key: values[key] for key in METRICS}


def fit_failed(metrics: dict[str, float]) -> bool:
    """True when the logistic fit behind ``metrics["fitted_plcc"]`` failed: NaN beside a defined plain PLCC
    (the fit did not converge, or it mapped every score to one value)."""
    return math.isnan(metrics.get("fitted_plcc", math.nan)) and not math.isnan(metrics.get("plcc", math.nan))


def format_metric(metrics: dict[str, float], key: str) -> str:
    """One metric with 4 decimals; a fitted PLCC whose fit did not converge says so."""
    value = metrics[key]
    if key == "fitted_plcc" and fit_failed(metrics):
        return "nan (the logistic fit failed)"
    return f"{value:.4f}"


def random_subsets(
    n: int, k: int, fraction: float, seed: int, *, groups: Sequence[Hashable] | None = None
) -> list[np.ndarray]:
    """``k`` random subsets of ``range(n)``: the test parts of ``k`` random train/test splits.

    Subset ``j`` is the held-out part of :func:`temu.data.random_split` of the ``n`` items with
    ``val_fraction=fraction`` and ``seed=seed + j``, so averaging a fixed model over the subsets
    follows the "mean of k random splits" protocol without retraining.

    Args:
        n: the number of items.
        k: the number of subsets.
        fraction: ``round(fraction * n)`` items per subset (at least 1, at most ``n - 1``).
        seed: the first split's seed.
        groups: one key per item (e.g. its reference image): whole groups are drawn and the fraction
            counts groups, as the split of a full-reference dataset does.

    Returns:
        ``k`` sorted int arrays of item positions.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    positions = list(range(n))
    key = None if groups is None else groups.__getitem__
    return [np.asarray(random_split(positions, fraction, seed + j, group_key=key)[1], dtype=np.int64) for j in range(k)]


def split_subsets(
    n: int, k: int, fraction: float, seed: int, *, groups: Sequence[Hashable] | None = None
) -> list[np.ndarray]:
    """:func:`random_subsets`, checked before scoring.

    Args:
        n, k, fraction, seed, groups: as for :func:`random_subsets`.

    Returns:
        ``k`` sorted int arrays of item positions.

    Raises:
        DataError: a subset of fewer than 2 items (no correlation can be computed).
    """
    try:
        subsets = random_subsets(n, k, fraction, seed, groups=groups)
    except ValueError as err:
        raise DataError(f"random subsets: {err}") from None
    smallest = min(len(s) for s in subsets)
    if smallest < 2:
        raise DataError(
            f"a random subset (fraction={fraction:g}) of the {n} images holds {smallest} image(s); "
            "a correlation needs at least 2: raise fraction"
        )
    return subsets


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
    group_column: str | None = None
    groups: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "fraction": self.fraction,
            "seed": self.seed,
            "items_per_split": self.size,
            "grouped_by": self.group_column,
            "groups": self.groups,
            "mean": self.mean,
            "std": self.std,
            "per_split": self.per_split,
        }


def split_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    k: int,
    fraction: float,
    seed: int,
    *,
    groups: Sequence[Hashable] | None = None,
    group_column: str | None = None,
    subsets: Sequence[np.ndarray] | None = None,
) -> SplitSummary:
    """Metrics on each of ``k`` subsets of the scored items, with their mean and std.

    Args:
        pred, target: ``[N]`` scores and normalised MOS.
        k, fraction, seed, groups: as for :func:`split_subsets`.
        group_column: the column ``groups`` came from, for the summary.
        subsets: the subsets when already drawn (``temu eval`` draws them before the model loads, to
            refuse unusable ones early).

    Returns:
        A :class:`SplitSummary`; its ``size`` is the first subset's item count (with ``groups`` the
        subsets' sizes differ).
    """
    if subsets is None:
        subsets = split_subsets(len(pred), k, fraction, seed, groups=groups)
    per = [evaluate_scores(pred[s], target[s]) for s in subsets]
    mean = {m: float(np.mean([p[m] for p in per])) for m in METRICS}
    std = {m: float(np.std([p[m] for p in per])) for m in METRICS}
    n_groups = None if groups is None else len(set(groups))
    return SplitSummary(k, fraction, seed, len(subsets[0]), mean, std, per, group_column, n_groups)


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
        return _json_safe(
            {
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
            }
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def target_scale(choice: str, model: TeMuIQA, records: Sequence[IQARecord], lower_better: bool) -> tuple[MOSScale, str]:
    """The MOS scale targets are normalised with, and where it came from.

    Args:
        choice: ``"model"`` (the range the head was fine-tuned on, its ``config.mos_scale``),
            ``"data"`` (the min and max of the evaluated rows), ``"auto"`` (``model`` when the head
            has a range, else ``data``) or ``"LOW,HIGH"``.
        model: the evaluated model.
        records: the evaluated rows.
        lower_better: the dataset's direction (always from its format).

    Returns:
        ``(scale, source)``: the :class:`MOSScale` and a few words saying which choice gave it.
    """
    choice = choice.strip().lower()
    if choice in ("auto", "model"):
        saved = model.config.mos_scale
        if saved is not None:
            return MOSScale(saved.low, saved.high, lower_better), "the range the head was fine-tuned on"
        if choice == "model":
            raise DataError(
                "choice='model': this head has no MOS range (it was not fine-tuned); use choice='data' or 'LOW,HIGH'"
            )
    if choice in ("auto", "data"):
        return MOSScale.fit([r.mos for r in records], lower_better=lower_better), "the evaluated rows' own min and max"
    try:
        low, high = (float(v) for v in choice.split(","))
        return MOSScale(low, high, lower_better), "a fixed range"
    except ValueError as err:
        raise DataError(
            f"choice={choice!r}: expected 'auto', 'model', 'data' or 'LOW,HIGH' with LOW < HIGH (e.g. '1,100'); {err}"
        ) from None


def format_report(report: EvalReport) -> str:
    """The lines ``temu eval`` prints."""
    lines = [f"model {report.model} on {report.data}: {report.n} images"]
    for key in METRICS:
        lines.append(f"{METRIC_LABELS[key]}  {format_metric(report.metrics, key)}")
    lines.append(
        f"(RMSE on MOS normalised to [0, 1] with range {report.scale.low:g}..{report.scale.high:g}: {report.scale_source})"
    )
    if report.splits is not None:
        s = report.splits
        if s.group_column is None:
            drawn = f"{s.k} random subsets of {s.size} images ({s.fraction:g} of the rows"
        else:
            drawn = (
                f"{s.k} random subsets, each {s.fraction:g} of the {s.groups} values of column {s.group_column!r} "
                f"with all their rows ({s.size} images in the first"
            )
        lines.append(f"{drawn}, seeds {s.seed}..{s.seed + s.k - 1}), mean ± std:")
        for key in METRICS:
            lines.append(f"{METRIC_LABELS[key]}  {s.mean[key]:.4f} ± {s.std[key]:.4f}")
    return "\n".join(lines)


#: Columns of the table of several evaluations (one row per model and dataset).
TABLE_COLUMNS = ("model", "data", "images", "skipped_rows", *METRICS)


def table_rows(reports: Sequence[EvalReport]) -> list[dict[str, Any]]:
    """One row per report: :data:`TABLE_COLUMNS` -> value (metrics as floats, NaN when undefined)."""
    return [
        {
            "model": r.model,
            "data": r.data,
            "images": r.n,
            "skipped_rows": r.skipped,
            **{k: r.metrics[k] for k in METRICS},
        }
        for r in reports
    ]


def markdown_table(reports: Sequence[EvalReport]) -> str:
    """The reports as a Markdown table: model, data, images, rows left out, then the metrics (4 decimals)."""
    labels = [METRIC_LABELS[k] for k in METRICS]
    lines = [
        "| model | data | images | rows left out | " + " | ".join(labels) + " |",
        "|---|---|---|---|" + "---|" * len(labels),
    ]
    for r in reports:
        cells = [format_metric(r.metrics, k) for k in METRICS]
        lines.append(f"| {r.model} | {r.data} | {r.n} | {r.skipped} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
