"""CPU precision: temu S and I under bf16 autocast against fp32, in one process; torch.compile on the CPU.

Random backbone weights (they time the same as trained ones). The timed batch is the first B of
the test suite's 48 photo crops, resized to the model's size. For each batch size and variant it
prints the fp32 and bf16 times (interleaved), the speed-up fp32 / bf16 and the largest score
difference on the timed batch; ``--agreement-crops N`` adds max |bf16 - fp32| and SRCC over N
crops scored through ``temu.score`` (the test suite's rule: < 0.01 and >= 0.999 over 48);
``--compile`` adds ``torch.compile`` (fp32, variant S, largest batch): the first call's cost,
the part of it dynamo and inductor spent compiling, and the steady-state ratio to eager. The header says what
``precision="auto"`` picks on this CPU and why (temu/precision.py).

    python benchmarks/bench_cpu_precision.py --backbone ViT-B-16 --image-size 224 --batch 8 --agreement-crops 48
    python benchmarks/bench_cpu_precision.py --backbone ViT-L-14 --image-size 448 --batch 1 4 --repeats 1
    python benchmarks/bench_cpu_precision.py --backbone ViT-L-14 --image-size 448 --batch 4 --variants S --no-precision --compile
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from collections.abc import Sequence

import numpy as np
import torch
from common import crops_batch, environment, photo_crops, quickgelu_name, table, temu_models, time_interleaved


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def auto_line() -> str:
    """One line: the CPU, the bf16 flags it reports, and what precision="auto" picks on it."""
    from temu.precision import NATIVE_BF16_FLAGS, autocast_dtype, read_cpu_flags, torch_cpu_flags

    flags = sorted((read_cpu_flags() | torch_cpu_flags()) & NATIVE_BF16_FLAGS) or ["none"]
    picked = autocast_dtype(torch.device("cpu"), "auto")
    return (
        f"CPU {cpu_model()!r}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16 flags: {', '.join(flags)}, oneDNN {torch.backends.mkldnn.is_available()} "
        f"-> precision='auto' picks {'bf16' if picked == torch.bfloat16 else 'fp32'} here"
    )


def _autocast(dtype: torch.dtype | None, device: torch.device):
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def precision_rows(
    models: dict[str, torch.nn.Module],
    x: torch.Tensor,
    *,
    repeats: int,
    low: torch.dtype = torch.bfloat16,
    warmup: int = 1,
) -> list[list[str]]:
    """Rows ``[batch, variant, fp32 ms, low ms, min..max, speed-up fp32/low, max |low - fp32|]`` on batch ``x``.

    fp32 and ``low``-precision autocast run interleaved, both variants in one round.
    """
    device = x.device
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[low]
    outputs: dict[str, torch.Tensor] = {}

    def runner(key: str, model: torch.nn.Module, dtype: torch.dtype | None):
        def run():
            with torch.inference_mode(), _autocast(dtype, device):
                outputs[key] = model(x, check_input=False).float().cpu()

        return run

    fns = {}
    for v, m in models.items():
        fns[f"{v} fp32"] = runner(f"{v} fp32", m, None)
        fns[f"{v} {name}"] = runner(f"{v} {name}", m, low)
    timings = time_interleaved(fns, device=device, items=x.shape[0], repeats=repeats, warmup=warmup)
    rows = []
    for v in models:
        full, half = timings[f"{v} fp32"], timings[f"{v} {name}"]
        diff = (outputs[f"{v} {name}"] - outputs[f"{v} fp32"]).abs().max().item()
        rows.append(
            [
                x.shape[0],
                v,
                f"{full.median * 1000:,.0f}",
                f"{half.median * 1000:,.0f}",
                f"{min(half.seconds) * 1000:,.0f}..{max(half.seconds) * 1000:,.0f}",
                f"{full.median / half.median:.2f}x",
                f"{diff:.1e}",
            ]
        )
    return rows


PRECISION_HEADER = [
    "batch",
    "variant",
    "fp32 ms/batch",
    "{low} ms/batch",
    "{low} min..max ms",
    "speed-up fp32/{low}",
    "max abs({low} - fp32), timed batch",
]


def agreement_rows(
    models: dict[str, torch.nn.Module], crops: Sequence[np.ndarray], *, batch: int, low: str = "bf16"
) -> list[list[str]]:
    """Rows ``[variant, images, max |low - fp32|, SRCC, fp32 score std]``: ``temu.score`` at both precisions."""
    import temu
    from temu.evaluation.metrics import srcc

    rows = []
    for v, m in models.items():
        full = np.array(temu.score(list(crops), model=m, precision="fp32", batch_size=batch))
        half = np.array(temu.score(list(crops), model=m, precision=low, batch_size=batch))
        rows.append([v, len(crops), f"{np.abs(full - half).max():.1e}", f"{srcc(full, half):.5f}", f"{full.std():.4f}"])
    return rows


AGREEMENT_HEADER = ["variant", "images", "max abs({low} - fp32) per image", "SRCC {low} vs fp32", "fp32 score std"]


def compile_rows(model: torch.nn.Module, x: torch.Tensor, *, repeats: int) -> list[list[str]]:
    """Rows for eager vs ``torch.compile``d blocks (fp32): first call (compilation included), steady median, ratio."""
    compiled = copy.deepcopy(model).compile_backbone()

    def call(m):
        def run():
            with torch.inference_mode():
                return m(x, check_input=False)

        return run

    first = {}
    for name, m in (("eager", model), ("torch.compile", compiled)):
        start = time.perf_counter()
        call(m)()
        first[name] = time.perf_counter() - start
    compiling = {"eager": "0", "torch.compile": f"{_dynamo_compile_seconds():,.1f}"}
    timings = time_interleaved(
        {"eager": call(model), "torch.compile": call(compiled)},
        device=x.device,
        items=x.shape[0],
        repeats=repeats,
        warmup=0,
    )
    base = timings["eager"].median
    return [
        [
            name,
            f"{first[name]:,.1f}",
            compiling[name],
            f"{t.median * 1000:,.0f}",
            f"{min(t.seconds) * 1000:,.0f}..{max(t.seconds) * 1000:,.0f}",
            f"{base / t.median:.2f}x",
        ]
        for name, t in timings.items()
    ]


COMPILE_HEADER = [
    "blocks",
    "first call s",
    "of which compiling s",
    "steady ms/batch (median)",
    "min..max ms",
    "speed-up vs eager",
]


def _dynamo_compile_seconds() -> float:
    """Seconds torch.compile spent compiling in this process (dynamo's ``_compile.compile_inner`` timer)."""
    from torch._dynamo.utils import compile_times

    names, values = compile_times(repr="csv", aggregate=True)
    return float(dict(zip(names, values))["_compile.compile_inner"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backbone", default="ViT-B-16", help="open_clip name (QuickGELU added where OpenAI's needs it)"
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, nargs="+", default=[8])
    parser.add_argument("--variants", nargs="+", default=["S", "I"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--agreement-crops", type=int, default=0, help="crops for the agreement table (0: none)")
    parser.add_argument("--no-precision", action="store_true", help="skip the bf16-vs-fp32 table (with --compile)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (fp32, first variant)")
    parser.add_argument("--compile-repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cpu")
    torch.manual_seed(0)

    name = quickgelu_name(args.backbone)
    models = temu_models(name, args.image_size, args.variants, device)
    crops = photo_crops(max(max(args.batch), args.agreement_crops))
    what = "torch.compile" if args.no_precision else f"bf16 autocast vs fp32, {args.repeats} repeats (median)"
    print(f"# {name} @ {args.image_size}, random weights, {what}")
    print(f"# {environment(device)}")
    print(f"# {auto_line()}")
    if not args.no_precision:
        rows = []
        for b in args.batch:
            rows += precision_rows(models, crops_batch(crops[:b], args.image_size, device), repeats=args.repeats)
        print(table(rows, [h.format(low="bf16") for h in PRECISION_HEADER]))
    if args.agreement_crops:
        print(f"\n# agreement over {args.agreement_crops} photo crops (temu.score, batch {max(args.batch)})")
        rows = agreement_rows(models, crops[: args.agreement_crops], batch=max(args.batch))
        print(table(rows, [h.format(low="bf16") for h in AGREEMENT_HEADER]))
    if args.compile:
        b = max(args.batch)
        v, m = next(iter(models.items()))
        print(
            f"\n# torch.compile of the backbone's blocks, variant {v}, batch {b}, fp32, {args.compile_repeats} repeats"
        )
        x = crops_batch(crops[:b], args.image_size, device)
        print(table(compile_rows(m, x, repeats=args.compile_repeats), COMPILE_HEADER))


if __name__ == "__main__":
    main()
