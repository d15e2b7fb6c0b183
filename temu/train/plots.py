"""Files a person reads after a run: ``metrics.csv``, ``curves.png`` and the eval scatter plot.

matplotlib is imported only when a plot is drawn, and only its object-oriented API with the
Agg canvas is used: no pyplot, so the caller's backend (e.g. a notebook's) is left alone.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write

__all__ = ["plot_curves", "plot_scatter", "write_metrics_csv"]


def write_metrics_csv(
    history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], columns: Sequence[str]
) -> Path:
    """One row per epoch with ``columns`` (floats with 6 significant decimals), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in history:
        writer.writerow([_fmt(row.get(c)) for c in columns])
    path = Path(path)
    atomic_write(path, buffer.getvalue().encode("utf-8"))
    return path


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(path)
    atomic_write(path, buffer.getvalue())
    return path


def plot_curves(
    history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, best_epoch: int | None = None
) -> Path:
    """Training curves: the loss parts per epoch (left) and validation SRCC/PLCC/KRCC (right)."""
    fig = _figure(10, 4)
    left, right = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.91, wspace=0.25)
    epochs = [row["epoch"] for row in history]
    for key, label in (
        ("train_loss", "total"),
        ("train_mse", "MSE"),
        ("train_plcc", "1 - PLCC"),
        ("train_ldg", "LDG MSE"),
    ):
        values = [row.get(key, math.nan) for row in history]
        if any(v for v in values if not math.isnan(v)):
            left.plot(epochs, values, marker="o", ms=3, label=label)
    left.set(xlabel="epoch", ylabel="training loss (mean over the epoch)", title="training loss")
    left.legend(loc="best", fontsize=8)
    for key, label in (("val_srcc", "SRCC"), ("val_plcc", "PLCC"), ("val_krcc", "KRCC")):
        right.plot(epochs, [row.get(key, math.nan) for row in history], marker="o", ms=3, label=label)
    if best_epoch:
        right.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch ({best_epoch})")
    right.set(xlabel="epoch", ylabel="correlation", title="validation")
    right.legend(loc="best", fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if epochs:
            ax.set_xlim(0.5, max(epochs) + 0.5)
    return _save(fig, path)


def plot_scatter(
    pred: Sequence[float] | np.ndarray,
    target: Sequence[float] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    metrics: Mapping[str, float] | None = None,
) -> Path:
    """Scatter of predicted score (y) against normalised MOS (x), both in [0, 1], with the diagonal."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    fig = _figure(5, 5)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.14, right=0.96, bottom=0.11, top=0.88)
    ax.scatter(target, pred, s=6 if len(pred) > 2000 else 12, alpha=0.5 if len(pred) > 500 else 0.8, edgecolors="none")
    low = float(min(0.0, np.nanmin(target, initial=0), np.nanmin(pred, initial=0)))
    high = float(max(1.0, np.nanmax(target, initial=1), np.nanmax(pred, initial=1)))
    ax.plot([low, high], [low, high], color="grey", lw=1, ls="--")
    ax.set(xlim=(low, high), ylim=(low, high), xlabel="MOS (normalised to [0, 1])", ylabel="predicted score")
    text = title
    if metrics:
        text += ("\n" if text else "") + "  ".join(f"{k.upper()} {v:.4f}" for k, v in metrics.items())
    ax.set_title(text, fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, path)
