"""Correlation metrics for image quality assessment.

``srcc``, ``plcc``, ``krcc`` and ``rmse`` take two 1-D sequences of equal length
(numpy arrays, lists or torch tensors; shape ``(N,)``, or ``(N, 1)`` / ``(1, N)``
which are flattened) and return a Python ``float``. After temu's input checks the
correlations are ``scipy.stats``'s, as in pyiqa:

* SRCC: ``spearmanr``, Pearson correlation of the ranks, ties get their average rank.
* PLCC: ``pearsonr``, plain Pearson correlation, no logistic fitting (pyiqa's default too).
* KRCC: ``kendalltau``, tau-b (scipy's default), O(N log N).
* RMSE: root mean squared difference, on whatever scale the inputs are in.

scipy replaced temu's own numpy code after a benchmark (``benchmarks/bench_metrics.py``).

Inputs are validated: different lengths, fewer than 2 items, NaN or infinite
values, and (for the three correlations) constant input raise ``ValueError``
naming what was found; constant input raises its own subclass,
:class:`~temu.ConstantInputError`. The differentiable PLCC of the training
loss is :func:`temu.train.loss.pearson_torch`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConstantInputError
from ..extras import import_extra

__all__ = ["evaluate", "krcc", "plcc", "rmse", "srcc"]


def _stats():
    """scipy.stats (extra ``temu-iqa[train]``), imported on first use."""
    return import_extra("scipy.stats", "train", "computing SRCC, PLCC and KRCC")


def _as_vector(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a float64 vector of shape (N,), or raise ValueError."""
    if isinstance(values, torch.Tensor):
        array = values.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{name} must be a sequence of numbers; could not convert it ({type(values).__name__}): {error}"
            ) from error
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one score per image), got shape {array.shape}; "
            "flatten it or select the score column first"
        )
    return array


def _check_pair(pred: Any, target: Any, *, min_items: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert a (pred, target) pair; see module docstring."""
    x = _as_vector(pred, "pred")
    y = _as_vector(target, "target")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"pred and target must have the same length, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < min_items:
        raise ValueError(f"need at least {min_items} items, got {x.shape[0]}")
    for name, v in (("pred", x), ("target", y)):
        bad = ~np.isfinite(v)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN or infinite value(s), "
                f"first at index {first} ({v[first]}); remove or fix those items"
            )
    return x, y


def _check_not_constant(x: np.ndarray, y: np.ndarray) -> None:
    for name, v in (("pred", x), ("target", y)):
        if np.all(v == v[0]):
            raise ConstantInputError(
                f"{name} is constant (all {v.shape[0]} values equal {v[0]}); "
                "a correlation is undefined for constant input"
            )


def _clip(r: float) -> float:
    return max(-1.0, min(1.0, float(r)))


def srcc(pred: Any, target: Any) -> float:
    """Spearman rank correlation in [-1, 1]; ties get average ranks (``scipy.stats.spearmanr``)."""
    x, y = _check_pair(pred, target)
    _check_not_constant(x, y)
    return _clip(_stats().spearmanr(x, y).statistic)


def plcc(pred: Any, target: Any) -> float:
    """Pearson linear correlation in [-1, 1], no logistic mapping (``scipy.stats.pearsonr``)."""
    x, y = _check_pair(pred, target)
    _check_not_constant(x, y)
    return _clip(_stats().pearsonr(x, y).statistic)


def krcc(pred: Any, target: Any) -> float:
    """Kendall rank correlation tau-b in [-1, 1] (``scipy.stats.kendalltau``, its default variant)."""
    x, y = _check_pair(pred, target)
    _check_not_constant(x, y)
    return _clip(_stats().kendalltau(x, y).statistic)


def rmse(pred: Any, target: Any) -> float:
    """Root mean squared error, >= 0, in the units of the inputs.

    Constant input is allowed here; at least one item is required.
    """
    x, y = _check_pair(pred, target, min_items=1)
    return float(np.sqrt(np.mean((x - y) ** 2)))


def evaluate(pred: Any, target: Any) -> dict[str, float]:
    """All four metrics: ``{"srcc", "plcc", "krcc", "rmse"}`` -> float."""
    return {
        "srcc": srcc(pred, target),
        "plcc": plcc(pred, target),
        "krcc": krcc(pred, target),
        "rmse": rmse(pred, target),
    }
