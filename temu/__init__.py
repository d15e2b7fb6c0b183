"""temu: TeMu-IQA no-reference image quality assessment on a frozen CLIP backbone.

>>> import temu
>>> temu.score("photo.jpg")            # float in [0, 1], higher is better
>>> temu.explain("photo.jpg")          # score + attribute scores (sharpness, noise, ...) + patch maps
>>> temu.score_video("clip.mp4")       # a VideoScore: its frames' scores (1 per second) and their mean
>>> model = temu.load("temu-iqa-s")    # a new TeMuIQA nn.Module (temu.cache.cached_model: the shared one)
>>> temu.score("photo.jpg", model="runs/koniq-cal", scale="mos")   # a calibrated head: in the dataset's MOS units

The public names below are imported on first use (PEP 562), so ``import temu`` and the ``temu``
command's ``--version`` and ``--help`` do not load torch. Exception classes live in
:mod:`temu.errors` (``temu.TeMuError`` is the base of them all).
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

import _temu_pyiqa_hook

from ._version import __version__

if TYPE_CHECKING:  # what static type checkers and IDEs see; at run time __getattr__ imports these
    from .api import Explanation, explain, iter_scores, score, score_video
    from .cache import clear_model_cache, load
    from .errors import TeMuError
    from .evaluation.calibration import calibrate
    from .inference import ScoreResult
    from .model import AttributeMaps, HeadConfig, MOSScale, QualityMaps, TeMuConfig, TeMuIQA
    from .model.attributes import DEFAULT_ATTRIBUTES
    from .model.hub import list_presets
    from .video import VideoScore

#: public name -> the module (relative to this package) that defines it
_EXPORTS = {
    "score": "api",
    "iter_scores": "api",
    "explain": "api",
    "Explanation": "api",
    "score_video": "api",
    "VideoScore": "video",
    "ScoreResult": "inference",
    "load": "cache",
    "clear_model_cache": "cache",
    "list_presets": "model.hub",
    "TeMuIQA": "model",
    "QualityMaps": "model",
    "AttributeMaps": "model",
    "TeMuConfig": "model",
    "HeadConfig": "model",
    "MOSScale": "model",
    "DEFAULT_ATTRIBUTES": "model.attributes",
    "TeMuError": "errors",
    # the facade may name any layer: temu.calibrate fits with scipy (temu.evaluation), imported only when used
    "calibrate": "evaluation.calibration",
}

#: names ``temu`` exported before 0.2, kept for one release with a DeprecationWarning: name -> (module, new home)
_DEPRECATED = {
    **{
        name: ("errors", f"temu.errors.{name}")
        for name in (
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
        )
    },  # fmt: skip
    "MODEL_CACHE": ("cache", "temu.cache.MODEL_CACHE"),
    "read_image": ("images.decode", "temu.images.decode.read_image"),
    "decode_image": ("images.decode", "temu.images.decode.decode_image"),
}

__all__ = [
    "__version__",
    "score",
    "iter_scores",
    "explain",
    "Explanation",
    "score_video",
    "VideoScore",
    "ScoreResult",
    "load",
    "clear_model_cache",
    "list_presets",
    "TeMuIQA",
    "QualityMaps",
    "AttributeMaps",
    "TeMuConfig",
    "HeadConfig",
    "MOSScale",
    "DEFAULT_ATTRIBUTES",
    "TeMuError",
    "calibrate",
]


def __getattr__(name: str) -> Any:
    if name == "default_device":
        warnings.warn(
            "temu.default_device is deprecated; use temu.runtime.resolve_device(None)", DeprecationWarning, stacklevel=2
        )
        from .runtime import resolve_device

        return lambda: resolve_device(None)
    if name in _DEPRECATED:
        module, new = _DEPRECATED[name]
        warnings.warn(f"temu.{name} is deprecated and will be removed; use {new}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(f".{module}", __name__), name)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'temu' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


_temu_pyiqa_hook.activate()  # pyiqa, if imported (now or later), will list temu's metrics; imports nothing
