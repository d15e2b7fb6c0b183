"""Optional dependencies: what each extra of ``temu-iqa`` installs, and the error when one is missing.

Scoring needs none of them. ``import_extra("scipy", "train", "temu eval")`` imports a module of an
extra or raises :class:`~temu.errors.MissingExtraError` naming the ``pip install`` that adds it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

#: extra -> what it is for (the packages are listed in setup.cfg's extras_require)
EXTRAS = {
    "train": "fine-tuning, evaluation and calibration (scipy; matplotlib for plots)",
    "plots": "attribute panels and plots (matplotlib)",
    "corpus": "corpus mode (pyarrow)",
    "ray": "the Ray engine (ray[data], pyarrow)",
    "video": "video inputs (av, PyAV with FFmpeg)",
    "demo": "the demo page (gradio)",
    "pyiqa": "the IQA-PyTorch integration (pyiqa; PolyForm-Noncommercial)",
}


def import_extra(module: str, extra: str, what: str) -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtraError` saying ``what`` needs ``temu-iqa[extra]``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module.split(".")[0]:
            raise  # a module inside the package is missing: a broken install, not a missing extra
        raise MissingExtraError(
            f'{what} needs {module.split(".")[0]}, which is not installed: pip install "temu-iqa[{extra}]"'
        ) from None
