"""Tests for temu.train.cwssim.cw_ssim."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from temu.train.cwssim import cw_ssim

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def _photo(name: str, height: int, width: int) -> Tensor:
    """A skimage.data photograph, centre-cropped to the aspect ratio and resized: [1, 3, H, W] in [0, 1]."""
    from skimage import data

    arr = getattr(data, name)()
    h, w = arr.shape[:2]
    if h * width > w * height:
        ch, cw = w * height // width, w
    else:
        ch, cw = h, h * width // height
    top, left = (h - ch) // 2, (w - cw) // 2
    pil = Image.fromarray(arr[top : top + ch, left : left + cw]).resize((width, height), Image.BICUBIC)
    return torch.from_numpy(np.array(pil)).permute(2, 0, 1).unsqueeze(0).to(torch.float64) / 255.0


def _jpeg(img: Tensor, quality: int) -> Tensor:
    arr = (img[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    out = np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0).to(img.dtype) / 255.0


def _blur(img: Tensor, radius: int) -> Tensor:
    return F.avg_pool2d(img, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def _noise(img: Tensor, sigma: float, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (img + sigma * torch.randn(img.shape, generator=g, dtype=img.dtype)).clamp(0, 1)


def _local(img: Tensor) -> Tensor:
    out = img.clone()
    h, w = img.shape[-2:]
    rows, cols = slice(h // 5, h // 5 + h // 3), slice(w // 4, w // 4 + w // 3)
    out[..., rows, cols] = 1 - out[..., rows, cols]
    return out


def _distorted_set(height: int, width: int) -> tuple[Tensor, Tensor]:
    """(distorted, reference) batches: each photo with blur, noise, JPEG and a local rectangle distortion."""
    dist, ref = [], []
    for i, name in enumerate(PHOTOS):
        img = _photo(name, height, width)
        for d in (_blur(img, 2), _noise(img, 0.08, i), _jpeg(img, 10), _local(img)):
            dist.append(d)
            ref.append(img)
    return torch.cat(dist), torch.cat(ref)


def test_identical_images_score_one() -> None:
    x = torch.cat([_photo(n, 256, 256) for n in PHOTOS])
    torch.testing.assert_close(cw_ssim(x, x), torch.ones(4, dtype=x.dtype), atol=1e-6, rtol=0)
    grey = x[:, :1]
    torch.testing.assert_close(cw_ssim(grey, grey), torch.ones(4, dtype=x.dtype), atol=1e-6, rtol=0)
    flat = torch.full((2, 3, 64, 64), 0.5)
    torch.testing.assert_close(cw_ssim(flat, flat), torch.ones(2), atol=1e-6, rtol=0)


def test_stronger_distortion_scores_lower() -> None:
    ref = torch.cat([_photo(n, 256, 256) for n in PHOTOS])
    weak, strong = _noise(ref, 0.05, 0), _noise(ref, 0.3, 0)
    s_weak, s_strong = cw_ssim(weak, ref), cw_ssim(strong, ref)
    assert (s_strong < s_weak).all() and (s_weak < 1).all()
    b_weak, b_strong = cw_ssim(_blur(ref, 2), ref), cw_ssim(_blur(ref, 8), ref)
    assert (b_strong < b_weak).all()
    assert ((0 <= s_strong) & (s_strong <= 1)).all()


def test_batch_invariance_and_symmetry() -> None:
    dist, ref = _distorted_set(128, 160)
    batched = cw_ssim(dist, ref)
    alone = torch.stack([cw_ssim(dist[i : i + 1], ref[i : i + 1])[0] for i in range(len(dist))])
    torch.testing.assert_close(batched, alone, atol=1e-12, rtol=0)
    torch.testing.assert_close(cw_ssim(ref, dist), batched, atol=1e-12, rtol=0)


def test_output_dtype_and_float32_computation() -> None:
    dist, ref = _distorted_set(96, 96)
    ref64 = cw_ssim(dist, ref)
    out32 = cw_ssim(dist.float(), ref.float(), dtype=torch.float32)
    assert out32.dtype == torch.float32 and out32.shape == (len(dist),)
    torch.testing.assert_close(out32.double(), ref64, atol=1e-4, rtol=0)


def test_guard_band_changes_score_and_validates() -> None:
    dist, ref = _distorted_set(256, 256)
    with_gb = cw_ssim(dist, ref, guard_band=16)
    assert with_gb.shape == (len(dist),)
    assert not torch.allclose(with_gb, cw_ssim(dist, ref))
    with pytest.raises(ValueError, match="smaller than the 7x7 window"):
        cw_ssim(dist, ref, guard_band=112)


def test_input_validation() -> None:
    x = torch.rand(3, 224, 224)
    with pytest.raises(ValueError, match=r"Expected x to be a 4-D tensor .* got shape \(3, 224, 224\)"):
        cw_ssim(x, x)
    with pytest.raises(ValueError, match="same shape"):
        cw_ssim(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 72))
    with pytest.raises(ValueError, match="too small"):
        cw_ssim(torch.rand(1, 3, 48, 64), torch.rand(1, 3, 48, 64))
    with pytest.raises(TypeError, match="floating-point"):
        u8 = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
        cw_ssim(u8, u8)


@pytest.mark.parametrize(("height", "width"), [(256, 256), (225, 290)])
def test_matches_pyiqa(height: int, width: int) -> None:
    pyiqa = pytest.importorskip("pyiqa")
    metric = pyiqa.create_metric("cw_ssim", device="cpu")
    dist, ref = _distorted_set(height, width)
    expected = metric(dist, ref).to(torch.float64)
    ours = cw_ssim(dist, ref)
    # spread of the scores, so the comparison is not trivially passing
    assert expected.max() - expected.min() > 0.2
    torch.testing.assert_close(ours, expected, atol=1e-7, rtol=0)


def test_matches_pyiqa_with_K_and_grey_input() -> None:
    pyiqa = pytest.importorskip("pyiqa")
    dist, ref = _distorted_set(128, 128)
    metric = pyiqa.create_metric("cw_ssim", device="cpu", K=1.0)
    torch.testing.assert_close(cw_ssim(dist, ref, K=1.0), metric(dist, ref).double(), atol=1e-7, rtol=0)
    plain = pyiqa.create_metric("cw_ssim", device="cpu")
    grey_d, grey_r = dist[:, 1:2], ref[:, 1:2]
    torch.testing.assert_close(cw_ssim(grey_d, grey_r), plain(grey_d, grey_r).double(), atol=1e-7, rtol=0)
