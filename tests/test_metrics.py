"""Tests for temu.evaluation.metrics: agreement with textbook definitions, input errors, gradients.

temu's correlations call scipy.stats; the references here are written from the definitions
(all pairs for Kendall's tau-b, counted average ranks for Spearman), independently of scipy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from temu.errors import ConstantInputError
from temu.evaluation.metrics import evaluate, krcc, plcc, rmse, srcc
from temu.train.loss import pearson_torch

TOL = 1e-10

# fixed vectors, several with ties in one or both inputs
FIXED = [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
    ([1, 2, 2, 3, 4, 4, 4, 5], [2, 1, 3, 3, 5, 4, 4, 6]),
    ([3.5, 3.5, 3.5, 1.0, 2.0, 9.0], [1, 2, 2, 2, 0, 5]),
    ([0.1, 0.4, 0.4, 0.2, 0.9, 0.9, 0.3], [10, 40, 40, 20, 90, 80, 30]),
    ([1, 1, 2, 2], [1, 2, 1, 2]),
    ([5, 4, 3, 2, 1], [1, 2, 3, 4, 5]),
    ([2.0, 7.0], [1.0, -3.0]),
]


def pearson_reference(x, y) -> float:
    """Textbook Pearson r with exact sums (math.fsum)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx, dy = x - math.fsum(x) / len(x), y - math.fsum(y) / len(y)
    return math.fsum(dx * dy) / math.sqrt(math.fsum(dx * dx) * math.fsum(dy * dy))


def average_ranks_reference(v) -> np.ndarray:
    """Rank of each item: 1 + (items below it) + (other items equal to it) / 2."""
    v = np.asarray(v, dtype=float)
    below = (v[None, :] < v[:, None]).sum(axis=1)
    equal = (v[None, :] == v[:, None]).sum(axis=1)
    return 1 + below + (equal - 1) / 2


