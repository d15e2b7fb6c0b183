"""Numeric precision of the frozen backbone: the names users pass, and the autocast they mean.

The one list of precision names (``PRECISIONS``) and the one rule for ``"auto"`` (``AUTO_RULE``)
for :func:`temu.score`, ``temu score``, ``temu eval``, ``temu-finetune`` and the pyiqa metric.
torch is imported only when an autocast context is made, so the command line can list the
choices without loading it.

``"auto"`` on the CPU is bf16 only where the CPU computes bf16 matrix products natively (one of
:data:`NATIVE_BF16_FLAGS`, read from ``/proc/cpuinfo`` and torch's CPU probes) and torch has oneDNN.
Measured (``benchmarks/bench_cpu_precision.py``, ``benchmarks/RESULTS.md`` section 10): emulated
bf16 takes 4 to 6 times as long as fp32 on an AVX2-only EPYC; on an EPYC with AVX512-BF16 bf16
is 1.15x to 1.6x as fast as fp32. Arm CPUs stay fp32 until bf16 is measured faster on one. The
head always runs in fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]

#: The accepted precision names, in the order the command line lists them.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

#: What ``"auto"`` means, for help texts and docs.
AUTO_RULE = (
    "bf16 autocast on CUDA (fp16 where bf16 is unsupported) and on CPUs that compute bf16 natively "
    "(AVX512-BF16 or AMX), fp32 elsewhere"
)

#: CPU feature flags (Linux ``/proc/cpuinfo`` names) that mean native bf16 matrix products.
NATIVE_BF16_FLAGS: frozenset[str] = frozenset({"avx512_bf16", "amx_bf16"})

# torch's CPU probes (cpuinfo library; private, hence looked up by name) and the flag each answers for
_TORCH_PROBES = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}, got {precision!r}")
    return precision


def read_cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU listed in ``cpuinfo`` (x86 ``flags``, Arm ``Features``); empty if unreadable."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:  # not Linux, or no /proc: torch's probes still answer
        pass
    return frozenset()


def torch_cpu_flags() -> frozenset[str]:
    """Which of :data:`NATIVE_BF16_FLAGS` torch's own CPU probes report (any OS; none where torch lacks them)."""
    import torch

    return frozenset(flag for flag, probe in _TORCH_PROBES.items() if getattr(torch.cpu, probe, lambda: False)())


def cpu_has_native_bf16(flags: Iterable[str] | None = None, *, onednn: bool | None = None) -> bool:
    """True if the CPU computes bf16 natively: a flag of :data:`NATIVE_BF16_FLAGS` and torch built with oneDNN.

    ``flags`` default: :func:`read_cpu_flags` together with :func:`torch_cpu_flags`; ``onednn``
    default: ``torch.backends.mkldnn.is_available()``.
    """
    if onednn is None:
        import torch

        onednn = torch.backends.mkldnn.is_available()
    if flags is None:
        flags = read_cpu_flags() | torch_cpu_flags()
    return onednn and not NATIVE_BF16_FLAGS.isdisjoint(flags)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype ``precision`` means on ``device`` (see :data:`AUTO_RULE`); None for plain fp32."""
    import torch

    check_precision(precision)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":  # auto
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``precision`` on ``device`` (see :data:`AUTO_RULE`); a ValueError for an unknown name.

    The head always runs in fp32 inside it (see :meth:`temu.TeMuIQA.forward`).
    """
    import torch

    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
