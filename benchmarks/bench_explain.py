"""Cost of explaining a score: ``model.explain(x)`` (score + the 7 default attributes + maps) against ``model(x)``.

Same model, batch, dtype and device, interleaved in one process; random weights (they time the
same as trained ones). Goal: explain <= 1.10x score at ViT-B/16@224 on CPU, <= 1.05x at
ViT-L/14@448 on GPU. A second table times the text encoding done when a model is built: before
this change the 2 quality prompts went through ``encode_text`` at full context (77 positions);
now the 2 quality prompts and the 14 attribute prompts go through together, cut after the
end-of-text token. A third line times drawing one ``temu score --maps DIR --attributes`` panel
(examples/images/coffee.jpg, the photo + quality + 7 attribute maps), which runs on the CPU after scoring.

    python benchmarks/bench_explain.py --backbone ViT-B-16 --image-size 224 --batch 8
    python benchmarks/bench_explain.py --backbone ViT-L-14 --image-size 448 --batch 64 --device cuda
"""

from __future__ import annotations

import argparse
import warnings

import torch
from common import autocast_for, environment, table, time_interleaved


def build(args: argparse.Namespace, device: torch.device):
    import open_clip

    from temu import TeMuIQA
    from temu.model.weights import resolve_backbone

    warnings.filterwarnings("ignore", message="TeMuIQA backbone .* has random weights")
    name = args.backbone
    if name in open_clip.list_models() and resolve_backbone(name, "openai", load_weights=False).force_quick_gelu:
        name = f"{name}-quickgelu"  # the architecture OpenAI's weights need
    model = TeMuIQA(backbone=name, pretrained=None, variant=args.variant, image_size=args.image_size)
    return name, model.to(device).eval()


def text_timings(name: str, repeats: int) -> list[list[str]]:
    """Build-time text encoding on the CPU: before (2 prompts, full context) and now (16 prompts, cut)."""
    import open_clip
    import torch.nn.functional as F

    from temu import DEFAULT_ATTRIBUTES
    from temu.model.text import encode_prompts

    clip = open_clip.create_model(name, pretrained=None).eval()
    quality = ["Good photo.", "Bad photo."]
    everything = quality + [p for pair in DEFAULT_ATTRIBUTES.values() for p in pair]
    ids = open_clip.get_tokenizer(name)(quality)

    def before():
        with torch.no_grad():
            return F.normalize(clip.encode_text(ids).float(), dim=-1)

    def now():
        return encode_prompts(clip, open_clip.get_tokenizer(name), everything)

    t = time_interleaved({"before": before, "now": now}, device=torch.device("cpu"), items=1, repeats=repeats)
    diff = (now()[:2] - before()).abs().max().item()
    return [
        ["2 quality prompts, encode_text, 77 positions (before)", f"{t['before'].median * 1000:,.0f}", "1.00", ""],
        [
            "2 quality + 14 attribute prompts, cut after end-of-text (now)",
            f"{t['now'].median * 1000:,.0f}",
            f"{t['now'].median / t['before'].median:.2f}",
            f"{diff:.1e}",
        ],
    ]


def panel_seconds(grid: int, repeats: int) -> tuple[float, float]:
    """Seconds to import matplotlib's pieces and median seconds to draw one 9-tile panel (random maps)."""
    import statistics
    import tempfile
    import time
    from pathlib import Path

    import numpy as np

    from temu import DEFAULT_ATTRIBUTES
    from temu.images.decode import read_image

    start = time.perf_counter()
    from temu.plots import draw_panel, thumbnail

    draw_panel(np.zeros((8, 8, 3), np.uint8), "warm-up", {"quality": (0.5, np.zeros((2, 2)))}, Path(tempfile.mktemp()))
    imported = time.perf_counter() - start
    photo = thumbnail(read_image(str(Path(__file__).resolve().parent.parent / "examples" / "images" / "coffee.jpg")))
    rng = np.random.default_rng(0)
    maps = {name: (0.5, rng.random((grid, grid))) for name in ["quality", *DEFAULT_ATTRIBUTES]}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            start = time.perf_counter()
            draw_panel(photo, "coffee.jpg", maps, Path(tmp) / "panel.png")
            times.append(time.perf_counter() - start)
    return imported, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="ViT-B-16")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--variant", default="S", choices=["S", "I"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16", "fp16"], default=None, help="default: bf16 on CUDA, fp32 on CPU"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-text", action="store_true", help="skip the build-time text-encoding table")
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    torch.manual_seed(0)

    name, model = build(args, device)
    x = torch.rand(args.batch, 3, args.image_size, args.image_size, device=device)
    autocast = autocast_for(device, precision)
    with torch.inference_mode():
        model.attribute_text_features()  # the default set's vectors on the device, as after a first call

    def score():
        with torch.inference_mode(), autocast:
            return model(x, check_input=False)

    def explain_all():
        with torch.inference_mode(), autocast:
            return model.explain(x, check_input=False)

    def explain_one():
        with torch.inference_mode(), autocast:
            return model.explain(x, ["sharpness"], check_input=False)

    fns = {"score (model(x))": score, "explain, 1 attribute": explain_one, "explain, 7 default attributes": explain_all}
    timings = time_interleaved(fns, device=device, items=args.batch, repeats=args.repeats)
    base = timings["score (model(x))"].median
    rows = [
        [
            t.name,
            f"{t.per_second:,.2f}",
            f"{t.median * 1000:,.1f}",
            f"{min(t.seconds) * 1000:,.1f}..{max(t.seconds) * 1000:,.1f}",
            "n/a" if t.peak_bytes is None else f"{t.peak_bytes / 2**20:,.0f}",
            f"{t.median / base:.3f}",
        ]
        for t in timings.values()
    ]
    print(
        f"# {name} @ {args.image_size}, variant {args.variant}, batch {args.batch}, {precision}, "
        f"{args.repeats} repeats (median)"
    )
    print(f"# {environment(device)}")
    print(table(rows, ["call", "images/s", "ms/batch (median)", "min..max ms", "peak MiB", "time / score"]))
    with torch.inference_mode(), autocast:
        out = model.explain(x, check_input=False)
        gap = (out.score.float() - model(x, check_input=False).float()).abs().max().item()
    print(f"# max |explain score - model(x)|: {gap:.1e}")

    if not args.no_text:
        print(f"\n# text encoding when a model is built ({name} text tower, CPU, {args.repeats} repeats, median)")
        print(table(text_timings(name, args.repeats), ["prompts", "ms", "time / before", "max |diff| of the 2"]))
    grid = args.image_size // model.patch_size[0]
    imported, drawn = panel_seconds(grid, args.repeats)
    print(
        f"\n# one --maps panel (coffee.jpg, 9 tiles, {grid}x{grid} maps), CPU: {drawn * 1000:,.0f} ms median "
        f"over {args.repeats}; first panel's matplotlib import and set-up: {imported * 1000:,.0f} ms"
    )


if __name__ == "__main__":
    main()
