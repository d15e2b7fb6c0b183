"""Tests for temu.train.ldg: boxes, local distortion, fidelity and targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from temu.errors import InvalidInputError
from temu.train.ldg import ldg_fidelity, ldg_targets, local_distortion, sample_boxes

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def _photos(size: int) -> Tensor:
    """skimage.data photographs, centre-cropped square and resized: [4, 3, size, size] in [0, 1]."""
    from skimage import data

    out = []
    for name in PHOTOS:
        arr = getattr(data, name)()
        h, w = arr.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        pil = Image.fromarray(arr[top : top + s, left : left + s]).resize((size, size), Image.BICUBIC)
        out.append(torch.from_numpy(np.array(pil)).permute(2, 0, 1))
    return torch.stack(out).float() / 255


def _box_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    top, left, h, w = (boxes[:, k, None] for k in range(4))
    y, x = torch.arange(height)[None], torch.arange(width)[None]
    rows = (y >= top) & (y < top + h)
    cols = (x >= left) & (x < left + w)
    return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1)


def test_box_sizes_at_reference_size() -> None:
    boxes = sample_boxes(3000, 448, 448, generator=torch.Generator().manual_seed(0))
    top, left, h, w = boxes.unbind(1)
    assert boxes.dtype == torch.int64 and boxes.shape == (3000, 4)
    assert h.min() == 40 and h.max() == 150 and w.min() == 40 and w.max() == 150
    assert len(torch.unique(w)) == 111  # every integer of [40, 150]
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 448).all() and (left + w <= 448).all()
    # positions spread over the whole admissible range
    assert top.min() == 0 and (top + h).max() == 448


def test_box_sizes_scale_proportionally() -> None:
    g = torch.Generator().manual_seed(1)
    top, left, h, w = sample_boxes(3000, 224, 672, generator=g).unbind(1)
    assert h.min() == 20 and h.max() == 75  # [40, 150] * 224 / 448
    assert w.min() == 60 and w.max() == 225  # [40, 150] * 672 / 448
    assert (top + h <= 224).all() and (left + w <= 672).all()
    # scaled sizes larger than the image are clamped to it: h in [40, 150] -> [40, 100], w in [32, 120] -> [32, 80]
    _, _, h, w = sample_boxes(500, 100, 80, reference_size=100, generator=g).unbind(1)
    assert h.min() == 40 and h.max() == 100 and w.min() == 32 and w.max() == 80


def test_local_distortion_changes_only_the_box() -> None:
    images = _photos(320)
    distorted, boxes = local_distortion(images, generator=torch.Generator().manual_seed(3))
    assert distorted.shape == images.shape and distorted.dtype == images.dtype
    inside = _box_mask(boxes, 320, 320).expand_as(images)
    assert torch.equal(distorted[~inside], images[~inside])  # bit-identical outside
    changed = (distorted != images) & inside
    assert changed.flatten(1).any(1).all()  # every image changed inside its box
    assert distorted.min() >= 0 and distorted.max() <= 1
    h, w = boxes[:, 2], boxes[:, 3]
    assert ((h >= 29) & (h <= 107) & (w >= 29) & (w <= 107)).all()  # [40, 150] * 320 / 448


def test_box_content_is_torchvision_rand_augment_of_the_crop_alone() -> None:
    from torchvision.transforms import v2

    images = _photos(224)
    before = images.clone()
    distorted, boxes = local_distortion(images, generator=torch.Generator().manual_seed(4))
    assert torch.equal(images, before)  # the input is not written to
    # the documented draws: boxes, then one seed for torchvision's RandAugment over the crops in order
    g = torch.Generator().manual_seed(4)
    assert torch.equal(sample_boxes(4, 224, 224, generator=g), boxes)
    torch.manual_seed(int(torch.randint(2**62, (), generator=g)))
    augment = v2.RandAugment(num_ops=6, magnitude=18)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        expected = augment(images[i, :, top : top + h, left : left + w].clone())  # the crop as its own image
        assert torch.equal(distorted[i, :, top : top + h, left : left + w], expected)


def test_each_image_draws_its_own_op_sequence() -> None:
    # eight copies of one photograph, each box the whole image: the same input, eight different outputs
    images = _photos(64)[:1].expand(8, -1, -1, -1)
    distorted, boxes = local_distortion(
        images, size_range=(64, 64), reference_size=64, generator=torch.Generator().manual_seed(0)
    )
    assert (boxes == torch.tensor([0, 0, 64, 64])).all()
    assert len({tuple(d.flatten()[::97].tolist()) for d in distorted}) == 8


def test_generator_fixes_the_result_and_global_random_state_is_kept() -> None:
    # resume depends on this: a step's distortion depends on the LDG generator only, and drawing it
    # neither reads nor advances torch's global generator
    images = _photos(96)
    torch.manual_seed(123)
    a, _ = local_distortion(images, generator=torch.Generator().manual_seed(9))
    after_a = torch.get_rng_state()
    torch.manual_seed(456)
    b, _ = local_distortion(images, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    torch.manual_seed(123)
    assert torch.equal(torch.get_rng_state(), after_a)


def test_other_seed_other_distortion_and_no_grad() -> None:
    images = _photos(224).requires_grad_()
    a, boxes_a = local_distortion(images, generator=torch.Generator().manual_seed(5))
    c, boxes_c = local_distortion(images, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(boxes_a, boxes_c) and not torch.equal(a, c)
    assert not a.requires_grad
    f = ldg_fidelity(images, a)
    assert not f.requires_grad


def test_fidelity_and_targets_on_photographs() -> None:
    images = _photos(448)
    distorted, _ = local_distortion(images, generator=torch.Generator().manual_seed(7))
    f_same = ldg_fidelity(images, images)
    torch.testing.assert_close(f_same, torch.ones(4), atol=1e-6, rtol=0)
    f = ldg_fidelity(images, distorted)
    assert f.shape == (4,) and f.dtype == images.dtype
    assert ((f >= 0) & (f < 1 - 1e-4)).all()
    # a second distortion on top of the first lowers the fidelity further on average
    twice, _ = local_distortion(distorted, generator=torch.Generator().manual_seed(8))
    assert ldg_fidelity(images, twice).mean() < f.mean()

    mos = torch.tensor([0.9, 0.5, 0.2, 0.7])
    targets = ldg_targets(mos, f)
    assert targets.shape == (4,) and ((targets >= 0) & (targets < mos)).all()  # a distorted copy scores lower
    torch.testing.assert_close(ldg_targets(mos, f_same), mos, atol=1e-6, rtol=0)  # an intact copy keeps the MOS


def test_targets_on_known_values() -> None:
    """Fig. 11 of the paper: the target of a distorted copy is its fidelity times the image's MOS."""
    mos = torch.tensor([0.8, 0.5, 1.0, 0.0])
    fidelity = torch.tensor([0.5, 1.0, 0.25, 0.7], dtype=torch.float64)
    targets = ldg_targets(mos, fidelity)
    assert targets.dtype == torch.float32  # the dtype of the MOS
    torch.testing.assert_close(targets, torch.tensor([0.4, 0.5, 0.25, 0.0]), atol=1e-7, rtol=0)


def test_validation_errors() -> None:
    expected = r"images: expected 4 dimensions \[N, 3, H, W\], got 3 with shape \(3, 224, 224\)"
    with pytest.raises(InvalidInputError, match=expected):
        local_distortion(torch.rand(3, 224, 224))
    with pytest.raises(ValueError, match="size_range"):
        sample_boxes(2, 64, 64, size_range=(50, 40))
    with pytest.raises(ValueError, match=r"0 <= magnitude < num_bins, got 6, 31 and 31"):
        local_distortion(torch.rand(1, 3, 64, 64), magnitude=31)
    with pytest.raises(ValueError, match="same shape"):
        ldg_targets(torch.rand(4), torch.rand(3))
    with pytest.raises(InvalidInputError, match="expected floats"):
        ldg_fidelity(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
