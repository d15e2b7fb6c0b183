"""The VQEG 4-parameter logistic map from predicted scores to MOS, and the PLCC after it ("fitted PLCC").

``logistic4(x, (b1, b2, b3, b4)) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``
(:func:`temu.model.calibration.logistic4`, in the core: a calibrated head applies it when scoring): monotone
in ``x`` (increasing when ``b1 > b2``), running from ``b2`` (x -> -inf) to ``b1`` (x -> +inf).

:func:`fit_logistic4` fits it by least squares with ``scipy.optimize.curve_fit`` (method
``trf``, bounded, deterministic). The fit runs on standardised x and y, so it behaves the same
on scores in [0, 1] and on MOS in 1..100. Its direction is the data's: increasing when the
Spearman correlation of (x, y) is >= 0 (``b1 >= b2``), decreasing otherwise; that is a bound of
the fit, so a fitted map never bends back. Bounds (in units of the data's ranges ``rx``, ``ry``):
``b1, b2`` within ``[min y - 10 ry, max y + 10 ry]`` with ``|b1 - b2| <= 20 ry``, ``b3`` within
``[min x - 10 rx, max x + 10 rx]``, ``b4`` within ``[1e-6 rx, 100 rx]``. Initial values:
``b1 = max y``, ``b2 = min y``, ``b3 = mean x``, ``b4 = std x`` (swapped for a decreasing fit).

With ``within_range=True`` (a calibration's map, :mod:`temu.evaluation.calibration`) both
asymptotes stay within ``[min y, max y]`` instead, so the map never leaves the MOS range it was
fitted on; its PLCC can be a little lower than the fitted PLCC.

When the fit does not converge (scipy gives up after ``maxfev`` evaluations), the result has
``converged=False`` and the initial parameters, and :func:`fitted_plcc` is NaN: no number is
reported for a fit that did not happen. The plain PLCC (:func:`temu.evaluation.metrics.plcc`)
is always reported beside it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..extras import import_extra
from ..model.calibration import logistic4
from .metrics import _check_not_constant, _check_pair, _clip

__all__ = ["LogisticFit", "fit_logistic4", "fitted_plcc", "logistic4"]

#: Function evaluations :func:`fit_logistic4` allows by default before it gives up.
MAXFEV = 10_000


@dataclass(frozen=True)
class LogisticFit:
    """A fitted :func:`logistic4` map. Call it (or :meth:`apply`) on scores to get values on the target's scale.

    Attributes:
        b1, b2, b3, b4: the parameters (``b1``: the upper asymptote when increasing; ``b4 > 0``).
        converged: False when scipy gave up; the parameters are then the initial guess.
        message: scipy's reason when it did not converge, else "".
    """

    b1: float
    b2: float
    b3: float
    b4: float
    converged: bool
    message: str = ""

    @property
    def params(self) -> tuple[float, float, float, float]:
        """``(b1, b2, b3, b4)``."""
        return (self.b1, self.b2, self.b3, self.b4)

    @property
    def increasing(self) -> bool:
        """True when the map is non-decreasing in x (``b1 >= b2``)."""
        return self.b1 >= self.b2

    def apply(self, x: Any) -> np.ndarray:
        """:func:`logistic4` of ``x`` with these parameters (float64, ``x``'s shape)."""
        return logistic4(x, self.params)

    def __call__(self, x: Any) -> np.ndarray:
        return self.apply(x)


def _standard_logistic(x: np.ndarray, low: float, span: float, b3: float, b4: float) -> np.ndarray:
    # the fitted form: low + span * sigmoid((x - b3) / b4), span's sign fixed by its bounds, b4 > 0
    return span * (0.5 + 0.5 * np.tanh(0.5 * (x - b3) / b4)) + low


def _ranged_logistic(increasing: bool, lo_y: float, hi_y: float):
    """The logistic with both asymptotes in [lo_y, hi_y], as box-bounded parameters (u, v, b3, b4), u, v in [0, 1]:
    the first asymptote is ``u`` of the way in from its end of the range, the second ``v`` of the way from
    the first to the other end."""
    ry = hi_y - lo_y

    def model(x: np.ndarray, u: float, v: float, b3: float, b4: float) -> np.ndarray:
        start = lo_y + u * ry if increasing else hi_y - u * ry
        end = start + v * ((hi_y if increasing else lo_y) - start)
        return (end - start) * (0.5 + 0.5 * np.tanh(0.5 * (x - b3) / b4)) + start

    return model


def fit_logistic4(pred: Any, target: Any, *, maxfev: int = MAXFEV, within_range: bool = False) -> LogisticFit:
    """Fit the VQEG 4-parameter logistic from ``pred`` to ``target`` (least squares, bounded, deterministic).

    Args:
        pred: ``[N]`` predicted scores (any scale), N >= 2, finite, not constant.
        target: ``[N]`` MOS (any scale), finite, not constant.
        maxfev: function evaluations before scipy gives up (then ``converged=False``).
        within_range: keep both asymptotes (``b1``, ``b2``) within ``[min target, max target]``, so the
            map never leaves the targets' range and is strictly monotone (a calibration's map,
            :mod:`temu.evaluation.calibration`); False: the wider bounds of the module docstring (the
            fitted PLCC of ``temu eval``).

    Returns:
        The fit; increasing in ``pred`` when ``srcc(pred, target) >= 0``. See the module docstring for
        the bounds and initial values.

    Raises:
        ValueError: different lengths, fewer than 2 items, NaN or infinite values;
            :class:`~temu.ConstantInputError` for constant input.
    """
    x, y = _check_pair(pred, target)
    _check_not_constant(x, y)
    if not isinstance(maxfev, int) or isinstance(maxfev, bool) or maxfev < 1:
        raise ValueError(f"maxfev must be an int >= 1, got {maxfev!r}")
    stats = import_extra("scipy.stats", "train", "fitting the logistic map")
    optimize = import_extra("scipy.optimize", "train", "fitting the logistic map")
    increasing = not (stats.spearmanr(x, y).statistic < 0)
    mx, sx = float(np.mean(x)), float(np.std(x))
    my, sy = float(np.mean(y)), float(np.std(y))
    xs, ys = (x - mx) / sx, (y - my) / sy
    rx, ry = float(np.ptp(xs)), float(np.ptp(ys))
    lo_y, hi_y = float(ys.min()), float(ys.max())
    x_bounds = ([float(xs.min()) - 10 * rx, 1e-6 * rx], [float(xs.max()) + 10 * rx, 100 * rx])  # b3, b4
    if within_range:
        # parameters (u, v, b3, b4) of _ranged_logistic; the start: asymptotes just inside the range
        function = _ranged_logistic(increasing, lo_y, hi_y)
        initial = [0.01, 0.98, 0.0, 1.0]
        lower, upper = [0.0, 0.0, *x_bounds[0]], [1.0, 1.0, *x_bounds[1]]
    else:
        # parameters (low, span, b3, b4) of _standard_logistic, on the standardised data
        function = _standard_logistic
        initial = [lo_y, ry, float(np.mean(xs)), float(np.std(xs))] if increasing else [hi_y, -ry, 0.0, 1.0]
        span_bounds = (0.0, 20 * ry) if increasing else (-20 * ry, 0.0)
        lower = [lo_y - 10 * ry, span_bounds[0], *x_bounds[0]]
        upper = [hi_y + 10 * ry, span_bounds[1], *x_bounds[1]]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)  # no covariance: not needed here
            found, _ = optimize.curve_fit(
                function, xs, ys, p0=initial, bounds=(lower, upper), method="trf", maxfev=maxfev
            )
        converged, message = True, ""
    except RuntimeError as err:  # scipy: "Optimal parameters not found: ..."
        found, converged, message = np.asarray(initial), False, str(err)
    first, second, b3, b4 = (float(v) for v in found)
    if within_range:  # the asymptotes at x -> -inf (b2) and +inf (b1), standardised
        low = float(function(np.array([-np.inf]), first, second, b3, b4)[0])
        high = float(function(np.array([np.inf]), first, second, b3, b4)[0])
    else:  # b2 = low, b1 = low + span
        low, high = first, first + second
    # back to the data's units: b1, b2 on y's scale; b3, b4 on x's scale
    return LogisticFit(my + sy * high, my + sy * low, mx + sx * b3, sx * b4, converged, message)


def fitted_plcc(pred: Any, target: Any, *, maxfev: int = MAXFEV) -> float:
    """PLCC between ``target`` and ``pred`` mapped by :func:`fit_logistic4` (fitted on these pairs).

    Args:
        pred: ``[N]`` predicted scores; target: ``[N]`` MOS (N >= 2, finite, not constant).
        maxfev: passed to :func:`fit_logistic4`.

    Returns:
        A float in [-1, 1], or NaN when the fit did not converge. A map fitted decreasing (negative
        SRCC) gives the correlation a negative sign, so the sign agrees with SRCC and the plain PLCC.
        Mapped scores that come out constant (the fit flattened them) give NaN as well.
    """
    fit = fit_logistic4(pred, target, maxfev=maxfev)
    if not fit.converged:
        return float("nan")
    x, y = _check_pair(pred, target)
    mapped = fit(x)
    if np.all(mapped == mapped[0]):
        return float("nan")
    stats = import_extra("scipy.stats", "train", "the fitted PLCC")
    r = _clip(stats.pearsonr(mapped, y).statistic)
    return r if fit.increasing else -r
