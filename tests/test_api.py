"""temu.score / temu.iter_scores: inputs, order, batching, workers, errors, precision and the model cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import temu
import temu.cache
import temu.errors
import temu.images.decode
from temu.errors import ImageReadError, NotCachedError


@pytest.fixture(scope="module")
def model(tiny_head_dir):
    return temu.load(tiny_head_dir)


def test_one_image_gives_a_float_and_many_give_a_list(model, photo_files):
    one = temu.score(photo_files["astronaut"], model=model)
    assert isinstance(one, float) and 0 <= one <= 1
    many = temu.score(list(photo_files.values()), model=model)
    assert isinstance(many, list) and len(many) == 4 and all(isinstance(s, float) for s in many)
    assert many[0] == pytest.approx(one, abs=1e-6)
    assert temu.score([], model=model) == []


def test_every_8_bit_input_kind_gives_the_same_score_and_floats_a_close_one(model, photos, photo_files):
    """A file, a PIL image, a uint8 array and uint8 tensors go through the same uint8 pipeline: the same
    score to 1e-6, and the nn.Module on the uint8 tensor the same. Float inputs are resized as floats (no
    rounding to 0-255): within 5e-3. fp32 throughout (``auto`` may be bf16 on this CPU)."""
    arr = photos["coffee"]
    expected = temu.score(photo_files["coffee"], model=model, precision="fp32")
    pixels = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    for kind in (str(photo_files["coffee"]), Image.fromarray(arr), arr, pixels):
        assert temu.score(kind, model=model, precision="fp32") == pytest.approx(expected, abs=1e-6)
    assert temu.score(pixels.unsqueeze(0).repeat(2, 1, 1, 1), model=model, precision="fp32") == pytest.approx(
        [expected] * 2, abs=1e-6
    )
    assert temu.explain(pixels, model=model, precision="fp32").score == pytest.approx(expected, abs=1e-6)
    assert float(model(pixels.unsqueeze(0)).detach()) == pytest.approx(
        expected, abs=1e-6
    )  # the nn.Module takes uint8 too
    floats = pixels.float() / 255
    for kind in (arr.astype(np.float32) / 255, floats, floats.unsqueeze(0)):
        score = temu.score(kind, model=model, precision="fp32")
        assert (score[0] if isinstance(score, list) else score) == pytest.approx(expected, abs=5e-3)


def test_directory_scores_every_image_in_sorted_order(model, photo_files):
    folder = photo_files["astronaut"].parent
    scores = temu.score(folder, model=model)
    names = sorted(p.name for p in folder.iterdir())
    expected = [temu.score(folder / n, model=model) for n in names]
    assert scores == pytest.approx(expected, abs=1e-5)


def test_results_do_not_depend_on_batch_size_or_workers(model, photo_files):
    paths = list(photo_files.values()) * 2
    reference = temu.score(paths, model=model, batch_size=8)
    assert temu.score(paths, model=model, batch_size=1) == pytest.approx(reference, abs=1e-5)
    assert temu.score(paths, model=model, batch_size=3, num_workers=1) == pytest.approx(reference, abs=1e-5)


def test_native_size_model_batches_mixed_sizes(tiny_kwargs, photos):
    model = temu.TeMuIQA(**{**tiny_kwargs, "image_size": None})
    imgs = [photos["astronaut"], photos["coffee"], photos["astronaut"]]  # 128x128, 85x128, 128x128
    scores = temu.score(imgs, model=model, batch_size=3)
    assert len(scores) == 3 and scores[0] == pytest.approx(scores[2], abs=1e-6)


def test_bad_file_raises_by_default_naming_it(model, photo_files, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match=r"broken\.jpg: not an image file"):
        temu.score([photo_files["coffee"], bad], model=model)


def test_report_mode_scores_every_good_file_and_reports_every_bad_one(model, photo_files, tmp_path):
    bad1, bad2 = tmp_path / "zero.png", tmp_path / "missing.png"
    bad1.write_bytes(b"")
    inputs = [photo_files["coffee"], bad1, photo_files["rocket"], bad2, photo_files["chelsea"]]
    results = list(temu.iter_scores(inputs, model=model, batch_size=2, on_error="report", num_workers=1))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.score is None for r in results] == [False, True, False, True, False]
    assert "0 bytes" in results[1].error and "no such file" in results[3].error
    good = temu.score([photo_files["coffee"], photo_files["rocket"], photo_files["chelsea"]], model=model)
    assert [results[i].score for i in (0, 2, 4)] == pytest.approx(good, abs=1e-5)


def test_maps_come_back_with_results(model, photo_files):
    (result,) = temu.iter_scores([photo_files["rocket"]], model=model, with_maps=True)
    assert result.score_map.shape == result.weight_map.shape == (8, 8)


def test_bf16_autocast_on_cpu_agrees_with_fp32(model, photo_crops):
    """Within 0.01 per image, and SRCC >= 0.999 over 48 crops of photographs (one swapped pair of
    neighbours costs 0.0001 at n = 48, so this tolerates rounding near ties, not a broken path)."""
    from temu.evaluation.metrics import srcc

    fp32 = np.array(temu.score(photo_crops, model=model, precision="fp32"))
    bf16 = np.array(temu.score(photo_crops, model=model, precision="bf16"))
    assert np.abs(fp32 - bf16).max() < 0.01
    assert srcc(fp32, bf16) >= 0.999
    assert fp32.std() > 0.02  # the scores spread, so the rank check means something
    with pytest.raises(ValueError, match="precision"):
        temu.score(photo_crops[:1], model=model, precision="fp8")


def test_a_bad_precision_is_refused_before_the_model_loads(photos, tmp_path):
    with pytest.raises(ValueError, match="precision must be one of"):  # not the missing model's WeightsError
        temu.score(photos["coffee"], model=str(tmp_path / "no-such-head"), precision="fp8")


def test_model_given_by_directory_is_built_once_and_cached(tiny_head_dir, photo_files):
    temu.clear_model_cache()
    first = temu.score(photo_files["rocket"], model=tiny_head_dir, device="cpu")
    assert len(temu.cache.MODEL_CACHE) == 1
    (cached,) = temu.cache.MODEL_CACHE.values()
    second = temu.score(photo_files["rocket"], model=str(tiny_head_dir), device="cpu")
    assert first == second and list(temu.cache.MODEL_CACHE.values()) == [cached]
    temu.clear_model_cache()
    assert temu.cache.MODEL_CACHE == {}


def test_cache_key_is_what_the_model_is(tiny_head_dir, tmp_path, monkeypatch):
    import os
    import shutil
    import threading

    from temu.cache import cached_model

    temu.clear_model_cache()
    run = tmp_path / "runs" / "x"
    shutil.copytree(tiny_head_dir, run)
    monkeypatch.chdir(tmp_path)
    spellings = ["runs/x", "runs/x/", "./runs/x", str(run), run]
    models = {id(cached_model(s, "cpu")) for s in spellings}
    assert len(models) == 1 and len(temu.cache.MODEL_CACHE) == 1

    # a relative path means another folder after chdir: another entry
    other = tmp_path / "elsewhere" / "runs" / "x"
    shutil.copytree(tiny_head_dir, other)
    os.chdir(tmp_path / "elsewhere")
    assert cached_model("runs/x", "cpu") is not cached_model(str(run), "cpu")
    assert len(temu.cache.MODEL_CACHE) == 2

    # a head retrained in place (new modification time) is loaded again
    before = cached_model(str(run), "cpu")
    stamp = (run / "model.safetensors").stat().st_mtime_ns + 10**9
    os.utime(run / "model.safetensors", ns=(stamp, stamp))
    assert cached_model(str(run), "cpu") is not before

    # concurrent first calls for one model build it once
    temu.clear_model_cache()
    barrier, results = threading.Barrier(4), []

    def build():
        barrier.wait()
        results.append(cached_model(str(other), "cpu"))

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(m) for m in results}) == 1 and len(temu.cache.MODEL_CACHE) == 1
    temu.clear_model_cache()


def test_compile_never_compiles_the_shared_cached_model(tiny_head_dir, monkeypatch):
    from temu import TeMuIQA
    from temu.cache import cached_model

    compiled = []
    monkeypatch.setattr(TeMuIQA, "compile_backbone", lambda self, **kw: compiled.append(self) or self)
    temu.clear_model_cache()
    plain = cached_model(tiny_head_dir, "cpu")
    fast = cached_model(tiny_head_dir, "cpu", compile=True)
    assert fast is not plain and compiled == [fast]
    assert cached_model(tiny_head_dir, "cpu", compile=True) is fast and cached_model(tiny_head_dir, "cpu") is plain
    temu.clear_model_cache()


def test_default_model_offline_without_backbone_fails_fast_and_says_how_to_fix(hub_cache, photo_files, monkeypatch):
    """The default preset needs OpenAI ViT-L/14 from the Hub; offline and uncached, it must say so at once."""
    import huggingface_hub

    calls = []
    real = huggingface_hub.hf_hub_download

    def spy(*args, **kwargs):
        calls.append(kwargs.get("local_files_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    temu.clear_model_cache()
    with pytest.raises(NotCachedError) as info:
        temu.score(photo_files["rocket"])
    message = str(info.value)
    assert "ViT-L-14" in message and str(hub_cache) in message
    assert "hf download timm/vit_large_patch14_clip_224.openai" in message and "HF_HUB_OFFLINE" in message
    assert calls and all(calls)  # never asked the network: local_files_only on every call
    assert temu.cache.MODEL_CACHE == {}


# ---------------------------------------------------------------- reliability: one input never ends a run


def test_report_mode_gives_each_bad_in_memory_item_or_path_its_own_error(model, photos):
    good = photos["coffee"]
    closed = Image.fromarray(good)
    closed.close()
    bad = [
        np.zeros((0, 5, 3), np.uint8),
        closed,
        torch.empty(3, 64, 64, device="meta"),
        "bad\0name.jpg",
        "x" * 5000 + ".jpg",
        torch.rand(1, 4, 8, 8),  # a batch tensor of the wrong shape
    ]
    inputs = [good, *bad, good]
    results = list(temu.iter_scores(inputs, model=model, on_error="report", batch_size=3))
    assert [r.index for r in results] == list(range(len(inputs)))
    assert [r.error is None for r in results] == [True] + [False] * len(bad) + [True]
    expected = temu.score(good, model=model)
    assert results[0].score == pytest.approx(expected, abs=1e-6) and results[-1].score == results[0].score
    messages = [r.error for r in results[1:-1]]
    for message, needle in zip(
        messages, ["no pixels", "closed image", "'meta' device", "null byte", "too long", "RGB"]
    ):
        assert needle in message


def test_a_malformed_exif_jpeg_is_scored_in_dataloader_workers(model, photos, tmp_path):
    from test_inputs import FLOAT_RESOLUTION_UNIT, ORIENTATION_6, exif_bytes

    arr = photos["chelsea"]
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(arr).save(tmp_path / "b.jpg", exif=exif_bytes([ORIENTATION_6, FLOAT_RESOLUTION_UNIT]), quality=95)
    results = list(temu.iter_scores(tmp_path, model=model, on_error="report", batch_size=1, num_workers=1))
    assert [r.error for r in results] == [None, None]
    upright = temu.images.decode.read_pixels(tmp_path / "a.jpg").rot90(-1, dims=(1, 2))  # same JPEG pixels, turned
    assert results[1].score == pytest.approx(temu.score(upright, model=model), abs=1e-6)


def test_an_unexpected_exception_for_one_input_is_its_error_in_workers_too(model, photo_files, monkeypatch):
    from temu.images.transforms import InputSize

    odd = photo_files["coffee"].parent / "odd.png"
    Image.new("RGB", (17, 13)).save(odd)
    real = InputSize.__call__

    def flaky(self, x, *args, **kwargs):  # fails for the odd image only, as a bug or a library might
        if tuple(x.shape[-2:]) == (13, 17):
            raise RuntimeError("something nobody expected")
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(InputSize, "__call__", flaky)
    for workers in (0, 1):
        inputs = [photo_files["coffee"], odd, photo_files["rocket"]]
        results = list(temu.iter_scores(inputs, model=model, on_error="report", num_workers=workers, batch_size=2))
        assert [r.error is None for r in results] == [True, False, True]
        assert "odd.png" in results[1].error and "RuntimeError: something nobody expected" in results[1].error


def test_an_empty_path_is_an_error_raised_before_the_model_loads(hub_cache, photo_files, monkeypatch):
    monkeypatch.chdir(photo_files["coffee"].parent)  # a folder of images: "" must not mean this folder
    temu.clear_model_cache()
    with pytest.raises(temu.errors.InvalidInputError, match="empty path"):
        temu.score("")  # the default model is not cached: loading it would fail with NotCachedError
    assert temu.cache.MODEL_CACHE == {}


def test_pil_images_are_scored_upright_like_their_files(model, photos, tmp_path):
    from test_inputs import ORIENTATION_6, exif_bytes

    Image.fromarray(photos["rocket"]).save(tmp_path / "r.jpg", exif=exif_bytes([ORIENTATION_6]), quality=95)
    with Image.open(tmp_path / "r.jpg") as img:
        assert temu.score(img, model=model) == pytest.approx(temu.score(tmp_path / "r.jpg", model=model), abs=1e-6)


def test_float_tensors_of_any_precision_score_like_their_float32_value(model):
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))  # the model's own size
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        low = x.to(dtype)
        assert temu.score(low, model=model) == pytest.approx(temu.score(low.float(), model=model), abs=1e-6)
    mixed = temu.score([x[0], x[1].double(), x[2].half()], model=model)
    assert mixed == pytest.approx(temu.score([x[0], x[1].double().float(), x[2].half().float()], model=model), abs=1e-6)


def test_a_non_finite_score_is_that_images_error(model, photos):
    import copy

    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.head.patch_weight.bias.fill_(float("nan"))
    results = list(temu.iter_scores([photos["coffee"], photos["rocket"]], model=broken, on_error="report"))
    assert [r.score for r in results] == [None, None]
    assert all("non-finite score (nan): the head weights may be corrupt" in r.error for r in results)
    with pytest.raises(temu.errors.NonFiniteScoreError, match="<ndarray 0>: non-finite score"):
        temu.score([photos["coffee"]], model=broken)


def test_each_result_comes_out_before_the_next_input_is_read(model, photos, monkeypatch):
    from temu.images.sources import Source

    loaded = []
    real = Source.load
    monkeypatch.setattr(Source, "load", lambda self: loaded.append(self.name) or real(self))
    inputs = [photos["coffee"], photos["rocket"], photos["chelsea"]]
    it = temu.iter_scores(inputs, model=model, batch_size=1, num_workers=0)
    first = next(it)
    assert first.index == 0 and loaded == ["<ndarray 0>"]  # the second image was not decoded yet
    assert not torch.is_inference_mode_enabled()  # the caller's code between results runs normally
    assert [r.index for r in it] == [1, 2] and len(loaded) == 3


def test_folder_entries_left_out_are_handed_to_the_caller(model, photo_files):
    from temu.images.folders import NOT_AN_IMAGE, describe_skipped

    folder = photo_files["coffee"].parent
    (folder / "notes.txt").write_text("x")
    skipped = []
    results = list(temu.iter_scores(folder, model=model, skipped=skipped))
    assert len(results) == 4 and [(e.path, e.reason) for e in skipped] == [(str(folder / "notes.txt"), NOT_AN_IMAGE)]
    assert describe_skipped(skipped) == ["skipped 1 file without an image or video extension: notes.txt"]


def spy_on_batches(monkeypatch) -> list[torch.dtype]:
    """The dtypes of the pixel groups the model receives from :func:`temu.iter_scores`."""
    from temu.inference import Predictor

    seen: list[torch.dtype] = []
    real = Predictor.forward

    def spy(self, x):
        seen.append(x.dtype)
        return real(self, x)

    monkeypatch.setattr(Predictor, "forward", spy)
    return seen


def test_8_bit_files_reach_the_model_as_uint8_and_16_bit_ones_as_floats(
    model, photos, photo_files, tmp_path, monkeypatch
):
    Image.fromarray(photos["coffee"][:, :, 0]).save(tmp_path / "gray.png")
    Image.fromarray(photos["rocket"][:, :, 1].astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 16-bit
    Image.fromarray(photos["chelsea"]).save(tmp_path / "c.jpg", quality=90)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    inputs = [*photo_files.values(), tmp_path / "gray.png", tmp_path / "deep.png", tmp_path / "bad.jpg"]
    inputs += [tmp_path / "c.jpg", photo_files["coffee"]]
    one_by_one = [r.score for r in temu.iter_scores(inputs, model=model, batch_size=1, on_error="report")]
    seen = spy_on_batches(monkeypatch)
    for workers in (0, 1):
        results = list(temu.iter_scores(inputs, model=model, batch_size=4, on_error="report", num_workers=workers))
        assert results[6].error.startswith(str(tmp_path / "bad.jpg"))  # a bad file is its own error
        assert [r.score for r in results] == pytest.approx(one_by_one, abs=1e-6)
    assert set(seen) == {torch.uint8, torch.float32}  # 8-bit files undivided; the 16-bit one as floats


def test_native_size_caps_large_images_with_one_warning_each(tiny_kwargs, photos, photo_files, tmp_path):
    from temu.errors import TeMuWarning

    model = temu.TeMuIQA(**{**tiny_kwargs, "image_size": None, "max_pixels": 12_000}).eval()
    Image.fromarray(photos["astronaut"]).save(tmp_path / "astronaut2.png")  # 128x128: over the cap, like astronaut
    Image.fromarray(photos["chelsea"][:50, :70]).save(tmp_path / "small.png")
    inputs = [*photo_files.values(), tmp_path / "small.png", tmp_path / "astronaut2.png"]
    with pytest.warns(TeMuWarning, match="exceed max_pixels") as record:
        scores = temu.score(inputs, model=model, batch_size=8, num_workers=0)
    named = sorted(Path(str(w.message).split(":")[0]).name for w in record if "max_pixels" in str(w.message))
    assert named == ["astronaut.png", "astronaut2.png"]  # one warning per capped image, naming it
    assert scores[0] == pytest.approx(scores[5], abs=1e-6)  # the same pixels score the same


def test_an_open_file_or_text_stream_is_one_bad_input_raised_before_the_model_loads(photo_files, tmp_path):
    """Refused without iterating it (a text stream would give its lines as paths), naming which input it is."""
    import io

    missing_model = str(tmp_path / "no-such-head")  # loading it would raise WeightsError: the input error comes first
    with open(photo_files["coffee"], "rb") as f:
        with pytest.raises(
            temu.errors.InvalidInputError, match=r"<BufferedReader 0>: an open file object .*coffee\.png"
        ):
            temu.score(f, model=missing_model)
    stream = io.StringIO(f"{photo_files['coffee']}\n")
    with pytest.raises(
        temu.errors.InvalidInputError, match=r"<StringIO 1>: a text stream \(StringIO\) is not an image"
    ):
        list(temu.iter_scores([photo_files["rocket"], stream], model=missing_model))
    with pytest.raises(temu.errors.InvalidInputError, match=r"<bytes 0>: raw bytes are not accepted"):
        temu.score(b"\xff\xd8", model=missing_model)


def test_report_mode_gives_none_for_each_input_that_could_not_be_scored(model, photo_files, tmp_path):
    import io

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    inputs = [photo_files["coffee"], io.StringIO("x.jpg\n"), broken, photo_files["rocket"]]
    scores = temu.score(inputs, model=model, on_error="report")
    expected = temu.score([photo_files["coffee"], photo_files["rocket"]], model=model)
    assert scores[1] is None and scores[2] is None
    assert [scores[0], scores[3]] == pytest.approx(expected, abs=1e-6)
    assert temu.score(broken, model=model, on_error="report") is None  # one input: None, not [None]
