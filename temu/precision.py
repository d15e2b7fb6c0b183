"""Numeric precision of the frozen backbone: the names users pass, and the autocast they mean.

The one list of precision names (``PRECISIONS``) for :func:`temu.score`, ``temu score``, ``temu
eval`` and ``temu-finetune``. torch is imported only when an autocast context is made, so the
command line can list the choices without loading it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]

#: The accepted precision names, in the order the command line lists them.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

#: What ``"auto"`` means, for help texts and docs.
AUTO_RULE = "bf16 autocast on CUDA (fp16 where bf16 is unsupported), fp32 elsewhere"


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}, got {precision!r}")
    return precision


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype ``precision`` means on ``device``; None for plain fp32."""
    import torch

    check_precision(precision)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type != "cuda":  # auto
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``precision`` on ``device`` (see :data:`AUTO_RULE`); a ValueError for an unknown name.

    The head always runs in fp32 inside it (see :meth:`temu.TeMuIQA.forward`).
    """
    import torch

    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
