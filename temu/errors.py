"""Exceptions raised by temu. Each message says what was expected, what was found and how to fix it.

Every error temu raises on purpose is a :class:`TeMuError`, so a program (and temu's own command
line) can tell a bad input, file or setting apart from a bug: catch ``TeMuError``, not
``ValueError`` or ``RuntimeError`` wholesale.
"""

from __future__ import annotations

import math
from pathlib import Path


class TeMuError(Exception):
    """Base class of every error temu raises on purpose."""


class InvalidInputError(TeMuError, ValueError):
    """An image, array or tensor given to temu is not usable as it is."""


class ImageReadError(InvalidInputError):
    """An image file could not be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep (path, reason) when sent back from a DataLoader worker
        return (type(self), (self.path, self.reason))


class WeightsError(TeMuError, ValueError):
    """A head directory, config.json or safetensors file is missing or does not match the model."""


class BackboneError(TeMuError, ValueError):
    """The requested open_clip backbone cannot be used by TeMu-IQA."""


class NotCachedError(TeMuError, FileNotFoundError):
    """A file is not in the local Hugging Face cache and downloading is disabled (HF_HUB_OFFLINE)."""


class DataError(TeMuError, ValueError):
    """A labelled dataset cannot be used as given (bad rows, empty splits, conflicting options)."""


class ConstantInputError(TeMuError, ValueError):
    """A correlation was asked of a constant sequence, for which it is undefined."""


class NonFiniteLossError(TeMuError, RuntimeError):
    """The training loss became NaN or infinite; the message names the batch."""


class NonFiniteScoreError(TeMuError, RuntimeError):
    """A model gave an image a NaN or infinite score (corrupt head weights, or an fp16 overflow)."""


def non_finite_score(name: str, value: float) -> NonFiniteScoreError | None:
    """The error of image ``name`` scored ``value`` if that is NaN or infinite, else None."""
    if math.isfinite(value):
        return None
    return NonFiniteScoreError(
        f"{name}: non-finite score ({value}): the head weights may be corrupt "
        "(with precision='fp16', the backbone may also have overflowed: try 'bf16' or 'fp32')"
    )


class MissingExtraError(TeMuError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install "temu-iqa[extra]"`` that adds it."""


class DeviceError(TeMuError, ValueError):
    """A device was asked for that this machine does not have or that cannot be used."""


class DemoError(TeMuError, ValueError):
    """The demo page cannot be built as asked: no model, a model named twice, an unknown model name or device."""


class TeMuWarning(UserWarning):
    """Something temu handled that the user should know about: an image scored with its orientation
    as stored because its EXIF could not be read, an image downscaled to ``max_pixels``."""


class InvalidAttributesError(TeMuError, ValueError):
    """The attributes asked of :func:`temu.explain` are unusable: an unknown name, a bad prompt pair or a reserved name."""


class CorpusError(TeMuError, ValueError):
    """A corpus input, shard plan or output folder of a corpus run cannot be used as given."""


class CalibrationError(TeMuError, ValueError):
    """A calibration cannot be made or used as asked: too few or unusable labelled images, a fit that
    did not converge, a reference that is not a finished corpus run, or a scale the head has no calibration for."""
