"""The model: a frozen CLIP backbone and the small trainable head, their config, and where weights come from.

``temuiqa``     the ``TeMuIQA`` nn.Module: forward, explain, save and load
``config``      ``TeMuConfig`` / ``HeadConfig`` and their JSON form; the layer set
``scale``       ``MOSScale``: a dataset's MOS range <-> [0, 1]
``weights``     which open_clip model and checkpoint a (backbone, pretrained) pair means
``backbone``    the frozen image tower, streamed over layers
``blocks``      the SDPA attention block swapped into the image tower
``text``        CLIP's text encoder: prompt vectors
``prompts``     CoCoOp's learned prompts (variant I)
``head``        the trainable head
``attributes``  the named prompt pairs of ``temu.explain`` (no torch)
``calibration`` a head's calibration.json applied (raw score -> MOS, percentile; numpy only)
``hub``         presets, head folders and Hugging Face Hub downloads
``presets`` / ``card``  the shipped presets and model cards

Names below are imported on first use, so ``temu.model.attributes`` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import HeadConfig, TeMuConfig
    from .scale import MOSScale
    from .temuiqa import AttributeMaps, QualityMaps, TeMuIQA, untrained_model

_EXPORTS = {
    "TeMuIQA": "temuiqa",
    "QualityMaps": "temuiqa",
    "AttributeMaps": "temuiqa",
    "untrained_model": "temuiqa",
    "TeMuConfig": "config",
    "HeadConfig": "config",
    "MOSScale": "scale",
}

__all__ = ["AttributeMaps", "HeadConfig", "MOSScale", "QualityMaps", "TeMuConfig", "TeMuIQA", "untrained_model"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'temu.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