def kendall_tau_b_reference(x, y) -> float:
    """tau-b = (C - D) / sqrt((n0 - n1) (n0 - n2)) over all pairs i < j."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(x), k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = len(i)
    n1, n2 = int((sx == 0).sum()), int((sy == 0).sum())
    return float((sx * sy).sum()) / math.sqrt((n0 - n1) * (n0 - n2))


def fitted_plcc_reference(x, y) -> float:
    """PLCC after the VQEG 4-parameter logistic, fitted the textbook way: scipy's curve_fit (Levenberg-Marquardt,
    no bounds) on the raw data from b1 = max y, b2 = min y, b3 = mean x, b4 = std x, then pearsonr.

    temu's convention: the map runs in the direction of SRCC's sign and the result carries that sign. When
    the free fit runs the other way (an almost uncorrelated x), the reference is the best map in SRCC's
    direction, ``y = low + span * sigmoid((x - b3) / b4)`` with ``span`` of SRCC's sign, fitted on the raw data.
    """
    from scipy import optimize, stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    increasing = stats.spearmanr(x, y).statistic >= 0

    def logistic(v, b1, b2, b3, b4):
        return (b1 - b2) / (1 + np.exp(-(v - b3) / np.abs(b4))) + b2

    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        params, _ = optimize.curve_fit(logistic, x, y, p0=[y.max(), y.min(), x.mean(), x.std()], maxfev=100_000)
        mapped = logistic(x, *params)
        if (params[0] >= params[1]) != increasing:

            def directed(v, low, span, b3, b4):
                return low + span / (1 + np.exp(-(v - b3) / b4))

            ry, rx = np.ptp(y), np.ptp(x)
            span = (0, np.inf) if increasing else (-np.inf, 0)
            lower, upper = [-np.inf, span[0], -np.inf, 1e-9 * rx], [np.inf, span[1], np.inf, np.inf]
            p0 = [y.min(), ry, x.mean(), x.std()] if increasing else [y.max(), -ry, x.mean(), x.std()]
            found, _ = optimize.curve_fit(directed, x, y, p0=p0, bounds=(lower, upper), maxfev=100_000)
            mapped = directed(x, *found)
    r = float(stats.pearsonr(mapped, y).statistic)
    return r if increasing else -r


def references(x, y):
    return (
        pearson_reference(average_ranks_reference(x), average_ranks_reference(y)),
        pearson_reference(x, y),
        kendall_tau_b_reference(x, y),
    )


@pytest.mark.parametrize("x, y", FIXED)
def test_fixed_vectors_match_the_definitions(x, y):
    s, p, k = references(x, y)
    assert abs(srcc(x, y) - s) < TOL
    assert abs(plcc(x, y) - p) < TOL
    assert abs(krcc(x, y) - k) < TOL


def test_known_values():
    assert srcc([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0, abs=1e-15)
    assert krcc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0, abs=1e-15)
    # x=[1,1,2,2], y=[1,2,1,2]: pairs (0,2) tie in y, (0,3) C, (1,2) D, (1,3) tie in y
    # n0=6, tx=2, ty=2 -> (1-1)/sqrt(4*4) = 0
    assert krcc([1, 1, 2, 2], [1, 2, 1, 2]) == pytest.approx(0.0, abs=1e-15)
    # tau-b, not tau-a: x=[1,2,2], y=[1,2,3] has C=2, D=0, one tie in x -> 2/sqrt(2*3)
    assert krcc([1, 2, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6), abs=1e-15)
    # ties get average ranks: ranks of x are [1, 2.5, 2.5, 4]
    assert srcc([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(pearson_reference([1, 2.5, 2.5, 4], [1, 2, 3, 4]))
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3), abs=1e-15)


@pytest.mark.parametrize("n", [2, 3, 10, 57, 500, 2000])
def test_random_vectors_match_the_definitions(n):
    rng = np.random.default_rng(n)
    for trial in range(4):
        if trial % 2:
            x = rng.integers(0, 6, n).astype(float)  # many ties
            y = rng.integers(0, 4, n).astype(float)
        else:
            x = rng.normal(size=n)
            y = np.round(0.5 * x + rng.normal(size=n), 1)  # ties in y only
        if np.all(x == x[0]) or np.all(y == y[0]):
            continue
        s, p, k = references(x, y)
        assert abs(srcc(x, y) - s) < TOL
        assert abs(plcc(x, y) - p) < TOL
        assert abs(krcc(x, y) - k) < TOL


def test_accepts_lists_tensors_and_column_vectors():
    x = [0.3, 0.1, 0.8, 0.5]
    y = [1.0, 2.0, 4.0, 3.0]
    expected = plcc(np.array(x), np.array(y))
    assert plcc(torch.tensor(x, requires_grad=True), torch.tensor(y)) == pytest.approx(expected)
    assert plcc(torch.tensor(x).reshape(-1, 1), y) == pytest.approx(expected)
    assert isinstance(srcc(x, y), float)
    assert isinstance(krcc(torch.tensor(x), torch.tensor(y)), float)


def test_evaluate_returns_all_four():
    x, y = FIXED[1]
    result = evaluate(x, y)
    assert set(result) == {"srcc", "plcc", "krcc", "rmse"}
    assert result["srcc"] == srcc(x, y)
    assert result["krcc"] == krcc(x, y)
    assert result["rmse"] == rmse(x, y)
    assert all(isinstance(v, float) for v in result.values())


@pytest.mark.parametrize("fn", [srcc, plcc, krcc, rmse])
def test_length_mismatch(fn):
    with pytest.raises(ValueError, match=r"same length.*3 and 2"):
        fn([1, 2, 3], [1, 2])


@pytest.mark.parametrize("fn", [srcc, plcc, krcc])
def test_too_few_items(fn):
    with pytest.raises(ValueError, match="at least 2 items, got 1"):
        fn([1.0], [2.0])


@pytest.mark.parametrize("fn", [srcc, plcc, krcc, rmse])
def test_nan_and_inf(fn):
    with pytest.raises(ValueError, match=r"pred contains 1 NaN.*index 2"):
        fn([1, 2, float("nan"), 4], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="target contains 1 NaN or infinite"):
        fn([1, 2, 3, 4], [1, 2, 3, float("inf")])


@pytest.mark.parametrize("fn", [srcc, plcc, krcc])
def test_constant_input(fn):
    with pytest.raises(ConstantInputError, match=r"target is constant \(all 3 values equal 2.0\)"):
        fn([1, 2, 3], [2, 2, 2])
    with pytest.raises(ConstantInputError, match="pred is constant"):
        fn([5, 5, 5], [1, 2, 3])
    # other bad input is not a ConstantInputError (report.py catches that class alone)
    with pytest.raises(ValueError) as info:
        fn([1, 2, 3], [1, 2])
    assert not isinstance(info.value, ConstantInputError)


def test_rmse_allows_constant_input():
    assert rmse([2, 2, 2], [1, 1, 1]) == pytest.approx(1.0)


def test_wrong_shape_and_type():
    with pytest.raises(ValueError, match=r"1-D.*shape \(4, 3\)"):
        plcc(np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="sequence of numbers"):
        srcc(["a", "b"], [1, 2])


def test_pearson_torch_matches_plcc():
    rng = np.random.default_rng(3)
    x = rng.normal(size=32)
    y = x + rng.normal(size=32)
    value = pearson_torch(torch.tensor(x), torch.tensor(y).reshape(-1, 1))
    assert value.shape == ()
    assert value.item() == pytest.approx(plcc(x, y), abs=1e-7)


def test_pearson_torch_gradcheck():
    torch.manual_seed(0)
    pred = torch.randn(8, dtype=torch.float64, requires_grad=True)
    target = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, t: pearson_torch(p, t), (pred, target))


def test_pearson_torch_constant_batch_has_finite_gradient():
    pred = torch.full((4,), 0.5, requires_grad=True)
    loss = 1 - pearson_torch(pred, torch.tensor([0.1, 0.4, 0.2, 0.9]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(pred.grad).all()


def test_pearson_torch_errors():
    with pytest.raises(ValueError, match="same number of elements"):
        pearson_torch(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="at least 2"):
        pearson_torch(torch.zeros(1), torch.zeros(1))
    with pytest.raises(TypeError, match="torch tensors"):
        pearson_torch(np.zeros(3), torch.zeros(3))
