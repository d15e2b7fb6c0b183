"""The loader's batching and the device-side resize: decoded pixels -> the model's input, as the loader's path gives it."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import temu.loading
from temu.inputs import Source, pil_to_pixels, pil_to_tensor
from temu.loading import collate_sources, resize_on_device, resizes_on_device, stack_images, to_input_size
from temu.transforms import InputSize


def test_pixels_are_stacked_in_their_own_layout(photos):
    images = [pil_to_pixels(Image.fromarray(photos[name])) for name in ("coffee", "rocket")]  # both 85x128
    assert images[0].shape == images[1].shape and images[0].dtype == torch.uint8
    stacked = stack_images(images)
    assert torch.equal(stacked, torch.stack(images))
    assert stacked.permute(0, 2, 3, 1).is_contiguous()  # one copy of the pixel rows, no transpose on the CPU
    floats = [torch.rand(3, 5, 7), torch.rand(3, 5, 7)]  # resized images (contiguous) stack as they are
    assert stack_images(floats).is_contiguous() and torch.equal(stack_images(floats), torch.stack(floats))


def test_device_resize_is_the_loaders_resize_chunked_or_not(photos, monkeypatch):
    size = InputSize(48, (8, 8))
    images = [Image.fromarray(photos[name]) for name in ("coffee", "rocket", "chelsea")]
    expected = torch.stack([size(pil_to_tensor(img)).contiguous() for img in images])
    pixels = stack_images([pil_to_pixels(img) for img in images])
    whole = to_input_size(pixels, size, torch.device("cpu"))
    torch.testing.assert_close(whole, expected, rtol=0, atol=1e-6)
    assert whole.dtype == torch.float32 and whole.is_contiguous()
    monkeypatch.setattr(temu.loading, "DEVICE_CHUNK_PIXELS", 85 * 128)  # one image at a time
    torch.testing.assert_close(to_input_size(pixels, size, torch.device("cpu")), whole, rtol=0, atol=1e-6)


def test_groups_that_reach_the_same_size_are_merged_and_a_failing_image_is_its_error(photos, monkeypatch):
    size = InputSize(32, (8, 8))
    items = [(0, pil_to_pixels(Image.fromarray(photos["coffee"])), None)]
    items += [(1, pil_to_pixels(Image.fromarray(photos["astronaut"])), None)]
    items += [(2, torch.rand(3, 9, 11), None), (3, None, ValueError("unreadable"))]
    groups, failed = collate_sources(items)
    assert [ids for ids, _ in groups] == [[0], [1], [2]] and [i for i, _ in failed] == [3]  # by size and dtype
    sources = [Source(f"img{i}") for i in range(4)]
    resized, errors = resize_on_device(groups, size, torch.device("cpu"), sources.__getitem__)
    assert errors == [] and [(ids, tuple(x.shape)) for ids, x in resized] == [([0, 1, 2], (3, 3, 32, 32))]

    real = InputSize.__call__

    def flaky(self, x, *args, **kwargs):
        if x.shape[-1] == 11:
            raise RuntimeError("boom")
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(InputSize, "__call__", flaky)
    resized, errors = resize_on_device(groups, size, torch.device("cpu"), sources.__getitem__)
    assert [ids for ids, _ in resized] == [[0, 1]]
    assert [(i, str(err)) for i, err in errors] == [(2, "img2: cannot be used (unexpected RuntimeError: boom)")]


def test_the_loader_only_decodes_when_the_device_resizes(photo_files):
    sources = [Source(str(p), path=p) for p in photo_files.values()]
    size = InputSize(48, (8, 8))
    decoded = temu.loading.SourceDataset(sources, size, resize=False)
    resized = temu.loading.SourceDataset(sources, size)
    for i in range(len(sources)):
        _, pixels, err = decoded[i]
        _, image, _ = resized[i]
        assert err is None and pixels.dtype == torch.uint8 and pixels.shape[-2:] != (48, 48)
        assert image.shape == (3, 48, 48) and image.dtype == torch.float32


@pytest.mark.parametrize("cores,world,expected", [(16, 1, 8), (8, 1, 7), (2, 1, 1), (1, 1, 1), (16, 4, 3)])
def test_default_workers_leave_a_core_to_each_scoring_process(monkeypatch, cores, world, expected):
    monkeypatch.setattr(temu.loading, "available_cpus", lambda: cores)
    assert temu.loading.default_num_workers(torch.device("cuda"), world_size=world) == expected
    assert temu.loading.default_num_workers(torch.device("cpu")) == 0


def test_auto_resizes_in_the_loader_until_the_device_path_is_measured_faster():
    assert [resizes_on_device(where) for where in ("auto", "loader", "device")] == [False, False, True]
    with pytest.raises(ValueError, match="resize_on must be one of 'auto', 'loader', 'device', got 'gpu'"):
        resizes_on_device("gpu")
