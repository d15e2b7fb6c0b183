"""Correlation metrics for image quality assessment.

``srcc``, ``plcc``, ``krcc`` and ``rmse`` take two 1-D sequences of equal length
(numpy arrays, lists or torch tensors; shape ``(N,)``, or ``(N, 1)`` / ``(1, N)``
which are flattened) and return a Python ``float``. They are written with numpy
and match ``scipy.stats`` (``spearmanr``, ``pearsonr``, ``kendalltau`` with
tau-b) to ~1e-12:

* SRCC: Pearson correlation of the ranks, ties get their average rank.
* PLCC: plain Pearson correlation, no logistic fitting (pyiqa's default too).
* KRCC: Kendall's tau-b, O(N log^2 N), fine for 160k items.
* RMSE: root mean squared difference, on whatever scale the inputs are in.

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

__all__ = ["evaluate", "krcc", "plcc", "rmse", "srcc"]


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


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xm = x - x.mean()
    ym = y - y.mean()
    xm = xm / np.linalg.norm(xm)
    ym = ym / np.linalg.norm(ym)
    r = float(np.dot(xm, ym))
    return max(-1.0, min(1.0, r))


def _average_ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``v``; tied values share the mean of their ranks."""
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    new_run = np.r_[True, sorted_v[1:] != sorted_v[:-1]]
    starts = np.flatnonzero(new_run)  # first sorted position of each run of equal values
    ends = np.r_[starts[1:], v.shape[0]]  # exclusive
    run_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    run_id = np.cumsum(new_run) - 1
    ranks = np.empty(v.shape[0], dtype=np.float64)
    ranks[order] = run_rank[run_id]
    return ranks


def _tie_pairs(v: np.ndarray) -> int:
    """Number of pairs (i < j) with v[i] == v[j]; rows compared whole for 2-D input."""
    _, counts = np.unique(v, axis=0, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _count_inversions(a: np.ndarray) -> int:
    """Number of pairs i < j with a[i] > a[j] (strict), by bottom-up merging.

    Each level merges sorted blocks with one lexsort, so the total cost is
    O(N log^2 N) numpy work and no Python loop over items.
    """
    n = a.shape[0]
    values = a.copy()
    position = np.arange(n)
    inversions = 0
    width = 1
    while width < n:
        block = position // (2 * width)
        right = (position % (2 * width)) >= width
        # within a block, sort by value; on equal values the left half first,
        # so "left elements before me" counts left values <= mine
        order = np.lexsort((right, values, block))
        s_block = block[order]
        s_right = right[order]
        left_in_block = np.bincount(block[~right], minlength=int(block.max()) + 1)
        is_left = (~s_right).astype(np.int64)
        cum_left = np.cumsum(is_left)
        block_start = np.searchsorted(s_block, s_block, side="left")
        left_before_block = np.where(block_start > 0, cum_left[block_start - 1], 0)
        left_le = cum_left - left_before_block  # left elements up to and including me
        greater_left = left_in_block[s_block] - left_le
        inversions += int(greater_left[s_right].sum())
        values = values[order]
        width *= 2
    return inversions


def srcc(pred: Any, target: Any) -> float:
    """Spearman rank correlation in [-1, 1]; ties get average ranks (as scipy)."""
    x, y = _check_pair(pred, target)
    _check_not_constant(x, y)
    return _pearson(_average_ranks(x), _average_ranks(y))


def plcc(pred: Any, target: Any) -> float:
    """Pearson linear correlation in [-1, 1] (no logistic mapping)."""
    x, y = _check_pair(pred, target)
    _check_not_constant(x, y)
    return _pearson(x, y)


def krcc(pred: Any, target: Any) -> float:
    """Kendall rank correlation tau-b in [-1, 1] (scipy's default variant)."""
    x, y = _check_pair(pred, target)
    _check_not_constant(x, y)
    n = x.shape[0]
    order = np.lexsort((y, x))  # by x, ties in x by y
    y_sorted = y[order]
    # dense integer ranks keep the lexsort keys exact
    y_codes = np.unique(y_sorted, return_inverse=True)[1].astype(np.int64)
    discordant = _count_inversions(y_codes)
    total = n * (n - 1) // 2
    x_ties = _tie_pairs(x)
    y_ties = _tie_pairs(y)
    joint_ties = _tie_pairs(np.stack([x, y], axis=1))
    numerator = (total - (x_ties + y_ties - joint_ties)) - 2 * discordant
    tau = numerator / np.sqrt(total - x_ties) / np.sqrt(total - y_ties)
    return max(-1.0, min(1.0, float(tau)))


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
