"""Shared fixtures: a tiny open_clip backbone with random weights, real photographs, a fake Hub cache.

Everything here is offline and deterministic. The tiny backbone (tests/assets/tiny-clip.json:
a 3-layer ViT with 8x8 patches at 32x32, a 2-layer text tower) is saved once per session as a
local checkpoint, so models built from it share exact weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from temu_testing import PHOTO_NAMES, TINY_CONFIG, make_photo_crops, perturb_head


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """open_clip checkpoint (safetensors) of the tiny backbone with seeded random weights."""
    import open_clip
    from safetensors.torch import save_file

    open_clip.add_model_config(TINY_CONFIG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        clip = open_clip.create_model("tiny-clip", pretrained=None)
        # random init leaves the visual tower's position/class embeddings small; make the layers differ more
        with torch.no_grad():
            for p in clip.visual.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path_factory.mktemp("tiny-backbone") / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_kwargs(tiny_checkpoint: Path) -> dict:
    """Keyword arguments of TeMuIQA for the tiny backbone."""
    return {"backbone": str(TINY_CONFIG), "pretrained": str(tiny_checkpoint), "image_size": 64}


@pytest.fixture(scope="session")
def tiny_clip(tiny_checkpoint: Path) -> torch.nn.Module:
    """The full open_clip model behind the tiny checkpoint (for reference computations)."""
    import open_clip

    open_clip.add_model_config(TINY_CONFIG)
    return open_clip.create_model("tiny-clip", pretrained=str(tiny_checkpoint)).eval()


@pytest.fixture(scope="session")
def tiny_head_dir(tmp_path_factory: pytest.TempPathFactory, tiny_kwargs: dict) -> Path:
    """A saved head directory (variant S, perturbed head) on the tiny backbone, loadable offline."""
    from temu import TeMuIQA

    with torch.random.fork_rng(devices=[]):  # the head's random init must not depend on test order
        torch.manual_seed(0)
        model = TeMuIQA(**tiny_kwargs)
    perturb_head(model)
    return model.save_pretrained(tmp_path_factory.mktemp("heads") / "tiny-s")


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photographs shipped in scikit-image, uint8 HWC RGB, downsized to 128 px on the long side."""
    from PIL import Image
    from skimage import data

    out = {}
    for name in PHOTO_NAMES:
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        img.thumbnail((128, 128), Image.BICUBIC)
        out[name] = np.asarray(img)
    return out


@pytest.fixture(scope="session")
def photo_crops() -> list[np.ndarray]:
    """48 images of distinct content: 8 random square crops (96x96) of each of the six photographs
    that scikit-image ships, so scores spread and rank comparisons mean something."""
    return make_photo_crops()


@pytest.fixture
def photo_files(tmp_path: Path, photos: dict[str, np.ndarray]) -> dict[str, Path]:
    """The photographs written as PNG files (lossless, so files and arrays score the same)."""
    from PIL import Image

    paths = {}
    for name, arr in photos.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(arr).save(paths[name])
    return paths


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache folder, set as HF_HUB_CACHE, with HF_HUB_OFFLINE=1 (set after import)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: the tiny training loops are dominated by thread hand-offs on a
    shared 2-core machine (see test_finetune.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """(labels.csv, image root) of 40 photographs with graded distortions (tests/synthetic_iqa.py); read-only."""
    from synthetic_iqa import make_dataset

    root = tmp_path_factory.mktemp("synthetic")
    return make_dataset(root, photos), root
