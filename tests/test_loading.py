"""The input pipeline: 8-bit pixels stay uint8 to the batch, the resize rule, batching by size, worker defaults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import temu.runtime
from temu.images.decode import pil_to_pixels
from temu.images.loading import Batch, FrameStream, ImageLoader, group_by_size, load_frame_batches
from temu.images.sources import Source
from temu.images.transforms import InputSize
from temu.images.video import VideoSampling


def test_8_bit_images_reach_the_batch_as_uint8_at_the_input_size(photo_files):
    sources = [Source(str(p), path=p) for p in photo_files.values()]
    load = ImageLoader(InputSize(48, (8, 8)))
    for source in sources:
        pixels = load(source)
        assert pixels.dtype == torch.uint8 and pixels.shape == (3, 48, 48) and pixels.is_contiguous()
    (frames,) = load_frame_batches(
        sources, InputSize(48, (8, 8)), torch.device("cpu"), batch_size=8, num_workers=0, sampling=VideoSampling()
    )
    batch = frames.batch
    assert [(ids, x.dtype, tuple(x.shape)) for ids, x in batch.groups] == [([0, 1, 2, 3], torch.uint8, (4, 3, 48, 48))]


def test_the_uint8_resize_is_pillows_uint8_bicubic_and_close_to_the_float_one(photos):
    """torchvision's uint8 kernel rounds as Pillow's uint8 resize does; the float path differs by rounding and clamping."""
    image = Image.fromarray(photos["astronaut"])  # 128x128
    size = InputSize(48, (8, 8))
    resized = size(pil_to_pixels(image))
    assert resized.dtype == torch.uint8 and resized.shape == (3, 48, 48)
    pillow = torch.from_numpy(np.asarray(image.resize((48, 48), Image.BICUBIC)).copy()).permute(2, 0, 1)
    assert (resized.int() - pillow.int()).abs().max() <= 1
    as_float = size(pil_to_pixels(image).float() / 255)  # no rounding to 0-255, no clamping of overshoots
    assert (resized.float() / 255 - as_float).abs().mean() < 0.003


def test_native_size_crops_odd_margins_as_the_rule_says():
    """51x71 with 8x8 patches: a 48x64 centre crop, rows 1:49 and columns 3:67, as a view of the same pixels."""
    size = InputSize(None, (8, 8))
    x = torch.arange(3 * 51 * 71, dtype=torch.int32).reshape(3, 51, 71).to(torch.uint8)
    out = size(x)
    assert out.shape == (3, 48, 64) and torch.equal(out, x[:, 1:49, 3:67])
    assert torch.equal(size(x.float() / 255), x[:, 1:49, 3:67].float() / 255)


def test_groups_by_size_and_dtype_and_a_failing_image_is_its_error(photos, tmp_path):
    images = [pil_to_pixels(Image.fromarray(photos["coffee"])), pil_to_pixels(Image.fromarray(photos["astronaut"]))]
    images.append(torch.rand(3, 85, 128))
    groups = group_by_size(range(3), lambda i: images[i])
    assert [list(g) for g in groups] == [[0], [1], [2]]
    assert [images[g[0]].dtype for g in groups] == [torch.uint8, torch.uint8, torch.float32]
    (tmp_path / "bad.png").write_text("unreadable")
    sources = [
        Source("<ndarray 0>", image=photos["coffee"]),
        Source(str(tmp_path / "bad.png"), path=tmp_path / "bad.png"),
    ]
    (frames,) = FrameStream(sources, InputSize(None, (8, 8)), VideoSampling(), batch_size=4)
    assert frames.rows == [(0, 0, None)] and [(end.index, end.samples) for end in frames.ends] == [(0, 1), (1, 0)]
    assert frames.ends[0].error is None and "not an image file Pillow can read" in str(frames.ends[1].error)


def test_a_batch_pins_and_moves_its_pixels_only():
    batch = Batch([([0, 1], torch.zeros(2, 3, 4, 4, dtype=torch.uint8))])
    moved = batch.to(torch.device("cpu"))
    assert moved.groups[0][0] == [0, 1] and torch.equal(moved.groups[0][1], batch.groups[0][1])


def test_an_unexpected_failure_while_resizing_is_that_images_error(photo_files, monkeypatch):
    def broken(self, x, *, name=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(InputSize, "__call__", broken)
    path = next(iter(photo_files.values()))
    (frames,) = FrameStream([Source(str(path), path=path)], InputSize(48, (8, 8)), VideoSampling(), batch_size=4)
    (end,) = frames.ends
    assert frames.rows == [] and f"{path}: cannot be read (unexpected RuntimeError: boom)" in str(end.error)
    with pytest.raises(Exception, match="unexpected RuntimeError: boom"):
        ImageLoader(InputSize(48, (8, 8)))(path)


@pytest.mark.parametrize("cores,world,expected", [(16, 1, 8), (8, 1, 7), (2, 1, 1), (1, 1, 1), (16, 4, 3)])
def test_default_workers_leave_a_core_to_each_scoring_process(monkeypatch, cores, world, expected):
    monkeypatch.setattr(temu.runtime, "available_cpus", lambda: cores)
    assert temu.runtime.default_num_workers(torch.device("cuda"), world_size=world) == expected
    assert temu.runtime.default_num_workers(torch.device("cpu")) == 0
