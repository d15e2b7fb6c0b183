"""The MOS scale: the linear map between a dataset's raw scores and temu's [0, 1] (1 = best).

A fine-tuned head records the scale it was trained on (``TeMuConfig.mos_scale``), so its
predictions can be mapped back to the dataset's units (:meth:`temu.TeMuIQA.to_mos`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class MOSScale:
    """Linear map between raw scores in [low, high] and [0, 1], 1 = best.

    With ``lower_better`` (DMOS) the map is flipped: ``1 - (x - low) / (high - low)``, as pyiqa's
    ``mos_normalize`` does (it does not negate). Values outside [low, high] (e.g. in a validation
    set) map outside [0, 1]; nothing is clipped.
    """

    low: float
    high: float
    lower_better: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.lower_better, (bool, np.bool_)):
            raise TypeError(f"lower_better must be True or False, got {self.lower_better!r}")
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise TypeError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "lower_better", bool(self.lower_better))
        if not self.high > self.low:
            raise ValueError(
                f"high must be greater than low, got low={self.low}, high={self.high}; fit on at least two different scores"
            )

    @classmethod
    def fit(cls, scores: Iterable[float], *, lower_better: bool = False) -> MOSScale:
        """Scale from the min and max of raw ``scores`` (use the training set's); all must be finite."""
        values = np.asarray(list(scores), dtype=np.float64)
        if values.size == 0:
            raise ValueError("cannot fit a MOS scale on no scores")
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{int(bad.sum())} score(s) are not finite numbers, first at position {first} ({values[first]}); "
                "drop those rows first"
            )
        return cls(float(values.min()), float(values.max()), lower_better)

    def normalise(self, values: Any) -> Any:
        """Raw scores -> [0, 1], higher = better. Same type as a float/array/tensor input."""
        unit = (_as_numeric(values) - self.low) / (self.high - self.low)
        return 1.0 - unit if self.lower_better else unit

    def denormalise(self, values: Any) -> Any:
        """Inverse of :meth:`normalise`: [0, 1] -> raw scores in the dataset's direction."""
        unit = _as_numeric(values)
        if self.lower_better:
            unit = 1.0 - unit
        return unit * (self.high - self.low) + self.low

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for config.json and checkpoints: ``{"low", "high", "lower_better"}``."""
        return {"low": self.low, "high": self.high, "lower_better": self.lower_better}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MOSScale:
        """Rebuild from :meth:`to_dict` output; a missing or unknown key is an error."""
        keys = {"low", "high", "lower_better"}
        if not isinstance(data, Mapping) or set(data) != keys:
            found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"a MOS scale is a dict with the keys {sorted(keys)}, got {found}")
        return cls(data["low"], data["high"], data["lower_better"])


def _as_numeric(values: Any) -> Any:
    if isinstance(values, torch.Tensor):
        return values if values.is_floating_point() else values.double()
    if isinstance(values, (int, float, np.number)) and not isinstance(values, bool):
        return float(values)
    return np.asarray(values, dtype=np.float64)
