"""temu.evaluation.fitting: the VQEG 4-parameter logistic map and the fitted PLCC, against independent fits."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from test_metrics import fitted_plcc_reference

from temu.errors import ConstantInputError
from temu.evaluation.fitting import LogisticFit, fit_logistic4, fitted_plcc, logistic4
from temu.evaluation.metrics import plcc, srcc
from temu.evaluation.report import METRICS, evaluate_scores, fit_failed, format_metric


def sigmoid_data(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores in [0, 1] and MOS on 1..100 that follow a logistic of the scores, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    y = 5 + 90 / (1 + np.exp(-(x - 0.55) / 0.08)) + rng.normal(0, noise, n)
    return x, y


def test_logistic4_is_the_vqeg_form():
    x = np.array([-2.0, 0.0, 0.3, 1.0, 50.0])
    b1, b2, b3, b4 = 90.0, 10.0, 0.3, -0.2  # |b4| is used
    expected = (b1 - b2) / (1 + np.exp(-(x - b3) / abs(b4))) + b2
    np.testing.assert_allclose(logistic4(x, (b1, b2, b3, b4)), expected, rtol=1e-13)
    assert logistic4(0.3, (b1, b2, b3, b4)) == pytest.approx(50.0)
    assert np.all(np.isfinite(logistic4([-1e6, 1e6], (1, 0, 0, 1e-3))))  # no overflow at the tails
    with pytest.raises(ValueError, match="b4"):
        logistic4(x, (1, 0, 0, 0))


@pytest.mark.parametrize(("noise", "seed"), [(3.0, 0), (8.0, 1), (15.0, 2)])
def test_fitted_plcc_equals_the_textbook_scipy_fit(noise, seed):
    """On data a logistic describes, the bounds never bind: the same optimum as an unbounded Levenberg-Marquardt fit."""
    x, y = sigmoid_data(300, noise, seed)
    assert fitted_plcc(x, y) == pytest.approx(fitted_plcc_reference(x, y), abs=1e-8)
    assert fitted_plcc(x, y) > plcc(x, y)  # the map straightens the S-shape


def test_fitted_plcc_equals_pyiqas_when_installed():
    """pyiqa's calculate_plcc(fit_scale='logistic_4params') is the IQA-PyTorch fit the paper's code base has."""
    correlation = pytest.importorskip("pyiqa.metrics.correlation_coefficient")
    x, y = sigmoid_data(500, 6.0, 3)
    assert fitted_plcc(x, y) == pytest.approx(correlation.calculate_plcc(x, y, fit_scale="logistic_4params"), abs=1e-6)


def test_fit_recovers_the_parameters_and_maps_to_the_target_scale():
    x, y = sigmoid_data(2000, 0.5, 4)
    fit = fit_logistic4(x, y)
    assert fit.converged and fit.message == ""
    assert fit.params == pytest.approx((95.0, 5.0, 0.55, 0.08), rel=2e-2)
    assert np.asarray(fit([0.0, 1.0])) == pytest.approx([5.0, 95.0], abs=1.0)
    assert np.array_equal(fit(x), fit.apply(x)) and np.array_equal(fit(x), logistic4(x, fit.params))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.b1 = 0.0  # type: ignore[misc]


def test_the_map_is_monotone_in_the_direction_of_srcc():
    """Increasing whenever SRCC > 0 (what calibrating scores to MOS needs), decreasing when SRCC < 0; the fitted
    PLCC carries the same sign."""
    grid = np.linspace(-1, 2, 301)
    for seed in range(30):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(5, 60))
        x = rng.random(n)
        y = rng.normal(size=n) + rng.normal(0, 1) * x  # weak or no relation: the hard cases
        fit = fit_logistic4(x, y)
        steps = np.diff(fit(grid))
        if srcc(x, y) > 0:
            assert fit.increasing and np.all(steps >= 0), seed
        elif srcc(x, y) < 0:
            assert not fit.increasing and np.all(steps <= 0), seed
        r = fitted_plcc(x, y)
        assert math.isnan(r) or -1 <= r <= 1
        if abs(srcc(x, y)) > 0.1:  # nearer 0 the fit is close to flat and its correlation is noise
            assert np.sign(r) == np.sign(srcc(x, y)), seed
    x, y = sigmoid_data(200, 5.0, 5)
    assert fitted_plcc(x, -y) == pytest.approx(-fitted_plcc(x, y), abs=1e-9)


def test_fit_is_deterministic_and_scale_free():
    x, y = sigmoid_data(150, 10.0, 6)
    assert fit_logistic4(x, y) == fit_logistic4(x, y)
    # the fit runs on standardised data: the same correlation for scores in [0, 1] and MOS in 1..100 or 0..1
    assert fitted_plcc(x, y) == pytest.approx(fitted_plcc(10 * x - 3, (y - 1) / 99), abs=1e-9)


def test_a_fit_that_does_not_converge_is_flagged_and_reports_nan():
    x, y = sigmoid_data(100, 5.0, 7)
    fit = fit_logistic4(x, y, maxfev=1)
    assert isinstance(fit, LogisticFit) and not fit.converged and "maximum number" in fit.message
    assert fit.params == pytest.approx((y.max(), y.min(), x.mean(), x.std()))  # the initial guess, documented
    assert math.isnan(fitted_plcc(x, y, maxfev=1))
    metrics = {"srcc": 0.9, "plcc": 0.9, "fitted_plcc": math.nan, "krcc": 0.8, "rmse": 0.1}
    assert fit_failed(metrics) and format_metric(metrics, "fitted_plcc") == "nan (the logistic fit failed)"
    assert not fit_failed({**metrics, "plcc": math.nan})  # constant predictions: every correlation is undefined
    with pytest.raises(ValueError, match="maxfev"):
        fit_logistic4(x, y, maxfev=0)


def test_bad_input_is_refused():
    with pytest.raises(ConstantInputError, match="constant"):
        fit_logistic4([0.5, 0.5, 0.5], [1, 2, 3])
    with pytest.raises(ValueError, match="same length"):
        fitted_plcc([0.1, 0.2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        fitted_plcc([0.1, float("nan"), 0.3], [1, 2, 3])


def test_evaluate_scores_reports_the_fitted_plcc_beside_the_plain_one():
    x, y = sigmoid_data(80, 5.0, 8)
    scores = evaluate_scores(x, (y - y.min()) / np.ptp(y))
    assert tuple(scores) == METRICS == ("srcc", "plcc", "fitted_plcc", "krcc", "rmse")
    assert scores["fitted_plcc"] == pytest.approx(fitted_plcc(x, y), abs=1e-9)
    assert scores["plcc"] == pytest.approx(plcc(x, y), abs=1e-12)
    constant = evaluate_scores([0.5] * 4, [0.1, 0.2, 0.3, 0.4])
    assert math.isnan(constant["fitted_plcc"]) and not fit_failed(constant)
