"""Every GPU row of benchmarks/RESULTS.md in one command, with random weights (they time the same as trained ones).

    python benchmarks/gpu_suite.py OUTDIR                          # every section, on CUDA (budgets: 615 s in all)
    python benchmarks/gpu_suite.py OUTDIR --sections overhead pyiqa
    python benchmarks/gpu_suite.py OUTDIR --tiny                   # tiny backbone, CPU, tiny sizes (tests run this)
    bash benchmarks/gpu_suite.sh OUTDIR                            # a bare GPU machine: venv, install, then the suite

The suite is a list of sections (``SECTIONS``). Each is one function ``(Settings) -> str`` that
measures and returns Markdown in RESULTS.md's format (the command, ``#`` comment lines, tables),
and each has its own time budget in seconds. The sections run in order; each one's text is
printed and appended to ``OUTDIR/results.md`` as soon as it is done, and ``OUTDIR/summary.md``
lists every section with its status, seconds and budget. A section that raises or runs over its
budget is marked FAILED with the reason (its traceback goes to stderr), the other sections still
run, and the suite exits with status 1. Nothing is skipped silently: a missing package or a
missing GPU is a failure. To add a section, write a function and append a ``Section`` to
``SECTIONS``.

Sizes (``FULL``): ViT-L/14 (QuickGELU) at 448x448, bf16 autocast, batch 64; fine-tuning at
batch 32; 512 JPEGs with 8 decoding workers; agreement over the test suite's 48 photo crops.
MFU counts 2 FLOP per multiply-add of the transformer blocks (:func:`vit_flops`, 0.72 TFLOP per
image for ViT-L/14 at 448) against the device's dense bf16 peak (:data:`PEAK_FLOPS` or
``--peak-tflops``).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from common import crops_batch, environment, photo_crops, table, temu_models

# dense bf16 tensor-core peak, FLOP/s, by a substring of torch.cuda.get_device_name (first match wins)
PEAK_FLOPS: tuple[tuple[str, float], ...] = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12))

# a tiny CLIP for --tiny: widths of 64 so that pyiqa's CLIP loader (one head per 64 channels) can rebuild it
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}


@dataclass(frozen=True)
class Settings:
    """The sizes of one run (``FULL`` on a GPU, ``TINY`` for the test suite) and where it runs."""

    device: torch.device
    backbone: str  # open_clip model name (random weights)
    pyiqa_backbone: str  # open_clip name whose random weights pyiqa's clipiqa+ loads (OpenAI format)
    image_size: int
    batch: int  # scoring batch
    precision: str  # the scoring autocast of the timed GPU rows
    repeats: int
    files: int  # JPEGs for the end-to-end section
    file_workers: int
    finetune_batch: int
    agreement_crops: int
    cpu_batches: tuple[int, ...]  # batch sizes of the host-CPU precision section
    peak_flops: float | None  # for MFU; None: unknown
    tiny: bool


FULL = dict(
    backbone="ViT-L-14-quickgelu",
    pyiqa_backbone="ViT-L-14",
    image_size=448,
    batch=64,
    precision="bf16",
    repeats=10,
    files=512,
    file_workers=8,
    finetune_batch=32,
    agreement_crops=48,
    cpu_batches=(1, 4),
)
TINY = dict(
    backbone="temu-suite-tiny-clip",
    pyiqa_backbone="temu-suite-tiny-clip",
    image_size=64,
    batch=4,
    precision="bf16",
    repeats=1,
    files=8,
    file_workers=2,
    finetune_batch=4,
    agreement_crops=12,
    cpu_batches=(1, 2),
)


@dataclass(frozen=True)
class Section:
    name: str  # for --sections
    title: str
    budget_s: float  # on the full sizes; a section running longer is stopped and FAILED
    run: Callable[[Settings], str]


class SectionTimeout(Exception):
    """A section ran over its time budget."""


def vit_flops(width: int, layers: int, tokens: int, mlp_ratio: float = 4.0) -> float:
    """Forward FLOPs (2 per multiply-add) of ``layers`` ViT blocks on ``tokens`` tokens of ``width`` channels.

    Per block: the qkv, output and MLP projections (``2 * tokens * (4 + 2 * mlp_ratio) * width**2``)
    and the two attention products (``4 * tokens**2 * width``).
    """
    return layers * (2 * tokens * (4 + 2 * mlp_ratio) * width**2 + 4 * tokens**2 * width)


def model_flops(model: torch.nn.Module, image_size: int) -> float:
    """:func:`vit_flops` of a TeMuIQA's backbone at ``image_size`` (all blocks)."""
    visual = model.backbone.visual
    patch = visual.conv1.kernel_size[0]
    block = visual.transformer.resblocks[0]
    mlp_ratio = block.mlp.c_fc.out_features / visual.transformer.width
    tokens = (image_size // patch) ** 2 + 1
    return vit_flops(visual.transformer.width, len(visual.transformer.resblocks), tokens, mlp_ratio)


def _header(s: Settings, section: str, *lines: str) -> str:
    flag = " --tiny" if s.tiny else ""
    return "\n".join(
        [
            f"```\npython benchmarks/gpu_suite.py OUTDIR --sections {section}{flag}\n```",
            "",
            *lines,
            f"# {environment(s.device)}",
        ]
    )


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------- sections


def section_overhead(s: Settings) -> str:
    """temu S and I against open_clip's encode_image: images/s, peak memory, time ratio, MFU."""
    from bench_overhead import OVERHEAD_HEADER, build, overhead_rows, overhead_timings

    bare, models = build(s.backbone, s.image_size, ["S", "I"], s.device)
    x = torch.rand(s.batch, 3, s.image_size, s.image_size, device=s.device)
    timings = overhead_timings(bare, models, x, s.precision, s.repeats)
    flops = model_flops(models["S"], s.image_size)
    rows = overhead_rows(timings)
    for row, t in zip(rows, timings.values()):
        row.append(f"{flops * t.per_second / s.peak_flops:.1%}" if s.peak_flops else "n/a (peak unknown)")
    peak = f"{s.peak_flops / 1e12:,.0f} TFLOP/s" if s.peak_flops else "unknown peak (pass --peak-tflops)"
    return "\n".join(
        [
            _header(
                s,
                "overhead",
                f"# {s.backbone} @ {s.image_size}, batch {s.batch}, {s.precision}, {s.repeats} repeats (median)",
                f"# MFU: {flops / 1e12:.3f} TFLOP/image (vit_flops) x images/s / {peak}; goal: temu S <= 1.05x encode_image",
            ),
            table(rows, [*OVERHEAD_HEADER, "MFU"]),
        ]
    )


def section_layer_sweep(s: Settings) -> str:
    """Peak memory of variant S against the number of aggregated layers (flat by design)."""
    import open_clip
    from bench_overhead import layer_sweep_rows

    depth = open_clip.get_model_config(s.backbone)["vision_cfg"]["layers"]
    x = torch.rand(s.batch, 3, s.image_size, s.image_size, device=s.device)
    rows = layer_sweep_rows(s.backbone, depth, x, s.precision, repeats=3)
    note = "peak memory is measured on CUDA only" if s.device.type != "cuda" else "goal: flat in the number of layers"
    return "\n".join(
        [
            _header(
                s,
                "layer_sweep",
                f"# {s.backbone} @ {s.image_size}, batch {s.batch}, {s.precision}: the last k layers aggregated, all blocks run",
                f"# {note}",
            ),
            table(rows, ["layers", "peak MiB", "ms/batch"]),
        ]
    )


def section_pyiqa(s: Settings) -> str:
    """temu_iqa against pyiqa's clipiqa+_vitL14_512, both through pyiqa.create_metric, same batch and device."""
    try:
        import pyiqa
    except ImportError as err:
        raise RuntimeError(f"pyiqa is not installed ({err}): pip install 'temu[pyiqa]'") from err
    from bench_pyiqa import clipiqa_plus, metric_runner, openai_checkpoint, speedup_rows, temu_metric
    from common import time_interleaved

    from temu.precision import autocast_dtype

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = openai_checkpoint(s.pyiqa_backbone, Path(tmp) / "clip.pt", quick_gelu=True)
        theirs = clipiqa_plus(checkpoint, s.device)
    ours = temu_metric(s.backbone, s.image_size, s.device, "auto")
    x = torch.rand(s.batch, 3, s.image_size, s.image_size, generator=torch.Generator().manual_seed(0)).to(s.device)
    low = torch.bfloat16

    def ours_fp32():
        ours.net.precision = "fp32"  # the same metric object, so the backbone is not built twice
        try:
            return ours(x)
        finally:
            ours.net.precision = "auto"

    auto = "bf16" if autocast_dtype(s.device, "auto") == torch.bfloat16 else "fp32"
    fns = {
        f"temu_iqa, precision auto (here {auto})": metric_runner(ours, x),
        "temu_iqa, precision fp32": ours_fp32,
        "clipiqa+_vitL14_512, fp32 (pyiqa's own)": metric_runner(theirs, x),
        "clipiqa+_vitL14_512, under bf16 autocast": metric_runner(theirs, x, low),
    }
    repeats = max(2, s.repeats // 2)
    timings = time_interleaved(fns, device=s.device, items=s.batch, repeats=repeats)
    ref = next(iter(timings))
    return "\n".join(
        [
            _header(
                s,
                "pyiqa",
                f"# {s.image_size}x{s.image_size}, batch {s.batch}, through pyiqa.create_metric, {repeats} repeats (median)",
                "# clipiqa+ loads random OpenAI-format weights from a local file (pretrained=False: no download);"
                " pyiqa has no dtype option, so its bf16 row runs it under torch.autocast",
                f"# goal: temu_iqa >= 1.5x clipiqa+_vitL14_512 | pyiqa {pyiqa.__version__}",
            ),
            table(
                speedup_rows(timings, ref),
                ["metric", "images/s", "ms/batch (median)", "min..max ms", "first row's speed-up vs this"],
            ),
        ]
    )


def section_score_files(s: Settings) -> str:
    """``temu.iter_scores`` from JPEG files (decoding workers) against the model on decoded tensors."""
    from bench_score_files import FILES_HEADER, files_rows, files_timings, make_folder

    (model,) = temu_models(s.backbone, s.image_size, ["S"], s.device).values()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), s.files)
        repeats = 3 if not s.tiny else 1
        timings = files_timings(
            model, Path(tmp), paths, batch=s.batch, workers=s.file_workers, precision=s.precision, repeats=repeats
        )
    return "\n".join(
        [
            _header(
                s,
                "score_files",
                f"# {s.backbone} @ {s.image_size}, {s.files} JPEGs 1024x768, batch {s.batch}, "
                f"{s.file_workers} workers, {s.precision}, {repeats} repeats (median)",
                "# goal: end to end >= 0.8 of model only",
            ),
            table(files_rows(timings), FILES_HEADER),
        ]
    )


