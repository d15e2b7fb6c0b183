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


class VideoReadError(ImageReadError):
    """A video file could not be read or sampled (no video stream, a codec this FFmpeg cannot decode, a
    truncated file, more samples than ``max_frames``, PyAV not installed); ``path`` and ``reason`` say which and why."""


class VideoOptionsError(TeMuError, ValueError):
    """Video options (``fps``, ``frames``, ``max_frames``, ``max_side``, ``reduce``) out of range or in conflict."""


class WeightsError(TeMuError, ValueError):
    """A head directory, config.json or safetensors file is missing or does not match the model."""


class ConfigError(TeMuError, ValueError):
    """A model config field (:class:`~temu.TeMuConfig`, :class:`~temu.HeadConfig`) has the wrong type or is out
    of its range; the message names the field, the value and what is accepted."""


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


def non_finite_score(name: str, value: float, what: str = "score") -> NonFiniteScoreError | None:
    """The error of image ``name`` given ``value`` as its ``what`` (its score, or an attribute's name)
    if that is NaN or infinite, else None."""
    if math.isfinite(value):
        return None
    return NonFiniteScoreError(
        f"{name}: non-finite {what} ({value}): the head weights may be corrupt "
        "(with precision='fp16', the backbone may also have overflowed: try 'bf16' or 'fp32')"
    )


class MissingExtraError(TeMuError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install "temu-iqa[extra]"`` that adds it."""


class DeviceError(TeMuError, ValueError):
    """A device was asked for that this machine does not have or that cannot be used."""


class DemoError(TeMuError, ValueError):
    """The demo page cannot be built as asked: no model, a model named twice, an unknown model name or device."""


def os_reason(err: OSError) -> str:
    """Why an OS call failed, in a few words: "permission denied", or the system's message."""
    return "permission denied" if isinstance(err, PermissionError) else (err.strerror or str(err))


class TeMuWarning(UserWarning):
    """Something temu handled that the user should know about: an image scored with its orientation
    as stored because its EXIF could not be read, an image downscaled to ``max_pixels``."""


class InvalidAttributesError(TeMuError, ValueError):
    """The attributes asked of :func:`temu.explain` are unusable: an unknown name, a bad prompt pair or a reserved name."""


class CorpusError(TeMuError, ValueError):
    """A corpus input, shard plan, output folder or argument of a corpus run or selection cannot be used as given."""


class CorpusRunError(CorpusError):
    """A corpus run stopped part-way: an input changed or vanished since planning, an output could
    not be written (a full disk). The shards written before are complete and kept (``output``);
    running again scores the rest."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output

    def __reduce__(self):
        return (type(self), (str(self), self.output))


class CalibrationError(TeMuError, ValueError):
    """A calibration cannot be made or used as asked: too few or unusable labelled images, a fit that
    did not converge, a reference that is not a finished corpus run, or a scale the head has no calibration for."""
