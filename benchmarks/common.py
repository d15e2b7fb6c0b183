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


def quickgelu_name(backbone: str) -> str:
    """The open_clip name of ``backbone`` with the activation OpenAI's weights need (``ViT-L-14`` -> ``ViT-L-14-quickgelu``)."""
    import open_clip

    from temu.model.weights import resolve_backbone

    if "openai" not in open_clip.list_pretrained_tags_by_model(backbone):
        return backbone  # not an OpenAI architecture (or already -quickgelu): as it is
    return (
        f"{backbone}-quickgelu"
        if resolve_backbone(backbone, "openai", load_weights=False).force_quick_gelu
        else backbone
    )


def temu_models(
    backbone: str, image_size: int | None, variants: Sequence[str], device: torch.device, **kwargs: object
) -> dict[str, torch.nn.Module]:
    """``{variant: TeMuIQA}`` with random backbone weights (``pretrained=None``), in eval mode on ``device``."""
    import warnings

    from temu import TeMuIQA

    warnings.filterwarnings("ignore", message="TeMuIQA backbone .* has random weights")
    return {
        v: TeMuIQA(backbone=backbone, pretrained=None, variant=v, image_size=image_size, **kwargs).to(device).eval()
        for v in variants
    }


def photo_crops(n: int = 48) -> list:
    """The first ``n`` of the test suite's 48 photo crops (tests/temu_testing.py: 96x96 uint8 RGB arrays)."""
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parent.parent / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from temu_testing import make_photo_crops

    crops = make_photo_crops()
    if n > len(crops):
        raise SystemExit(f"at most {len(crops)} photo crops exist, {n} asked for")
    return crops[:n]


def crops_batch(crops: Sequence, image_size: int, device: torch.device) -> torch.Tensor:
    """``[N, 3, S, S]`` floats in [0, 1]: the crops resized to ``image_size`` (bicubic, antialiased)."""
    import numpy as np
    import torch.nn.functional as F

    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", antialias=True, align_corners=False)
    return x.clamp(0, 1).to(device)
