"""Tests for temu.train.augment: batched, masked RandAugment checked against torchvision."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op as tv_apply_op  # RandAugment's own op dispatcher

from temu.errors import InvalidInputError
from temu.train.augment import OPS, apply_op, apply_op_sequences, op_magnitudes, rand_augment, sample_op_sequences

SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
UINT8_ONLY = {"Posterize", "Equalize"}  # torchvision implements these for uint8 tensors only


def _photo_u8() -> Tensor:
    from skimage import data

    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).contiguous()  # [3, 512, 512] uint8


def _torchvision(crop: Tensor, op: str, value: float) -> Tensor:
    """torchvision's RandAugment op on a float crop [3, h, w] with values k / 255."""
    if op in UINT8_ONLY:
        u8 = torch.round(crop * 255).to(torch.uint8)
        return tv_apply_op(u8, op, value, InterpolationMode.NEAREST, None).float() / 255
    if op == "Solarize":  # float path: threshold in [0, 1]
        return tv_apply_op(crop, op, value / 255.0, InterpolationMode.NEAREST, None)
    return tv_apply_op(crop, op, value, InterpolationMode.NEAREST, None)


def _canvas_with_crops(shapes: list[tuple[int, int]], size: int, seed: int) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Crops of a photo centred on noisy canvases: (canvas [N,3,S,S], mask [N,1,S,S], crops)."""
    g = torch.Generator().manual_seed(seed)
    photo = _photo_u8().float() / 255
    canvas = torch.rand(len(shapes), 3, size, size, generator=g)
    mask = torch.zeros(len(shapes), 1, size, size, dtype=torch.bool)
    crops = []
    for i, (h, w) in enumerate(shapes):
        t0, l0 = 90 + 37 * i, 150 + 23 * i
        crop = photo[:, t0 : t0 + h, l0 : l0 + w]
        top, left = (size - h) // 2, (size - w) // 2
        canvas[i, :, top : top + h, left : left + w] = crop
        mask[i, :, top : top + h, left : left + w] = True
        crops.append(crop)
    return canvas, mask, crops


def _crop_of(out: Tensor, mask: Tensor, i: int, h: int, w: int) -> Tensor:
    return out[i][mask[i].expand(3, -1, -1)].reshape(3, h, w)


@pytest.mark.parametrize("op", OPS)
def test_each_op_matches_torchvision_on_crops(op: str) -> None:
    shapes = [(37, 53), (64, 41), (50, 50), (80, 80), (80, 33)]  # the last two touch the canvas edge
    canvas, mask, crops = _canvas_with_crops(shapes, 80, seed=0)
    heights, widths = torch.tensor([s[0] for s in shapes]), torch.tensor([s[1] for s in shapes])
    # Contrast's mean is summed in another order than torchvision's; all other ops are bit-exact.
    atol = 1e-6 if op == "Contrast" else 0.0
    for bin_ in (4, 18, 30):
        for sign in (1.0, -1.0) if op in SIGNED else (1.0,):
            values = sign * op_magnitudes(op, bin_, 31, heights, widths)
            out = apply_op(canvas, op, values, mask)
            outside = ~mask.expand_as(canvas)
            assert torch.equal(out[outside], canvas[outside])
            for i, (h, w) in enumerate(shapes):
                expected = _torchvision(crops[i], op, float(values[i]))
                torch.testing.assert_close(_crop_of(out, mask, i, h, w), expected, atol=atol, rtol=0)


@pytest.mark.parametrize("op", ["Rotate", "ShearX", "TranslateY", "Sharpness", "Equalize", "AutoContrast", "Contrast"])
def test_ops_without_mask_match_torchvision(op: str) -> None:
    img = _photo_u8()[:, 100:148, 200:240].float() / 255  # [3, 48, 40]
    value = float(op_magnitudes(op, 18, 31, torch.tensor([48]), torch.tensor([40]))[0])
    out = apply_op(img[None], op, torch.tensor([-value if op in SIGNED else value]))
    expected = _torchvision(img, op, -value if op in SIGNED else value)
    torch.testing.assert_close(out[0], expected, atol=1e-6, rtol=0)


def test_magnitude_table_matches_torchvision() -> None:
    # bin 18 of 31: shear 0.18, rotate 18 deg, enhance 0.54, posterize 6 bits, solarize 102,
    # translate 150/331 * 0.6 of the crop size
    h, w = torch.tensor([100]), torch.tensor([331])
    assert op_magnitudes("ShearX", 18, 31, h, w).item() == pytest.approx(0.18, abs=1e-7)
    assert op_magnitudes("Rotate", 18, 31, h, w).item() == pytest.approx(18.0, abs=1e-5)
    assert op_magnitudes("Sharpness", 18, 31, h, w).item() == pytest.approx(0.54, abs=1e-7)
    assert op_magnitudes("Posterize", 18, 31, h, w).item() == 6
    assert op_magnitudes("Solarize", 18, 31, h, w).item() == 102
    assert op_magnitudes("TranslateX", 18, 31, h, w).item() == pytest.approx(90.0, abs=1e-4)
    assert op_magnitudes("TranslateY", 18, 31, h, w).item() == pytest.approx(150 / 331 * 60, abs=1e-4)


def _reference_chain(crop: Tensor, ops: Tensor, negative: Tensor, h: int, w: int) -> Tensor:
    for k, neg in zip(ops.tolist(), negative.tolist()):
        op = OPS[k]
        value = float(op_magnitudes(op, 18, 31, torch.tensor([h]), torch.tensor([w]))[0])
        if op in SIGNED and neg:
            value = -value
        crop = _torchvision(crop, op, value)
    return crop


def test_batched_sequences_match_per_image_torchvision_chains() -> None:
    shapes = [(40, 150), (150, 40), (97, 61), (75, 75), (120, 133), (44, 90)]
    canvas, mask, crops = _canvas_with_crops(shapes, 150, seed=1)
    g = torch.Generator().manual_seed(123)
    op_index, negative = sample_op_sequences(len(shapes), 6, generator=g)
    out = apply_op_sequences(canvas, op_index, negative, mask)
    for i, (h, w) in enumerate(shapes):
        expected = _reference_chain(crops[i], op_index[i], negative[i], h, w)
        # a Contrast mean that differs in the last bit may move a later 8-bit rounding by one level
        torch.testing.assert_close(_crop_of(out, mask, i, h, w), expected, atol=1.01 / 255, rtol=0)
        assert (_crop_of(out, mask, i, h, w) - expected).abs().gt(1e-5).float().mean() < 1e-3


def test_rand_augment_draws_a_sequence_per_image_and_is_deterministic() -> None:
    g = torch.Generator().manual_seed(7)
    op_index, negative = sample_op_sequences(64, 6, generator=g)
    assert op_index.shape == (64, 6) and negative.dtype == torch.bool
    assert len({tuple(r) for r in op_index.tolist()}) > 60  # 14**6 possible sequences
    assert set(op_index.flatten().tolist()) == set(range(len(OPS)))

    # the same crop, copied 6 times, is augmented differently in each copy
    canvas, mask, _ = _canvas_with_crops([(60, 70)] * 6, 80, seed=2)
    canvas = canvas[:1].expand(6, -1, -1, -1).contiguous()
    out1 = rand_augment(canvas, mask, generator=torch.Generator().manual_seed(5))
    out2 = rand_augment(canvas, mask, generator=torch.Generator().manual_seed(5))
    out3 = rand_augment(canvas, mask, generator=torch.Generator().manual_seed(6))
    assert torch.equal(out1, out2)
    assert not torch.equal(out1, out3)
    distinct = {out1[i].numpy().tobytes() for i in range(6)}
    assert len(distinct) >= 5
    # rand_augment = sample_op_sequences + apply_op_sequences
    ops, neg = sample_op_sequences(6, 6, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out1, apply_op_sequences(canvas, ops, neg, mask))
    outside = ~mask.expand_as(canvas)
    assert torch.equal(out1[outside], canvas[outside])
    assert out1.min() >= 0 and out1.max() <= 1


def test_validation_errors() -> None:
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(
        InvalidInputError, match=r"images: expected 4 dimensions \[N, 3, H, W\], got 3 with shape \(3, 32, 32\)"
    ):
        rand_augment(x[0])
    with pytest.raises(InvalidInputError, match=r"expected floats in \[0, 1\], got dtype torch.uint8"):
        rand_augment((x * 255).to(torch.uint8))
    bad = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    bad[:, :, 2:5, 2:5] = True
    bad[:, :, 10:12, 10:12] = True
    with pytest.raises(ValueError, match="rectangle"):
        rand_augment(x, bad)
    with pytest.raises(ValueError, match="magnitude"):
        rand_augment(x, magnitude=31)
    with pytest.raises(ValueError, match="Unknown op"):
        apply_op(x, "Invert", torch.zeros(2))


def test_equalize_with_saturated_region_matches_torchvision() -> None:
    # many pixels at the brightest level: torchvision's step excludes that level's count
    img = _photo_u8()[:, 200:260, 200:260].float() / 255
    img[:, :30] = 1.0
    canvas, mask, _ = _canvas_with_crops([(60, 60)], 72, seed=3)
    canvas[0][mask[0].expand(3, -1, -1)] = img.flatten()
    out = apply_op(canvas, "Equalize", torch.zeros(1), mask)
    torch.testing.assert_close(_crop_of(out, mask, 0, 60, 60), _torchvision(img, "Equalize", 0.0), atol=0, rtol=0)
