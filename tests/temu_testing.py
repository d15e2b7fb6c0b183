"""Helpers shared by the tests (importable because pytest's pythonpath includes tests/)."""

from __future__ import annotations

import hashlib
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
