"""temu: TeMu-IQA no-reference image quality assessment on a frozen CLIP backbone.

>>> import temu
>>> temu.score("photo.jpg")            # float in [0, 1], higher is better
>>> model = temu.load("temu-iqa-s")    # a TeMuIQA nn.Module
"""

__version__ = "0.1.0"

from .api import MODEL_CACHE, ScoreResult, clear_model_cache, default_device, iter_scores, load, score
from .config import HeadConfig, TeMuConfig
from .errors import BackboneError, ImageReadError, InvalidInputError, NotCachedError, TeMuError, WeightsError
from .hub import list_presets
from .inputs import read_image
from .model import QualityMaps, TeMuIQA

import _temu_pyiqa_hook

_temu_pyiqa_hook.activate()  # pyiqa, if imported (now or later), will list temu's metrics; imports nothing

__all__ = [
    "__version__",
    "TeMuIQA",
    "QualityMaps",
    "TeMuConfig",
    "HeadConfig",
    "score",
    "iter_scores",
    "ScoreResult",
    "load",
    "list_presets",
    "read_image",
    "default_device",
    "MODEL_CACHE",
    "clear_model_cache",
    "TeMuError",
    "InvalidInputError",
    "ImageReadError",
    "WeightsError",
    "BackboneError",
    "NotCachedError",
]
