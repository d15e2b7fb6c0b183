"""Every accepted input kind is converted correctly; every bad input gets a specific, named error."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from temu.errors import ImageReadError, InvalidInputError, TeMuWarning
from temu.images.decode import decode_pixels, pixels_to_float, read_image, read_pixels
from temu.images.folders import HIDDEN, NOT_AN_IMAGE, REVISITED, SUBFOLDER, describe_skipped, list_images
from temu.images.sources import expand_sources, is_single_image, to_pixels


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


def as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1).float() / 255


def to_image_tensor(obj, **kwargs) -> torch.Tensor:
    """In-memory image -> float32 in [0, 1], as the model sees it."""
    return pixels_to_float(to_pixels(obj, **kwargs))


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


def test_8_bit_files_decode_to_uint8_pixels_and_deeper_ones_to_floats(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[:, :, 0], mode="L").save(tmp_path / "g.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif_bytes([ORIENTATION_6]), quality=90)
    Image.fromarray(np.dstack([rgb[:, :, 0], rgb[:, :, 1]]), mode="LA").save(tmp_path / "la.png")
    Image.fromarray(rgb[:, :, 1].astype(np.uint16) * 257).save(tmp_path / "d.png")
    for name in ("a.png", "g.png", "p.png", "r.jpg", "la.png"):
        pixels = read_pixels(tmp_path / name)
        assert pixels.dtype == torch.uint8 and pixels.shape == read_image(tmp_path / name).shape
        assert torch.equal(pixels_to_float(pixels), read_image(tmp_path / name))  # bit for bit
    la = read_pixels(tmp_path / "la.png")  # LA: the luminance in three channels, alpha dropped
    assert torch.equal(la[0], torch.from_numpy(rgb[:, :, 0])) and torch.equal(la[0], la[2])
    deep = read_pixels(tmp_path / "d.png")  # 16 bits do not fit uint8: floats, full range kept
    assert deep.dtype == torch.float32 and torch.equal(deep, read_image(tmp_path / "d.png"))
    data = (tmp_path / "r.jpg").read_bytes()
    assert torch.equal(decode_pixels(data, "r.jpg"), read_pixels(tmp_path / "r.jpg"))


@pytest.mark.parametrize("mode, kwargs", [("RGB", {}), ("RGB", {"progressive": True}), ("L", {}), ("CMYK", {})])
def test_jpegs_decode_to_exactly_pillows_pixels(tmp_path, photos, mode, kwargs):
    """torchvision decodes RGB and grayscale JPEGs (Pillow the rest): the pixels must be Pillow's."""
    Image.fromarray(photos["astronaut"]).convert(mode).save(tmp_path / "a.jpg", quality=87, **kwargs)
    with Image.open(tmp_path / "a.jpg") as img:
        expected = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.equal(read_pixels(tmp_path / "a.jpg"), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_exif_orientation_turns_the_pixels_as_pillow_does(tmp_path, rgb, orientation):
    entry = (0x0112, 3, struct.pack("<H", orientation))
    Image.fromarray(rgb).save(tmp_path / "o.png", exif=exif_bytes([entry]))
    Image.fromarray(rgb).save(tmp_path / "o.jpg", exif=exif_bytes([entry]), quality=95)
    for name in ("o.png", "o.jpg"):  # Pillow's decoder and torchvision's
        with Image.open(tmp_path / name) as img:
            expected = torch.from_numpy(np.asarray(ImageOps.exif_transpose(img).convert("RGB")).copy())
        assert torch.equal(read_pixels(tmp_path / name), expected.permute(2, 0, 1)), (name, orientation)


def test_exif_orientation_is_applied(tmp_path, rgb):
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    assert read_image(tmp_path / "r.jpg").shape == (3, 30, 20)


def exif_bytes(entries: list[tuple[int, int, bytes]]) -> bytes:
    """An EXIF block (little-endian TIFF, one IFD) holding ``(tag, type, value)`` entries of <= 4 bytes each."""
    ifd = struct.pack("<H", len(entries))
    for tag, typ, value in sorted(entries):
        ifd += struct.pack("<HHI", tag, typ, 1) + value.ljust(4, b"\0")
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + b"\0\0\0\0"


ORIENTATION_6 = (0x0112, 3, struct.pack("<H", 6))  # SHORT 6: rotate 90 degrees clockwise on display
FLOAT_RESOLUTION_UNIT = (0x0128, 11, struct.pack("<f", 2.0))  # ResolutionUnit is a SHORT; here mistyped as FLOAT


def test_jpeg_with_a_mistyped_exif_tag_is_read_upright(tmp_path, rgb):
    """Pillow decodes the pixels, but its exif_transpose raises struct.error re-writing the mistyped tag."""
    Image.fromarray(rgb).save(tmp_path / "m.jpg", exif=exif_bytes([ORIENTATION_6, FLOAT_RESOLUTION_UNIT]), quality=95)
    with Image.open(tmp_path / "m.jpg") as img, pytest.raises(struct.error):
        ImageOps.exif_transpose(img)  # the file is what the test claims
    Image.fromarray(rgb).save(tmp_path / "plain.jpg", quality=95)
    t = read_image(tmp_path / "m.jpg")
    assert t.shape == (3, 30, 20)  # turned upright (the orientation tag itself is fine)
    torch.testing.assert_close(t, read_image(tmp_path / "plain.jpg").rot90(-1, dims=(1, 2)))


def test_unreadable_exif_scores_the_image_as_stored_with_a_warning(tmp_path, rgb, monkeypatch):
    Image.fromarray(rgb).save(tmp_path / "e.jpg", exif=exif_bytes([ORIENTATION_6]), quality=95)

    def broken(self):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    with pytest.warns(TeMuWarning, match=r"e\.jpg: its EXIF metadata cannot be read .*orientation as stored"):
        t = read_image(tmp_path / "e.jpg")
    assert t.shape == (3, 20, 30)


def test_an_unexpected_decoder_exception_is_that_files_error(tmp_path, rgb, monkeypatch):
    import temu.images.decode

    Image.fromarray(rgb).save(tmp_path / "a.png")
    monkeypatch.setattr(temu.images.decode, "pil_to_pixels", lambda img: 1 / 0)
    with pytest.raises(ImageReadError, match=r"a\.png: cannot be decoded \(ZeroDivisionError: division by zero\)"):
        read_image(tmp_path / "a.png")


def test_permission_denied_is_said_as_such(tmp_path, rgb, monkeypatch):
    Image.fromarray(rgb).save(tmp_path / "a.png")

    import temu.images.decode

    def denied(fp, *args, **kwargs):  # as opening a file without read permission does (except for root)
        raise PermissionError(13, "Permission denied", str(fp))

    monkeypatch.setattr(temu.images.decode, "open", denied, raising=False)
    with pytest.raises(ImageReadError, match=r"a\.png: permission denied"):
        read_image(tmp_path / "a.png")


def test_pil_images_get_their_exif_orientation_like_files(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif_bytes([ORIENTATION_6]), quality=95)
    with Image.open(tmp_path / "r.jpg") as img:
        torch.testing.assert_close(to_image_tensor(img), read_image(tmp_path / "r.jpg"))
        upright = ImageOps.exif_transpose(img)  # turned and its tag removed: not turned twice
    torch.testing.assert_close(to_image_tensor(upright), read_image(tmp_path / "r.jpg"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_float_tensors_of_any_precision_become_their_float32_value(dtype):
    x = torch.rand(3, 8, 8).to(dtype)
    out = to_image_tensor(x)
    assert out.dtype == torch.float32
    assert torch.equal(out, x.float())


def test_uint8_tensors_and_arrays_stay_uint8_and_score_as_x_over_255(rgb):
    x = torch.from_numpy(rgb).permute(2, 0, 1)
    assert to_pixels(x).dtype == torch.uint8 and torch.equal(to_pixels(x), x)
    assert to_pixels(rgb).dtype == torch.uint8 and torch.equal(to_pixels(rgb), x)
    assert torch.equal(to_image_tensor(x), x.float() / 255)
    (a, b) = expand_sources(torch.stack([x, x.flip(-1)]))  # [N, 3, H, W] uint8, as torchvision decodes
    assert torch.equal(a.load(), x) and torch.equal(b.load(), x.flip(-1))


@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.int64, torch.bool])
def test_other_integer_tensors_are_refused_with_how_to_convert(dtype):
    with pytest.raises(InvalidInputError, match=rf"dtype {dtype}; .*x\.to\(torch\.uint8\)"):
        to_pixels(torch.zeros(3, 4, 4, dtype=dtype))
    (source,) = expand_sources(torch.zeros(1, 3, 4, 4, dtype=dtype))  # a batch gets the same hint
    with pytest.raises(
        InvalidInputError, match=r"<tensor 0>: expected floats in \[0, 1\] or uint8 .*x\.to\(torch\.uint8\)"
    ):
        source.load()


@pytest.mark.parametrize("shape", [(32, 32), (4, 32, 32), (1, 1, 3, 32, 32)])
def test_a_tensor_of_the_wrong_shape_is_told_both_shapes_that_work(shape):
    with pytest.raises(
        InvalidInputError, match=r"expected an image tensor \[3, H, W\] or a batch \[N, 3, H, W\], got shape"
    ):
        to_pixels(torch.rand(*shape))


def test_open_files_and_text_streams_are_one_bad_input_not_iterated(tmp_path):
    import io

    (tmp_path / "list.txt").write_text("a.jpg\nb.jpg\n")
    with open(tmp_path / "list.txt") as text, open(tmp_path / "list.txt", "rb") as binary:
        cases = [
            (
                text,
                rf"<TextIOWrapper 0>: an open file object \('{tmp_path}/list\.txt'\) is not an image; pass its path",
            ),
            (binary, r"<BufferedReader 0>: an open file object \('.*list\.txt'\) is not an image"),
            (io.StringIO("a.jpg\nb.jpg\n"), r"<StringIO 0>: a text stream \(StringIO\) is not an image; .*splitlines"),
            (io.BytesIO(b"\xff\xd8"), r"<BytesIO 0>: an open file object \(BytesIO\) .*PIL\.Image\.open\(stream\)"),
        ]
        for stream, message in cases:
            (source,) = expand_sources([stream])
            assert source.error is not None and source.image is None  # known up front; the stream is not kept
            with pytest.raises(InvalidInputError, match=message):
                source.load()


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
        (torch.full((3, 4, 4), 3, dtype=torch.int64), r"divide by 255"),
        (np.full((4, 4, 3), 1.5, np.float32), r"\[0, 1\]"),
        (np.zeros((4, 4, 2), np.uint8), "1, 3 or 4 channels"),
        (np.zeros((4, 4, 3), np.int64), "dtype int64"),
        (b"\x89PNG", "raw bytes"),
        (42, "unsupported input type int"),
        (np.zeros((0, 5, 3), np.uint8), r"no pixels \(shape \(0, 5, 3\)\)"),
        (torch.rand(3, 0, 4), r"no pixels \(shape \(3, 0, 4\)\)"),
        (torch.empty(3, 4, 4, device="meta"), "'meta' device"),
        (Image.new("RGB", (0, 4)), r"no pixels \(size 0x4\)"),
    ],
)
def test_bad_in_memory_images(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        to_pixels(bad)


def test_closed_pil_image_is_an_error_naming_it(rgb):
    img = Image.fromarray(rgb)
    img.close()
    with pytest.raises(InvalidInputError, match=r"photo: cannot read this PIL image \(ValueError: .*closed"):
        to_image_tensor(img, name="photo")


def test_negative_values_are_not_clamped():
    with pytest.raises(InvalidInputError, match="does not clamp"):
        to_image_tensor(torch.full((3, 4, 4), -0.1))


def test_bad_batch_tensor_is_one_bad_source_not_an_abort():
    sources = expand_sources([torch.rand(3, 8, 8), torch.rand(2, 4, 8, 8), torch.rand(3, 8, 8)])
    assert len(sources) == 3 and sources[0].error is None and sources[2].error is None
    with pytest.raises(InvalidInputError, match="3 \\(RGB\\) channels"):
        sources[1].load()


@pytest.mark.parametrize(
    "path, reason",
    [
        ("bad\0name.jpg", "null byte"),
        ("x" * 5000 + ".jpg", "File name too long"),
        ("~no_such_user_for_temu/a.jpg", "home directory"),
    ],
)
def test_paths_that_cannot_be_looked_at_are_that_inputs_error(path, reason):
    assert is_single_image(path)
    sources = expand_sources(["a.jpg", path])
    assert len(sources) == 2 and sources[0].error is None
    with pytest.raises(ImageReadError, match=f"not a usable path .*{reason}"):
        sources[1].load()


def test_an_empty_path_is_an_error_not_the_current_folder(tmp_path, rgb, monkeypatch):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    (source,) = expand_sources("")
    with pytest.raises(InvalidInputError, match=r"an empty path \(''\)"):
        source.load()
    with pytest.raises(InvalidInputError, match="empty path"):
        read_image("")


# ---------------------------------------------------------------- collections


def test_folder_expansion_reports_what_it_leaves_out(tmp_path, rgb):
    img = Image.fromarray(rgb)
    for name in ["a.jpe", "b.ico", "c.tga", "d.png"]:
        img.save(tmp_path / name, format={"jpe": "JPEG", "ico": "ICO", "tga": "TGA", "png": "PNG"}[name[-3:]])
    (tmp_path / "e.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))  # not readable without a plugin
    (tmp_path / "notes.txt").write_text("x")
    img.save(tmp_path / "no_extension", format="PNG")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "f.jpg").mkdir()  # a folder named like an image
    (tmp_path / "g.jpg").symlink_to(tmp_path / "gone.jpg")  # dangling link
    (tmp_path / "raw").mkdir()
    skipped = []
    sources = expand_sources(tmp_path, skipped=skipped)
    assert [Path(s.name).name for s in sources] == ["a.jpe", "b.ico", "c.tga", "d.png", "e.heic", "f.jpg", "g.jpg"]
    assert all(s.load().shape[0] == 3 for s in sources[:4])  # read (the ICO writer resizes to its sizes)
    with pytest.raises(ImageReadError, match=r"e\.heic: not an image file Pillow can read .*pillow-heif"):
        sources[4].load()
    with pytest.raises(ImageReadError, match=r"f\.jpg: is a directory"):
        sources[5].load()
    with pytest.raises(ImageReadError, match=r"g\.jpg: broken symbolic link .*gone\.jpg"):
        sources[6].load()
    assert [(Path(e.path).name, e.reason) for e in skipped] == [
        (".hidden.png", HIDDEN),
        ("no_extension", NOT_AN_IMAGE),
        ("notes.txt", NOT_AN_IMAGE),
        ("raw", SUBFOLDER),
    ]
    assert describe_skipped(skipped, examples=1) == [
        "skipped 1 hidden entry (name starting with '.'): .hidden.png",
        "skipped 2 files without an image or video extension: no_extension and 1 more",
        "skipped 1 sub-folder (recursive is off): raw",
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_named_like_an_image_is_an_error_and_never_opened(tmp_path, rgb):
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would block forever
    (source,) = expand_sources(tmp_path)
    with pytest.raises(ImageReadError, match=r"pipe\.jpg: is a named pipe \(FIFO\), not an image file"):
        source.load()


def test_recursive_follows_symlinked_folders_once_and_survives_loops(tmp_path, rgb):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    Image.fromarray(rgb).save(root / "sub" / "a.png")
    Image.fromarray(rgb).save(outside / "b.png")
    (root / "linked").symlink_to(outside)
    (root / "sub" / "loop").symlink_to(root)  # a cycle
    (root / ".cache").mkdir()
    Image.fromarray(rgb).save(root / ".cache" / "thumb.png")  # hidden folders are not searched
    skipped = []
    names = [Path(s.name).relative_to(root).as_posix() for s in expand_sources(root, recursive=True, skipped=skipped)]
    assert names == ["linked/b.png", "sub/a.png"]
    assert [(Path(e.path).relative_to(root).as_posix(), e.reason) for e in skipped] == [
        (".cache", HIDDEN),
        ("sub/loop", REVISITED),
    ]


def test_a_folder_that_cannot_be_listed_is_an_error_naming_it(tmp_path, rgb, monkeypatch):
    import temu.images.folders

    (tmp_path / "locked").mkdir()
    (tmp_path / "open" / "locked-too").mkdir(parents=True)
    Image.fromarray(rgb).save(tmp_path / "open" / "a.png")
    real = os.scandir

    def scandir(path):  # as chmod 000 does for a user other than root
        if Path(path).name.startswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(temu.images.folders.os, "scandir", scandir)
    sources = expand_sources([tmp_path / "locked", tmp_path / "open"], recursive=True)
    assert [Path(s.name).name for s in sources] == ["locked", "a.png", "locked-too"]
    assert sources[1].error is None
    for bad in (sources[0], sources[2]):
        with pytest.raises(ImageReadError, match=r"locked(-too)?: cannot list the folder \(permission denied\)"):
            bad.load()
    with pytest.raises(ImageReadError, match="cannot list the folder"):
        list_images(tmp_path / "locked")


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
