"""temu_iqa against pyiqa's CLIP-IQA metrics: throughput at the same resolution, batch and device.

All three are built through ``pyiqa.create_metric`` (the same InferenceModel wrapper, fp32, as
pyiqa runs its metrics), with random weights: temu's ViT-L/14 from open_clip (pretrained=None),
and for pyiqa local checkpoints in OpenAI's format (open_clip's state_dict of a random
ViT-L-14 / RN50; ``pretrained=False`` skips the prompt weights download). ``clipiqa`` is RN50,
``clipiqa+_vitL14_512`` ViT-L/14; both get ``pos_embedding=True`` so they accept the size.
temu_iqa runs with ``precision="fp32"``; on CUDA a last row shows its default, ``precision="auto"``
(bf16 autocast).

    python benchmarks/bench_pyiqa.py --image-size 448 --batch 8 --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import torch
from common import environment, table, time_interleaved


class _Holder(torch.nn.Module):
    """A TorchScript module whose state_dict is exactly a given (OpenAI-format) state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def openai_checkpoint(name: str, path: Path, quick_gelu: bool) -> str:
    """Random open_clip weights as a TorchScript archive that pyiqa's CLIP loader accepts.

    pyiqa's loader (like OpenAI's) tries torch.jit.load first and then torch.load on the same,
    already-read file object, so a plain torch.save checkpoint fails with EOFError; a scripted
    module whose state_dict holds the tensors under OpenAI's key names loads.
    """
    import open_clip

    clip = open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu)
    root = _Holder()
    for key, value in clip.state_dict().items():
        *parents, leaf = key.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, _Holder())
            module = getattr(module, part)
        module.register_buffer(leaf, value.detach().clone())
    torch.jit.save(torch.jit.script(root), str(path))
    return str(path)


def temu_metric(backbone: str, image_size: int, device: torch.device, precision: str):
    """``pyiqa.create_metric("temu_iqa")`` on ``backbone`` with random weights at ``precision``."""
    import pyiqa

    import temu  # noqa: F401  (registers temu_iqa where the start-up hook did not run)

    return pyiqa.create_metric(
        "temu_iqa", backbone=backbone, pretrained=None, image_size=image_size, device=device, precision=precision
    )


def clipiqa_plus(checkpoint: str, device: torch.device):
    """``pyiqa.create_metric("clipiqa+_vitL14_512")`` on a local OpenAI-format checkpoint (no download)."""
    import pyiqa

    # pretrained=False: no learned-prompt weights (pyiqa would download them)
    return pyiqa.create_metric("clipiqa+_vitL14_512", backbone=checkpoint, pretrained=False, device=device)


def metric_runner(metric, x: torch.Tensor, autocast_dtype: torch.dtype | None = None):
    """A call of a pyiqa metric on ``x``, under autocast to ``autocast_dtype`` if given (pyiqa has no dtype option)."""

    def run():
        with torch.autocast(x.device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            return metric(x)

    return run


def speedup_rows(timings: dict, reference: str) -> list[list[str]]:
    """Rows ``[metric, images/s, ms/batch, min..max ms, reference's speed-up vs this]``."""
    ref = timings[reference].per_second
    return [
        [
            t.name,
            f"{t.per_second:,.2f}",
            f"{t.median * 1000:,.0f}",
            f"{min(t.seconds) * 1000:,.0f}..{max(t.seconds) * 1000:,.0f}",
            f"{ref / t.per_second:.2f}",
        ]
        for t in timings.values()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    warnings.filterwarnings("ignore")

    import pyiqa

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        vitl = openai_checkpoint("ViT-L-14", Path(tmp) / "vitl14.pt", quick_gelu=True)
        rn50 = openai_checkpoint("RN50", Path(tmp) / "rn50.pt", quick_gelu=True)
        metrics = {
            # random weights on the architecture OpenAI's weights need (QuickGELU), as pyiqa's models have
            "temu_iqa (ViT-L/14)": temu_metric("ViT-L-14-quickgelu", args.image_size, device, "fp32"),
            "clipiqa+_vitL14_512 (ViT-L/14)": clipiqa_plus(vitl, device),
            "clipiqa (RN50)": pyiqa.create_metric("clipiqa", backbone=rn50, pos_embedding=True, device=device),
        }
        if device.type == "cuda":
            metrics["temu_iqa, precision auto (bf16 autocast)"] = temu_metric(
                "ViT-L-14-quickgelu", args.image_size, device, "auto"
            )
    x = torch.rand(args.batch, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(0)).to(
        device
    )
    fns = {name: metric_runner(m, x) for name, m in metrics.items()}
    timings = time_interleaved(fns, device=device, items=args.batch, repeats=args.repeats)
    print(
        f"# {args.image_size}x{args.image_size}, batch {args.batch}, fp32 through pyiqa.create_metric, {args.repeats} repeats (median)"
    )
    print(f"# {environment(device)} | pyiqa {pyiqa.__version__}")
    print(
        table(
            speedup_rows(timings, "temu_iqa (ViT-L/14)"),
            ["metric", "images/s", "ms/batch (median)", "min..max ms", "temu_iqa (fp32) speed-up vs this"],
        )
    )


if __name__ == "__main__":
    main()
