"""Timing helpers shared by the benchmarks: interleaved repeats, medians, environment line, tables.

Every benchmark compares against a baseline measured in the same process, interleaving the
runs (A, B, A, B, ...) so that drift in machine load hits both sides alike.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    name: str
    seconds: list[float]
    items: int  # images per call
    peak_bytes: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def per_second(self) -> float:
        return self.items / self.median


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def time_interleaved(
    fns: dict[str, Callable[[], object]], *, device: torch.device, items: int, repeats: int, warmup: int = 1
) -> dict[str, Timing]:
    """Run each function ``warmup`` times, then ``repeats`` rounds of all of them in turn; median per function.

    On CUDA, also records each function's peak allocated memory over one extra call.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    out = {name: Timing(name, [], items) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            out[name].seconds.append(time.perf_counter() - start)
    if device.type == "cuda":
        for name, fn in fns.items():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            synchronize(device)
            out[name].peak_bytes = torch.cuda.max_memory_allocated(device)
    return out


def environment(device: torch.device) -> str:
    import open_clip

    import temu

    if device.type == "cuda":
        hw = torch.cuda.get_device_name(device)
    else:
        hw = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch threads"
    return (
        f"{_dt.date.today().isoformat()} | {hw} | torch {torch.__version__} | open_clip {open_clip.__version__} | "
        f"temu {temu.__version__} | python {platform.python_version()}"
    )


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A Markdown table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells[1:]]
    return "\n".join(lines)


def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f}"
