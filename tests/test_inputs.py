"""Every accepted input kind is converted correctly; every bad input gets a specific, named error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from temu import ImageReadError, InvalidInputError
from temu.inputs import expand_sources, is_single_image, list_images, read_image, to_image_tensor


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


def as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1).float() / 255


# ---------------------------------------------------------------- conversions


def test_rgb_png_roundtrip(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    t = read_image(tmp_path / "a.png")
    assert t.shape == (3, 20, 30) and t.dtype == torch.float32
    torch.testing.assert_close(t, as_tensor(rgb))


def test_grayscale_becomes_three_equal_channels(tmp_path, rgb):
    Image.fromarray(rgb[:, :, 0], mode="L").save(tmp_path / "g.png")
    t = read_image(tmp_path / "g.png")
    assert t.shape == (3, 20, 30)
    torch.testing.assert_close(t[0], torch.from_numpy(rgb[:, :, 0]).float() / 255)
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])


def test_rgba_drops_alpha_keeping_colour(tmp_path, rgb):
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    torch.testing.assert_close(read_image(tmp_path / "a.png"), as_tensor(rgb))


def test_palette_image_is_expanded_to_its_colours(tmp_path):
    img = Image.new("P", (4, 2))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    img.save(tmp_path / "p.png")
    t = read_image(tmp_path / "p.png")
    assert t[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and t[:, 0, 1].tolist() == [0.0, 0.0, 1.0]


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)  # pure red in CMYK
    t = read_image(tmp_path / "c.jpg")
    assert t.shape == (3, 8, 8)
    r, g, b = t.mean(dim=(1, 2)).tolist()
    assert r > 0.9 and g < 0.1 and b < 0.1


def test_16_bit_grayscale_keeps_its_full_range(tmp_path):
    a = np.array([[0, 1000, 65535]], dtype=np.uint16).repeat(2, axis=0)
    Image.fromarray(a).save(tmp_path / "d.png")
    t = read_image(tmp_path / "d.png")
    assert t.shape == (3, 2, 3)
    torch.testing.assert_close(t[0, 0], torch.tensor([0.0, 1000 / 65535, 1.0]))  # not clipped at 255


def test_exif_orientation_is_applied(tmp_path, rgb):
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    assert read_image(tmp_path / "r.jpg").shape == (3, 30, 20)


def test_numpy_arrays_of_each_dtype(rgb):
    torch.testing.assert_close(to_image_tensor(rgb), as_tensor(rgb))
    torch.testing.assert_close(to_image_tensor(rgb.astype(np.float32) / 255), as_tensor(rgb))
    torch.testing.assert_close(to_image_tensor(rgb.astype(np.uint16) * 257), as_tensor(rgb))
    assert to_image_tensor(rgb[:, :, 0]).shape == (3, 20, 30)
    assert to_image_tensor(np.dstack([rgb, rgb[:, :, :1]])).shape == (3, 20, 30)  # RGBA: alpha dropped


# ---------------------------------------------------------------- unreadable files


def test_missing_file_names_file_and_cause(tmp_path):
    with pytest.raises(ImageReadError, match=r"nope\.jpg: no such file") as info:
        read_image(tmp_path / "nope.jpg")
    assert info.value.path.endswith("nope.jpg") and info.value.reason == "no such file"


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png: the file is empty \(0 bytes\)"):
        read_image(tmp_path / "empty.png")


def test_non_image_file(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    with pytest.raises(ImageReadError, match=r"notes\.jpg: not an image file"):
        read_image(tmp_path / "notes.jpg")


def test_truncated_image(tmp_path, rgb):
    Image.fromarray(np.tile(rgb, (10, 10, 1))).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.jpg: truncated or corrupt"):
        read_image(tmp_path / "cut.jpg")


def test_decompression_bomb_guard_stays_on(tmp_path, monkeypatch):
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64*64 > 2 * 100: Pillow refuses
    with pytest.raises(ImageReadError, match=r"big\.png: refused as a possible decompression bomb.*MAX_IMAGE_PIXELS"):
        read_image(tmp_path / "big.png")


def test_directory_is_not_an_image_file(tmp_path):
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path)


# ---------------------------------------------------------------- tensors and arrays


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(2, 20, 20), r"\[3, H, W\]"),
        (torch.rand(3, 20, 20) * 2, r"values must lie in \[0, 1\], found min .* max"),
        (torch.full((3, 4, 4), float("inf")), "NaN or Inf"),
        (torch.full((3, 4, 4), 3, dtype=torch.uint8), r"divide by 255"),
        (np.full((4, 4, 3), 1.5, np.float32), r"\[0, 1\]"),
        (np.zeros((4, 4, 2), np.uint8), "1, 3 or 4 channels"),
        (np.zeros((4, 4, 3), np.int64), "dtype int64"),
        (b"\x89PNG", "raw bytes"),
        (42, "unsupported input type int"),
    ],
)
def test_bad_in_memory_images(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        to_image_tensor(bad)


def test_negative_values_are_not_clamped():
    with pytest.raises(InvalidInputError, match="does not clamp"):
        to_image_tensor(torch.full((3, 4, 4), -0.1))


def test_bad_batch_tensor_is_refused_when_expanded():
    with pytest.raises(InvalidInputError, match="3 \\(RGB\\) channels"):
        expand_sources(torch.rand(2, 4, 8, 8))


# ---------------------------------------------------------------- collections


def test_directories_expand_to_sorted_images_only(tmp_path, rgb):
    for name in ["b.png", "a.jpg", "c.PNG"]:
        Image.fromarray(rgb).save(tmp_path / name)
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    Image.fromarray(rgb).save(tmp_path / "sub" / "d.png")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png", "c.PNG"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.jpg", "b.png", "c.PNG", "d.png"]
    names = [s.name for s in expand_sources([tmp_path, str(tmp_path / "a.jpg")])]
    assert [Path(n).name for n in names] == ["a.jpg", "b.png", "c.PNG", "a.jpg"]


def test_batch_tensor_expands_to_one_source_per_image_and_nested_lists_flatten(rgb):
    sources = expand_sources([torch.rand(3, 3, 8, 8), [rgb, (Image.fromarray(rgb),)]])
    assert len(sources) == 5
    assert sources[0].load().shape == (3, 8, 8) and sources[4].load().shape == (3, 20, 30)


def test_single_versus_collection(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert is_single_image(tmp_path / "a.png") and is_single_image(str(tmp_path / "a.png"))
    assert is_single_image(rgb) and is_single_image(torch.rand(3, 4, 4)) and is_single_image(Image.fromarray(rgb))
    assert not is_single_image(tmp_path) and not is_single_image([rgb]) and not is_single_image(torch.rand(1, 3, 4, 4))


def test_generators_are_consumed_once(rgb):
    sources = expand_sources(x for x in [rgb, rgb])
    assert len(sources) == 2
