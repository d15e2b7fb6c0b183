"""What a raw score means: a head's calibration to a dataset's MOS and to a reference corpus's percentiles.

A head's raw score is in [0, 1] (higher is better). ``calibration.json``, beside the head's
``config.json``, holds up to two maps from it, written by ``temu calibrate``
(:func:`temu.evaluation.calibration.calibrate`, where the fitting is):

- ``mos`` (:class:`MOSMap`): raw score -> the MOS of a labelled dataset, in the dataset's units: the
  VQEG 4-parameter logistic (:func:`logistic4`) with its asymptotes inside the MOS range of the
  calibration set, or an isotonic step function, monotone in the raw score (a better raw score
  never gets a worse MOS: increasing for MOS, decreasing for a DMOS dataset, ``lower_better``).
  Its values lie in that MOS range.
- ``percentiles`` (:class:`Percentiles`): raw score -> "better than P % of the reference corpus",
  P in [0, 100], from :data:`QUANTILES` quantiles of the corpus's raw scores.

Applying them needs numpy only (scoring never loads scipy). :func:`scaled_columns` adds the
``mos`` / ``percentile`` values to a batch of raw scores: the one call every engine makes
(:func:`fill_scales` on a batch of results).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._version import __version__
from ..errors import CalibrationError

__all__ = [
    "CALIBRATION_NAME",
    "METHODS",
    "QUANTILES",
    "SCALES",
    "Calibration",
    "MOSMap",
    "Percentiles",
    "check_scales",
    "fill_scales",
    "head_digest",
    "logistic4",
    "read_calibration",
    "scaled_columns",
]

#: The file beside ``config.json`` and ``model.safetensors`` that holds a head's calibration.
CALIBRATION_NAME = "calibration.json"
#: Version of the calibration.json layout.
CALIBRATION_FORMAT = 1
#: What a score can be reported as: the raw score in [0, 1], a MOS, a percentile in [0, 100].
SCALES = ("raw", "mos", "percentile")
#: How the MOS map is fitted: the VQEG 4-parameter logistic, or isotonic regression.
METHODS = ("logistic4", "isotonic")
#: How many quantiles of a reference corpus are kept: 0 %, 0.1 %, ..., 100 %.
QUANTILES = 1001

Scale = Literal["raw", "mos", "percentile"]


def logistic4(x: Any, params: Sequence[float]) -> np.ndarray:
    """The VQEG 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``, element-wise.

    Args:
        x: scores, any shape (array-like).
        params: ``(b1, b2, b3, b4)``; ``b4`` must not be 0.

    Returns:
        float64 array of ``x``'s shape, between ``b2`` and ``b1``.
    """
    b1, b2, b3, b4 = (float(p) for p in params)
    if b4 == 0:
        raise ValueError("b4 (the logistic's scale) must not be 0")
    z = (np.asarray(x, dtype=np.float64) - b3) / abs(b4)
    return (b1 - b2) * (0.5 + 0.5 * np.tanh(0.5 * z)) + b2  # sigmoid(z) without overflow


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _numbers(values: Any, what: str) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{what} must be a list of numbers, got {type(values).__name__}")
    return tuple(_number(v, what) for v in values)


@dataclass(frozen=True)
class MOSMap:
    """A fitted map from raw scores to a dataset's MOS, in the dataset's units.

    Attributes:
        method: ``"logistic4"`` (``params``: ``b1, b2, b3, b4`` of :func:`logistic4`) or ``"isotonic"``
            (``params``: knots ``x``, strictly increasing raw scores, and ``y``, their MOS, linearly
            interpolated between knots and held beyond the ends).
        params: as ``method`` says.
        low, high: the MOS range of the calibration set; mapped values lie in it (clipped there
            against rounding).
        lower_better: the dataset's scores are a DMOS (lower = better): the map then decreases with the raw score.
        dataset: which labelled data it was fitted on (the CSV as given).
        images: how many labelled images.
        metrics: on the calibration set: ``srcc_raw``, ``plcc_raw`` (raw score against MOS),
            ``fitted_plcc`` (``temu eval``'s), and ``srcc``, ``plcc``, ``rmse`` (mapped score against
            MOS, RMSE in MOS units).
    """

    method: str
    params: Mapping[str, Any]
    low: float
    high: float
    lower_better: bool
    dataset: str
    images: int
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        low, high = _number(self.low, "low"), _number(self.high, "high")
        if not high > low:
            raise ValueError(f"high must be greater than low, got low={low}, high={high}")
        if self.method == "logistic4":
            if set(self.params) != {"b1", "b2", "b3", "b4"}:
                raise ValueError(f"a logistic4 map has the parameters b1, b2, b3, b4, got {sorted(self.params)}")
            params: dict[str, Any] = {k: _number(self.params[k], k) for k in ("b1", "b2", "b3", "b4")}
            if params["b4"] == 0:
                raise ValueError("b4 (the logistic's scale) must not be 0")
        else:
            if set(self.params) != {"x", "y"}:
                raise ValueError(f"an isotonic map has the knots x and y, got {sorted(self.params)}")
            x, y = _numbers(self.params["x"], "x"), _numbers(self.params["y"], "y")
            if len(x) != len(y) or len(x) < 2:
                raise ValueError(f"an isotonic map needs x and y of one length >= 2, got {len(x)} and {len(y)}")
            if any(b <= a for a, b in zip(x, x[1:])):
                raise ValueError("the knots x of an isotonic map must be strictly increasing")
            steps = np.diff(y)
            if (steps < 0).any() if not self.lower_better else (steps > 0).any():
                raise ValueError("the values y of an isotonic map must not get worse as x grows")
            params = {"x": x, "y": y}
        if not isinstance(self.lower_better, bool):
            raise ValueError(f"lower_better must be True or False, got {self.lower_better!r}")
        if isinstance(self.images, bool) or not isinstance(self.images, int) or self.images < 1:
            raise ValueError(f"images must be a positive int, got {self.images!r}")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "dataset", str(self.dataset))
        metrics = {str(k): math.nan if v is None else float(v) for k, v in dict(self.metrics).items()}
        object.__setattr__(self, "metrics", metrics)

    def apply(self, raw: Any) -> np.ndarray:
        """Raw scores (any shape) -> MOS in [low, high] (float64, the same shape)."""
        x = np.asarray(raw, dtype=np.float64)
        if self.method == "logistic4":
            p = self.params
            mapped = logistic4(x, (p["b1"], p["b2"], p["b3"], p["b4"]))
        else:
            mapped = np.interp(x, self.params["x"], self.params["y"])
        return np.clip(mapped, self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params.items()}
        return {
            "method": self.method,
            "params": params,
            "low": self.low,
            "high": self.high,
            "lower_better": self.lower_better,
            "dataset": self.dataset,
            "images": self.images,
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},  # NaN: null
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MOSMap:
        keys = {"method", "params", "low", "high", "lower_better", "dataset", "images", "metrics"}
        _check_keys(data, keys, "the 'mos' part")
        return cls(**{k: data[k] for k in keys})


@dataclass(frozen=True)
class Percentiles:
    """Where a raw score falls among the raw scores of a reference corpus (the same head's).

    Attributes:
        quantiles: :data:`QUANTILES` raw scores, the reference's quantiles at 0 %, 0.1 %, ..., 100 %
            (numpy's linear rule), non-decreasing.
        reference: the corpus output folder they were read from.
        images: how many scores the reference had (error rows left out).
    """

    quantiles: tuple[float, ...]
    reference: str
    images: int

    def __post_init__(self) -> None:
        q = _numbers(list(self.quantiles), "quantiles")
        if len(q) != QUANTILES:
            raise ValueError(f"a reference keeps {QUANTILES} quantiles, got {len(q)}")
        if any(b < a for a, b in zip(q, q[1:])):
            raise ValueError("the quantiles of a reference must be non-decreasing")
        if isinstance(self.images, bool) or not isinstance(self.images, int) or self.images < 1:
            raise ValueError(f"images must be a positive int, got {self.images!r}")
        object.__setattr__(self, "quantiles", q)
        object.__setattr__(self, "reference", str(self.reference))

    @classmethod
    def of(cls, scores: Any, reference: str) -> Percentiles:
        """The percentiles of raw ``scores`` (1-D, finite; at least one)."""
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if values.size == 0 or not np.isfinite(values).all():
            raise ValueError("percentiles need at least one score, all finite")
        levels = np.linspace(0.0, 1.0, QUANTILES)
        return cls(tuple(np.quantile(values, levels).tolist()), reference, int(values.size))

    def apply(self, raw: Any) -> np.ndarray:
        """Raw scores (any shape) -> percentiles in [0, 100] (float64, the same shape).

        Between two quantiles the percentile is interpolated linearly; a score equal to a run of
        equal quantiles gets the middle of the run (the reference's own median gets 50); below
        the smallest it is 0, above the largest 100.
        """
        x = np.asarray(raw, dtype=np.float64)
        q = np.asarray(self.quantiles)
        levels = np.linspace(0.0, 100.0, QUANTILES)
        left = np.searchsorted(q, x, side="left")
        right = np.searchsorted(q, x, side="right")
        top = QUANTILES - 1
        lo, hi = np.clip(left - 1, 0, top), np.clip(left, 0, top)
        span = q[hi] - q[lo]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(span > 0, (x - q[lo]) / np.where(span > 0, span, 1.0), 0.0)
        between = levels[lo] + t * (levels[hi] - levels[lo])
        tied = (levels[np.clip(left, 0, top)] + levels[np.clip(right - 1, 0, top)]) / 2
        out = np.where(right > left, tied, between)
        out = np.where(left == 0, np.where(right > 0, out, 0.0), out)
        out = np.where(left >= QUANTILES, 100.0, out)
        return np.where(np.isnan(x), np.nan, out)

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "images": self.images, "quantiles": list(self.quantiles)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Percentiles:
        _check_keys(data, {"reference", "images", "quantiles"}, "the 'percentiles' part")
        return cls(tuple(data["quantiles"]), data["reference"], data["images"])


def _check_keys(data: Any, keys: set[str], what: str) -> None:
    if not isinstance(data, Mapping) or set(data) != keys:
        found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"{what} has the keys {sorted(keys)}, got {found}")


@dataclass(frozen=True)
class Calibration:
    """A head's ``calibration.json``: a MOS map, reference percentiles, or both.

    Attributes:
        mos: the map to a dataset's MOS, or None.
        percentiles: a reference corpus's quantiles, or None.
        head: :func:`head_digest` of the head weights it was fitted for (a head changed since
            does not load with it: :meth:`temu.TeMuIQA.from_pretrained`).
        scoring: the config fields that change scores (``image_size``, ``max_pixels``, ``mean``,
            ``std``) when it was fitted, and the ``precision`` of the scoring; a model loaded with
            other values warns.
        temu_version: the temu that wrote it.
    """

    mos: MOSMap | None = None
    percentiles: Percentiles | None = None
    head: str = ""
    scoring: Mapping[str, Any] = field(default_factory=dict)
    temu_version: str = __version__

    def replace(self, **changes: Any) -> Calibration:
        return replace(self, **changes)

    def has(self, scale: str) -> bool:
        """Whether this calibration can report ``scale`` (``"raw"`` always)."""
        return scale == "raw" or (scale == "mos" and self.mos is not None) or (
            scale == "percentile" and self.percentiles is not None
        )  # fmt: skip

    def apply(self, raw: Any, scale: str) -> np.ndarray:
        """Raw scores -> ``scale`` (float64, same shape; NaN stays NaN). Raises CalibrationError when it has no such part."""
        check_scales(self, [scale])
        x = np.asarray(raw, dtype=np.float64)
        if scale == "mos" and self.mos is not None:
            return np.where(np.isnan(x), np.nan, self.mos.apply(np.nan_to_num(x)))
        if scale == "percentile" and self.percentiles is not None:
            return self.percentiles.apply(x)
        return x.copy()

    def score_range(self, scale: str) -> tuple[float, float]:
        """``(low, high)`` of the values ``scale`` gives: [0, 1], the MOS range, or [0, 100]."""
        if scale == "mos" and self.mos is not None:
            return (self.mos.low, self.mos.high)
        if scale == "percentile":
            return (0.0, 100.0)
        return (0.0, 1.0)

    def lower_better(self, scale: str) -> bool:
        """Whether lower values of ``scale`` are better (only a MOS map fitted on a DMOS dataset)."""
        return scale == "mos" and self.mos is not None and self.mos.lower_better

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "temu_version": self.temu_version,
            "head": self.head,
            "scoring": dict(self.scoring),
            "mos": self.mos.to_dict() if self.mos is not None else None,
            "percentiles": self.percentiles.to_dict() if self.percentiles is not None else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        _check_keys(data, {"format", "temu_version", "head", "scoring", "mos", "percentiles"}, "calibration.json")
        if data["format"] != CALIBRATION_FORMAT:
            raise ValueError(
                f"format {data['format']!r} is not {CALIBRATION_FORMAT}: written by a newer temu? Upgrade temu-iqa"
            )
        mos = MOSMap.from_dict(data["mos"]) if data["mos"] is not None else None
        percentiles = Percentiles.from_dict(data["percentiles"]) if data["percentiles"] is not None else None
        if mos is None and percentiles is None:
            raise ValueError("it has neither a 'mos' nor a 'percentiles' part")
        return cls(mos, percentiles, str(data["head"]), dict(data["scoring"]), str(data["temu_version"]))


def read_calibration(path: str | os.PathLike[str]) -> Calibration | None:
    """The calibration in ``path`` (a ``calibration.json``), or None when there is no such file.

    Raises:
        CalibrationError: the file is not a calibration temu can read (named, with why).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise CalibrationError(f"{path}: cannot read the calibration ({err})") from None
    try:
        return Calibration.from_dict(json.loads(text))
    except (ValueError, TypeError, KeyError) as err:
        raise CalibrationError(
            f"{path}: not a temu calibration ({err}). Make it again with temu calibrate, or delete it"
        ) from None


def head_digest(state: Mapping[str, Any]) -> str:
    """sha256 of a head's weights (name -> array, compared as float32), independent of the file they came from."""
    digest = hashlib.sha256()
    for name in sorted(state):
        array = np.ascontiguousarray(np.asarray(state[name], dtype=np.float32))
        digest.update(f"{name}:{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _how_to_make(scale: str, source: str) -> str:
    if scale == "mos":
        return (
            f"make one with `temu calibrate --model {source} --data labels.csv --image-root IMAGES/ --output "
            "calibrated/` (Python: temu.calibrate), then use the model in calibrated/"
        )
    return (
        f"make one with `temu calibrate --model {source} --reference SCORES/ --output calibrated/`, SCORES/ being "
        f"a finished corpus run of this model (`temu score ... --model {source} --output SCORES/`)"
    )


def parse_scales(scale: Any) -> tuple[str, ...]:
    """``scale=`` (one name of :data:`SCALES` or a sequence of them) as the names asked for, in
    :data:`SCALES` order.

    Raises:
        CalibrationError: not a name of :data:`SCALES` or a non-empty sequence of them.
    """
    names = [scale] if isinstance(scale, str) else scale
    try:
        names = list(names)
    except TypeError:
        names = [None]
    if not names or any(not isinstance(n, str) or n not in SCALES for n in names):
        raise CalibrationError(f"scale={scale!r}: expected one of {', '.join(map(repr, SCALES))} or a list of them")
    return tuple(s for s in SCALES if s in names)


def check_scales(calibration: Calibration | None, scales: Sequence[str], *, source: str | None = None) -> None:
    """Raise :class:`~temu.errors.CalibrationError` unless every scale of ``scales`` can be reported.

    Args:
        calibration: the model's (``model.calibration``), or None.
        scales: names from :data:`SCALES`.
        source: the model's name for the message (default ``MODEL``).
    """
    for scale in scales:
        if scale not in SCALES:
            raise CalibrationError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    name = source or "MODEL"
    for scale in scales:
        if scale == "raw" or (calibration is not None and calibration.has(scale)):
            continue
        part = "a MOS calibration" if scale == "mos" else "reference percentiles"
        has = "no calibration.json" if calibration is None else f"a calibration.json without {part}"
        raise CalibrationError(f"scale={scale!r} needs {part}, and {name} has {has}: {_how_to_make(scale, name)}")


def scaled_columns(
    calibration: Calibration | None, raw: Any, scales: Sequence[str], *, source: str | None = None
) -> dict[str, np.ndarray]:
    """The values of each non-raw scale for a batch of raw scores: what engines add as columns.

    Args:
        calibration: the model's (``model.calibration``), or None.
        raw: ``[N]`` raw scores in [0, 1]; NaN for an image without a score (an error row).
        scales: names from :data:`SCALES`; ``"raw"`` adds nothing (the raw score is its own column).
        source: the model's name for the error message.

    Returns:
        ``{"mos": [N], "percentile": [N]}`` (float64, NaN where ``raw`` is NaN), for the scales asked.

    Raises:
        CalibrationError: a scale the calibration cannot give (the message names the command that makes it).
    """
    check_scales(calibration, scales, source=source)
    values = np.asarray(raw, dtype=np.float64).reshape(-1)
    wanted = [s for s in dict.fromkeys(scales) if s != "raw"]
    if calibration is None:  # check_scales let it through: only "raw" was asked for
        return {}
    return {s: calibration.apply(values, s) for s in wanted}


def fill_scales(
    results: Sequence[Any], calibration: Calibration | None, scales: Sequence[str], *, source: str | None = None
) -> None:
    """Set each scored result's ``mos`` / ``percentile`` from its raw ``score`` (one vectorised call for the
    batch); results without a score (errors) are left as they are. What :func:`temu.iter_scores` and the
    corpus engines do to each batch of :class:`~temu.inference.ScoreResult` s.

    Args:
        results: objects with ``score`` (float or None) and ``mos`` / ``percentile`` attributes.
        calibration, scales, source: as for :func:`scaled_columns`.

    Raises:
        CalibrationError: a scale the calibration cannot give.
    """
    wanted = [s for s in scales if s != "raw"]
    if not results or not wanted:
        return
    raw = [math.nan if r.score is None else r.score for r in results]
    columns = scaled_columns(calibration, raw, wanted, source=source)
    for j, result in enumerate(results):
        if result.score is not None:
            for name, values in columns.items():
                setattr(result, name, float(values[j]))
