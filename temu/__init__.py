"""temu: TeMu-IQA no-reference image quality assessment on a frozen CLIP backbone.

>>> import temu
>>> temu.score("photo.jpg")            # float in [0, 1], higher is better
>>> model = temu.load("temu-iqa-s")    # a TeMuIQA nn.Module
>>> temu.explain("photo.jpg")          # score + attribute scores (sharpness, noise, ...) + patch maps

The public names below are imported on first use (PEP 562), so ``import temu`` and the ``temu``
command's ``--version`` and ``--help`` do not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import _temu_pyiqa_hook

from ._version import __version__

if TYPE_CHECKING:  # what static type checkers and IDEs see; at run time __getattr__ imports these
    from .api import MODEL_CACHE, ScoreResult, clear_model_cache, default_device, iter_scores, load, score
    from .attributes import DEFAULT_ATTRIBUTES
    from .config import HeadConfig, TeMuConfig
    from .errors import (
        BackboneError,
        ConstantInputError,
        CorpusError,
        DataError,
        ImageReadError,
        InvalidAttributesError,
        InvalidInputError,
        NonFiniteLossError,
        NonFiniteScoreError,
        NotCachedError,
        TeMuError,
        TeMuWarning,
        WeightsError,
    )
    from .explanation import Explanation, explain
    from .hub import list_presets
    from .inputs import decode_image, read_image
    from .model import AttributeMaps, QualityMaps, TeMuIQA
    from .scale import MOSScale

#: public name -> the module (relative to this package) that defines it
_EXPORTS = {
    "TeMuIQA": "model",
    "QualityMaps": "model",
    "AttributeMaps": "model",
    "TeMuConfig": "config",
    "HeadConfig": "config",
    "MOSScale": "scale",
    "score": "api",
    "iter_scores": "api",
    "ScoreResult": "api",
    "explain": "explanation",
    "Explanation": "explanation",
    "DEFAULT_ATTRIBUTES": "attributes",
    "load": "api",
    "default_device": "api",
    "MODEL_CACHE": "api",
    "clear_model_cache": "api",
    "list_presets": "hub",
    "read_image": "inputs",
    "decode_image": "inputs",
    "TeMuError": "errors",
    "InvalidInputError": "errors",
    "ImageReadError": "errors",
    "WeightsError": "errors",
    "BackboneError": "errors",
    "NotCachedError": "errors",
    "DataError": "errors",
    "ConstantInputError": "errors",
    "NonFiniteLossError": "errors",
    "NonFiniteScoreError": "errors",
    "TeMuWarning": "errors",
    "InvalidAttributesError": "errors",
    "CorpusError": "errors",
}

__all__ = [
    "__version__",
    "TeMuIQA",
    "QualityMaps",
    "AttributeMaps",
    "TeMuConfig",
    "HeadConfig",
    "MOSScale",
    "score",
    "iter_scores",
    "ScoreResult",
    "explain",
    "Explanation",
    "DEFAULT_ATTRIBUTES",
    "load",
    "default_device",
    "MODEL_CACHE",
    "clear_model_cache",
    "list_presets",
    "read_image",
    "decode_image",
    "TeMuError",
    "InvalidInputError",
    "ImageReadError",
    "WeightsError",
    "BackboneError",
    "NotCachedError",
    "DataError",
    "ConstantInputError",
    "NonFiniteLossError",
    "NonFiniteScoreError",
    "TeMuWarning",
    "InvalidAttributesError",
    "CorpusError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'temu' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


_temu_pyiqa_hook.activate()  # pyiqa, if imported (now or later), will list temu's metrics; imports nothing
