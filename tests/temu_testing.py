"""Helpers shared by the tests (importable because pytest's pythonpath includes tests/)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

ASSETS = Path(__file__).parent / "assets"
TINY_CONFIG = ASSETS / "tiny-clip.json"
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket")


def make_photo_crops(per_photo: int = 8, size: int = 96, seed: int = 0) -> list[np.ndarray]:
    """Random square crops (``size`` x ``size`` uint8 RGB) of the six photographs scikit-image ships,
    ``per_photo`` of each: images of distinct content whose scores spread (the ``photo_crops`` fixture;
    ``benchmarks/bench_cpu_precision.py`` measures bf16 agreement on the same crops)."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    crops = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "retina", "hubble_deep_field"):
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        w, h = img.size
        for _ in range(per_photo):
            side = int(rng.integers(min(w, h) // 4, min(w, h)))
            left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crops.append(np.asarray(img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)))
    return crops


def perturb_head(model, seed: int = 0, scale: float = 0.3) -> None:
    """Move every head parameter away from its initial value, so a head is 'trained-like'."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def write_hub_cache(cache: Path, repo_id: str, files: dict[str, Path], commit: str | None = None) -> Path:
    """Lay files out as huggingface_hub's cache does: blobs/, snapshots/<commit>/, refs/main. Returns the snapshot dir."""
    commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for name, src in files.items():
        data = Path(src).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("../..") / "blobs" / blob.name)
    return snapshot


# ------------------------------------------------------------------ stored outputs (tests/test_stored_outputs.py)

REPO = Path(__file__).resolve().parent.parent
STORED_OUTPUTS = ASSETS / "stored_outputs.json"
STORED_IMAGES = ("coffee.jpg", "rocket.jpg")  # shipped in examples/images/
REGENERATE = "python tests/make_stored_outputs.py"


def write_fixed_backbone(path: Path, seed: int = 20250611) -> Path:
    """Save the tiny backbone (tiny-clip.json) with weights that depend on ``seed``, names and shapes only.

    Every parameter is drawn, in name order, from one seeded torch.Generator (matrices scaled by
    1/sqrt(fan-in), LayerNorm weights around 1, other vectors small, the logit scale open_clip starts
    from: 1/0.07), so the weights do not change with open_clip's initialisation code. Buffers (the
    causal mask) are kept.
    """
    import math

    import open_clip
    from safetensors.torch import save_file

    open_clip.add_model_config(TINY_CONFIG)
    clip = open_clip.create_model("tiny-clip", pretrained=None)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(clip.named_parameters()):
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if name == "logit_scale":
                p.fill_(math.log(1 / 0.07))
            elif p.ndim >= 2:
                p.copy_(noise / math.sqrt(p[0].numel()))
            elif name.rsplit(".", 2)[-2].startswith("ln") and name.endswith(".weight"):
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    return path


def fixed_model(checkpoint: Path, variant: str, seed: int = 7):
    """A TeMuIQA on the fixed backbone (image_size 64: an 8x8 grid, not the backbone's 4x4) whose head
    parameters are all drawn, in name order, from a seeded generator (not from temu's initialisation)."""
    from temu import TeMuIQA

    model = TeMuIQA(backbone=str(TINY_CONFIG), pretrained=str(checkpoint), variant=variant, image_size=64).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.head.named_parameters()):
            p.copy_(0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model


def stored_outputs(checkpoint: Path) -> dict:
    """What tests/assets/stored_outputs.json holds: scores of S and I on two shipped photographs and
    the quality maps of S on the first, all through temu.score / temu.iter_scores in fp32 on the CPU."""
    import temu

    paths = [REPO / "examples" / "images" / name for name in STORED_IMAGES]
    out: dict = {
        "regenerate": REGENERATE,
        "what": "tests/temu_testing.py stored_outputs(): fixed tiny backbone and heads, image_size 64, fp32, CPU",
        "images": [f"examples/images/{name}" for name in STORED_IMAGES],
        "scores": {},
    }
    for variant in ("S", "I"):
        model = fixed_model(checkpoint, variant)
        out["scores"][variant] = temu.score(paths, model=model, batch_size=2, device="cpu", precision="fp32")
        if variant == "S":
            (result,) = temu.iter_scores(paths[:1], model, device="cpu", precision="fp32", with_maps=True)
            out["maps"] = {
                "image": out["images"][0],
                "variant": variant,
                "score_map": np.asarray(result.score_map, dtype=float).tolist(),
                "weight_map": np.asarray(result.weight_map, dtype=float).tolist(),
            }
    return out


def write_clip(
    path: Path,
    pictures: Sequence[np.ndarray],
    times: list[float],
    *,
    rate: int = 30,
    time_base: Fraction = Fraction(1, 1000),
    gop: int | None = None,
    rotation: tuple[int, bool, bool] | None = None,
    codec: str = "libx264",
    faststart: bool = False,
) -> Path:
    """A clip showing ``pictures[i % len(pictures)]`` (``[H, W, 3]`` uint8, even sides) from ``times[i]``
    seconds (pts set explicitly), written with PyAV; ``faststart``: an MP4's index before its frames,
    as streaming sites write them."""
    import av

    height, width = pictures[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = time_base
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(*rotation)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(pictures[i % len(pictures)], format="rgb24")
            frame.pts, frame.time_base = round(t / time_base), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