def section_finetune(s: Settings) -> str:
    """One fine-tuning step with and without LDG, and the KonIQ-10k 30-epoch time it implies."""
    from bench_finetune import FINETUNE_HEADER, finetune_rows, finetune_timings, koniq_lines

    torch.manual_seed(0)
    (model,) = temu_models(s.backbone, s.image_size, ["S"], s.device).values()
    repeats = max(2, s.repeats // 3)
    timings = finetune_timings(
        model, batch=s.finetune_batch, image_size=s.image_size, precision="auto", repeats=repeats
    )
    return "\n".join(
        [
            _header(
                s,
                "finetune",
                f"# {s.backbone} @ {s.image_size}, variant S, batch {s.finetune_batch}, precision auto, {repeats} repeats (median)",
            ),
            table(finetune_rows(timings), FINETUNE_HEADER),
            *koniq_lines(timings, s.finetune_batch),
        ]
    )


def section_agreement(s: Settings) -> str:
    """bf16 against fp32 on the device: scores of the 48 photo crops, and the speed-up on one batch."""
    from bench_cpu_precision import AGREEMENT_HEADER, PRECISION_HEADER, agreement_rows, precision_rows

    models = temu_models(s.backbone, s.image_size, ["S", "I"], s.device)
    crops = photo_crops(s.agreement_crops)
    agreement = agreement_rows(models, crops, batch=s.batch)
    x = torch.rand(s.batch, 3, s.image_size, s.image_size, generator=torch.Generator().manual_seed(0)).to(s.device)
    repeats = max(2, s.repeats // 3)
    speed = precision_rows(models, x, repeats=repeats)
    return "\n".join(
        [
            _header(
                s,
                "agreement",
                f"# {s.backbone} @ {s.image_size}: temu.score at bf16 and fp32 over {len(crops)} photo crops, batch {s.batch}",
                "# goal: max abs difference < 0.01 per image, SRCC >= 0.999",
            ),
            table(agreement, [h.format(low="bf16") for h in AGREEMENT_HEADER]),
            "",
            f"# the same models on a random batch of {s.batch}, {repeats} repeats (median)",
            table(speed, [h.format(low="bf16") for h in PRECISION_HEADER]),
        ]
    )


def section_cpu_precision(s: Settings) -> str:
    """The host CPU: bf16 autocast against fp32 (variant S), and what precision='auto' picks there."""
    from bench_cpu_precision import PRECISION_HEADER, auto_line, precision_rows

    cpu = torch.device("cpu")
    models = temu_models(s.backbone, s.image_size, ["S"], cpu)
    crops = photo_crops(max(s.cpu_batches))
    rows = []
    for b in s.cpu_batches:
        rows += precision_rows(models, crops_batch(crops[:b], s.image_size, cpu), repeats=1)
    return "\n".join(
        [
            "```\npython benchmarks/gpu_suite.py OUTDIR --sections cpu_precision"
            + (" --tiny" if s.tiny else "")
            + "\n```",
            "",
            f"# host CPU, {s.backbone} @ {s.image_size}, variant S, bf16 autocast vs fp32, 1 warm-up and 1 timed call each",
            f"# {environment(cpu)}",
            f"# {auto_line()}",
            table(rows, [h.format(low="bf16") for h in PRECISION_HEADER]),
        ]
    )


def section_model_side(s: Settings) -> str:
    """Model-only throughput of variant S against its choices: batch size, channels-last input, the SDPA
    backend, and ``torch.compile`` of the blocks with and without CUDA graphs (goal: toward 50% MFU)."""
    import contextlib

    from common import time_interleaved

    flops = model_flops(temu_models(s.backbone, s.image_size, ["S"], s.device)["S"], s.image_size)

    def runner(model: torch.nn.Module, x: torch.Tensor, sdpa=None) -> Callable[[], object]:
        autocast = torch.autocast(s.device.type, dtype=torch.bfloat16)

        def run():
            with torch.inference_mode(), autocast, sdpa() if sdpa else contextlib.nullcontext():
                return model(x, check_input=False)

        return run

    def pixels(batch: int, channels_last: bool = False) -> torch.Tensor:
        x = torch.randint(0, 256, (batch, 3, s.image_size, s.image_size), dtype=torch.uint8, device=s.device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    rows = []

    def measure(name: str, fn: Callable[[], object], batch: int) -> None:
        t = time_interleaved({name: fn}, device=s.device, items=batch, repeats=max(3, s.repeats // 2), warmup=2)[name]
        mfu = f"{flops * t.per_second / s.peak_flops:.1%}" if s.peak_flops else "n/a"
        mem = f"{t.peak_bytes / 2**20:,.0f}" if t.peak_bytes else "n/a"
        rows.append([name, str(batch), f"{t.per_second:,.1f}", f"{1e3 * t.median:,.1f}", mem, mfu])

    base = temu_models(s.backbone, s.image_size, ["S"], s.device)["S"]
    for batch in (s.batch, 2 * s.batch, 4 * s.batch):
        measure("eager, uint8 pixels", runner(base, pixels(batch)), batch)
    measure("eager, channels-last uint8 pixels", runner(base, pixels(s.batch, True)), s.batch)
    if s.device.type == "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION):
            name = f"eager, SDPA {backend.name.lower()} only"
            try:
                measure(name, runner(base, pixels(s.batch), lambda b=backend: sdpa_kernel([b])), s.batch)
            except RuntimeError as err:  # a backend this GPU or build lacks
                rows.append([name, str(s.batch), f"n/a ({str(err).splitlines()[0][:60]})", "", "", ""])
    del base
    _free()
    compile_note = "torch.compile rows run on CUDA only (their compile time on a CPU would dominate --tiny)"
    if s.device.type == "cuda":
        compile_note = (
            "torch.compile of each block (TeMuIQA.compile_backbone); the first calls compile and are not timed"
        )
        for label, kwargs in (
            ("torch.compile", {}),
            ("torch.compile + CUDA graphs (reduce-overhead)", {"mode": "reduce-overhead"}),
        ):
            model = temu_models(s.backbone, s.image_size, ["S"], s.device)["S"].compile_backbone(**kwargs)
            measure(label, runner(model, pixels(s.batch)), s.batch)
            del model
            _free()
    peak = f"{s.peak_flops / 1e12:,.0f} TFLOP/s" if s.peak_flops else "unknown peak"
    return "\n".join(
        [
            _header(
                s,
                "model_side",
                f"# {s.backbone} @ {s.image_size}, variant S, bf16 autocast, model only on uint8 pixels",
                f"# MFU: {flops / 1e12:.3f} TFLOP/image x images/s / {peak}; goal: toward 50% | {compile_note}",
            ),
            table(rows, ["choice", "batch", "images/s", "ms/batch (median)", "peak MiB", "MFU"]),
        ]
    )


SECTIONS: list[Section] = [
    Section("overhead", "temu S and I vs open_clip encode_image (images/s, MFU)", 50, section_overhead),
    Section(
        "model_side",
        "model only: batch, channels-last, SDPA backends, torch.compile, CUDA graphs",
        180,
        section_model_side,
    ),
    Section("layer_sweep", "layer sweep: peak memory against the number of layers", 40, section_layer_sweep),
    Section("pyiqa", "temu_iqa vs pyiqa clipiqa+_vitL14_512 through create_metric", 90, section_pyiqa),
    Section("score_files", "temu.iter_scores from JPEG files vs model only", 80, section_score_files),
    Section("finetune", "one fine-tuning step with and without LDG; KonIQ-10k 30 epochs", 45, section_finetune),
    Section("agreement", "bf16 vs fp32 on the device", 40, section_agreement),
    Section("cpu_precision", "host CPU: bf16 vs fp32, what precision='auto' picks", 90, section_cpu_precision),
]


# ---------------------------------------------------------------------------------------------- runner


def run_section(section: Section, settings: Settings, budget_s: float) -> tuple[str, float, str]:
    """(status, seconds, text): "ok", or "FAILED: why" when it raised or ran over ``budget_s``."""

    def over_budget(signum, frame):
        raise SectionTimeout(f"ran over its budget of {budget_s:.0f} s")

    previous = signal.signal(signal.SIGALRM, over_budget)
    signal.setitimer(signal.ITIMER_REAL, budget_s)
    start = time.perf_counter()
    try:
        torch.manual_seed(0)
        text, status = section.run(settings), "ok"
    except Exception as exc:  # report it, run the other sections, exit 1 at the end
        signal.setitimer(signal.ITIMER_REAL, 0)
        traceback.print_exc()
        text, status = f"**FAILED**: {type(exc).__name__}: {exc}", f"FAILED: {type(exc).__name__}: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    _free()
    return status, seconds, text


def make_settings(tiny: bool, peak_tflops: float | None, work: Path) -> Settings:
    """The FULL sizes on CUDA, or the TINY ones on the CPU (the tiny CLIP config is written under ``work``)."""
    if tiny:
        import open_clip

        config = work / f"{TINY['backbone']}.json"
        config.write_text(json.dumps(TINY_CLIP))
        open_clip.add_model_config(config)
        return Settings(device=torch.device("cpu"), peak_flops=None, tiny=True, **TINY)
    if not torch.cuda.is_available():
        raise SystemExit(
            f"gpu_suite: CUDA is not available to torch {torch.__version__} (built for CUDA {torch.version.cuda}); "
            "run it on a GPU machine, or pass --tiny for the CPU smoke run"
        )
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = peak_tflops * 1e12 if peak_tflops else next((f for key, f in PEAK_FLOPS if key in name), None)
    return Settings(device=device, peak_flops=peak, tiny=False, **FULL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path, help="folder for results.md and summary.md (created)")
    names = [s.name for s in SECTIONS]
    parser.add_argument("--sections", nargs="+", choices=names, default=names, metavar="NAME", help=", ".join(names))
    parser.add_argument("--tiny", action="store_true", help="tiny backbone on the CPU at tiny sizes (a smoke run)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU, for MFU")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every section's time budget")
    args = parser.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", message="TeMuIQA backbone .* has random weights")
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")  # pyiqa's CLIP loader
    args.outdir.mkdir(parents=True, exist_ok=True)
    results, summary = args.outdir / "results.md", args.outdir / "summary.md"
    chosen = [s for s in SECTIONS if s.name in args.sections]
    rows: list[list[str]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        settings = make_settings(args.tiny, args.peak_tflops, Path(work))
        sizes = {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("device", "tiny")}
        results.write_text(f"# gpu_suite results\n\n# {environment(settings.device)}\n# settings: {sizes}\n")
        for section in chosen:
            budget = section.budget_s * args.budget_scale
            print(f"\n== {section.name}: {section.title} (budget {budget:.0f} s)", flush=True)
            status, seconds, text = run_section(section, settings, budget)
            print(text, flush=True)
            with results.open("a") as f:
                f.write(f"\n## {section.title}\n\n{text}\n")
            rows.append([section.name, status, f"{seconds:.1f}", f"{budget:.0f}"])
            summary.write_text(table(rows, ["section", "status", "seconds", "budget s"]) + "\n")
    total = time.perf_counter() - start
    failed = [r[0] for r in rows if r[1] != "ok"]
    with summary.open("a") as f:
        f.write(f"\ntotal {total:.0f} s; {'FAILED: ' + ', '.join(failed) if failed else 'all sections ok'}\n")
    print("\n" + summary.read_text(), flush=True)
    if failed:
        print(
            f"gpu_suite: {len(failed)} section(s) FAILED: {', '.join(failed)} (see above and {summary})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
