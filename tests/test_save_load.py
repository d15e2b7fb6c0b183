"""save_pretrained / from_pretrained / push_to_hub, local directories and an offline Hugging Face cache."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from temu_testing import TINY_CONFIG, perturb_head, write_hub_cache

import temu
from temu import TeMuIQA
from temu.errors import NotCachedError, WeightsError


def images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 40, 56, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("variant", ["S", "I"])
def test_round_trip_gives_identical_scores(tiny_kwargs, tmp_path, variant):
    model = TeMuIQA(**tiny_kwargs, variant=variant, layers=[1, 3]).eval()
    perturb_head(model)
    directory = model.save_pretrained(tmp_path / "head")
    assert sorted(p.name for p in directory.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (directory / "model.safetensors").stat().st_size < 200_000  # the head only, never the backbone
    loaded = TeMuIQA.from_pretrained(directory)
    x = images()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.config == model.saved_config()
    assert loaded.layer_ids == [0, 2]


def test_config_json_records_what_rebuilds_the_model(tiny_kwargs, tmp_path):
    model = TeMuIQA(**tiny_kwargs)
    raw = json.loads((model.save_pretrained(tmp_path / "h") / "config.json").read_text())
    assert raw["format"] == 1 and raw["temu_version"] == temu.__version__
    assert raw["head_parameters"] == model.num_head_parameters
    assert raw["head_shapes"]["patch_weight.weight"] == [1, 32]
    m = raw["model"]
    assert m["backbone"] == str(TINY_CONFIG) and m["variant"] == "S" and m["layers"] == [1, 2, 3]
    assert m["image_size"] == 64 and m["prompts"] == ["Good photo.", "Bad photo."] and len(m["mean"]) == 3


def test_overrides_change_the_rebuilt_model(tiny_head_dir):
    model = TeMuIQA.from_pretrained(tiny_head_dir, image_size=32)
    assert model.config.image_size == 32
    with pytest.raises(TypeError, match="unknown overrides \\['imagesize'\\]"):
        TeMuIQA.from_pretrained(tiny_head_dir, imagesize=32)


def test_head_that_does_not_fit_is_refused_with_the_reason(tiny_head_dir):
    with pytest.raises(WeightsError, match="layer_logits: expected \\(2,\\), found \\(3,\\)"):
        TeMuIQA.from_pretrained(tiny_head_dir, layers=2)
    with pytest.raises(WeightsError, match="missing keys \\['prompts.ctx_delta'"):
        TeMuIQA.from_pretrained(tiny_head_dir, variant="I")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.safetensors").write_bytes(b"garbage"), "not a readable safetensors file"),
        (lambda d: (d / "model.safetensors").unlink(), "directory has no model.safetensors"),
        (lambda d: (d / "config.json").write_text("{"), "not a readable JSON file"),
        (lambda d: (d / "config.json").write_text('{"format": 1}'), "expected a temu config with a 'model' section"),
        (lambda d: _edit_config(d, lambda c: c.update(format=99)), "format 99 is not supported"),
        (
            lambda d: _edit_config(d, lambda c: c["model"].update(colour="blue")),
            "unknown model config keys \\['colour'\\]",
        ),
        (lambda d: _edit_config(d, lambda c: c["model"].update(variant="X")), "variant='X': expected one of"),
    ],
)
def test_broken_head_directories_give_clear_errors(tiny_head_dir, tmp_path, damage, message):
    directory = shutil.copytree(tiny_head_dir, tmp_path / "copy")
    damage(directory)
    with pytest.raises(WeightsError, match=message):
        TeMuIQA.from_pretrained(directory)


def _edit_config(directory, change):
    raw = json.loads((directory / "config.json").read_text())
    change(raw)
    (directory / "config.json").write_text(json.dumps(raw))


def _merge(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key].update(value)
        else:
            target[key] = value


def test_unknown_source_says_what_was_tried(tmp_path):
    with pytest.raises(WeightsError, match="not a temu preset \\(available: temu-iqa-i, temu-iqa-s\\)"):
        temu.load("temu-iqa-x")
    with pytest.raises(WeightsError, match="no such folder \\(it starts with '/', so it is read as a local path"):
        temu.load(str(tmp_path / "no" / "such" / "dir"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(WeightsError, match="found a file"):
        temu.load(tmp_path / "file.txt")


def test_head_and_backbone_load_from_an_offline_hub_cache(hub_cache, tiny_checkpoint, tiny_head_dir, tmp_path):
    """A head repo and an open_clip backbone repo, both only in the cache, with HF_HUB_OFFLINE=1."""
    backbone_dir = tmp_path / "backbone"
    backbone_dir.mkdir()
    cfg = json.loads(TINY_CONFIG.read_text())
    (backbone_dir / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.25] * 3}})
    )
    write_hub_cache(
        hub_cache,
        "someone/tiny-clip",
        {
            "open_clip_config.json": backbone_dir / "open_clip_config.json",
            "open_clip_model.safetensors": tiny_checkpoint,
        },
    )
    head = TeMuIQA.from_pretrained(tiny_head_dir, backbone="hf-hub:someone/tiny-clip", pretrained=None)
    assert head.config.mean == (0.48145466, 0.4578275, 0.40821073)  # the saved head keeps its own normalisation
    fresh = TeMuIQA(backbone="hf-hub:someone/tiny-clip", pretrained=None, image_size=64)
    assert fresh.config.mean == (0.5, 0.5, 0.5)  # a new model takes the repo's preprocess config
    # the tiny backbone built from the Hub repo has the same weights as from the local checkpoint
    local = TeMuIQA.from_pretrained(tiny_head_dir)
    x = images(2)
    with torch.no_grad():
        torch.testing.assert_close(head(x), local(x))

    # now the head itself as a Hub repo
    write_hub_cache(
        hub_cache,
        "someone/tiny-head",
        {
            "config.json": tiny_head_dir / "config.json",
            "model.safetensors": tiny_head_dir / "model.safetensors",
        },
    )
    from_hub = temu.load("someone/tiny-head")
    with torch.no_grad():
        assert torch.equal(from_hub(x), local(x))


def test_missing_hub_repo_offline_names_repo_cache_and_fix(hub_cache):
    with pytest.raises(NotCachedError) as info:
        temu.load("someone/not-cached")
    message = str(info.value)
    assert "someone/not-cached/config.json" in message and str(hub_cache) in message
    assert "hf download someone/not-cached config.json" in message


def test_backbone_missing_from_cache_offline(hub_cache):
    with pytest.raises(NotCachedError, match="open_clip config of backbone hf-hub:someone/absent"):
        TeMuIQA(backbone="hf-hub:someone/absent", pretrained=None)


def test_push_to_hub_uploads_the_saved_files(tiny_head_dir, monkeypatch):
    import huggingface_hub

    uploaded = {}

    class FakeApi:
        def __init__(self, token=None, library_name=None, library_version=None):
            uploaded["library"] = (library_name, library_version)

        def create_repo(self, repo_id, private=None, exist_ok=False):
            uploaded["create"] = (repo_id, private, exist_ok)
            return type("Repo", (), {"repo_id": "me/" + repo_id.split("/")[-1]})()

        def upload_folder(self, repo_id, folder_path, commit_message, revision=None):
            from pathlib import Path

            uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            uploaded["repo"] = repo_id
            return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = temu.load(tiny_head_dir).push_to_hub("tiny-head", private=True)
    assert url == "https://huggingface.co/me/tiny-head/commit/abc"
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]
    assert uploaded["create"] == ("tiny-head", True, True) and uploaded["library"] == ("temu", temu.__version__)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_head_with_non_finite_weights_is_refused_naming_file_and_tensor(tiny_head_dir, tmp_path, bad):
    from safetensors.torch import load_file, save_file

    directory = shutil.copytree(tiny_head_dir, tmp_path / "copy")
    state = load_file(str(directory / "model.safetensors"))
    state["patch_weight.weight"][0, :3] = bad
    save_file(state, str(directory / "model.safetensors"))
    with pytest.raises(
        WeightsError, match=r"copy/model\.safetensors: non-finite weights .* patch_weight\.weight \(3 of 32"
    ):
        TeMuIQA.from_pretrained(directory)


def test_max_pixels_is_saved_only_when_changed_and_can_be_overridden(tiny_head_dir, tmp_path):
    from temu.model.config import DEFAULT_MAX_PIXELS

    assert "max_pixels" not in json.loads((tiny_head_dir / "config.json").read_text())["model"]  # older temu reads it
    model = TeMuIQA.from_pretrained(tiny_head_dir)
    assert model.config.max_pixels == model.input_size.max_pixels == DEFAULT_MAX_PIXELS
    capped = TeMuIQA.from_pretrained(tiny_head_dir, max_pixels=5000).save_pretrained(tmp_path / "capped")
    assert json.loads((capped / "config.json").read_text())["model"]["max_pixels"] == 5000
    assert TeMuIQA.from_pretrained(capped).input_size.max_pixels == 5000
    assert TeMuIQA.from_pretrained(capped, max_pixels=None).input_size.max_pixels is None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"layers": [-1, 999]}, r"invalid model config: layers=\[-1, 999\]: expected .* numbered from 1"),
        ({"layers": 0}, r"invalid model config: layers=0: expected"),
        ({"layers": [1, 999]}, r"invalid model config: layers=\[1, 999\]: layers \[999\] do not exist; .* 1\.\.3"),
        ({"image_size": 100_000}, r"invalid model config: image_size=100000: expected an int in 16\.\.4096"),
        ({"image_size": True}, r"invalid model config: image_size=True: expected an int in 16\.\.4096"),
        ({"max_pixels": 10**12}, r"invalid model config: max_pixels=1000000000000: expected an int in 256\.\."),
        ({"mean": [float("nan"), 0.5, 0.5]}, r"invalid model config: mean=\[nan, 0\.5, 0\.5\]: expected 3 finite"),
        ({"std": [1, 1, -1]}, r"invalid model config: std=\[1, 1, -1\]: expected 3 positive finite"),
        ({"prompts": ["Good photo.", " "]}, r"invalid model config: prompts=\['Good photo\.', ' '\]: expected two"),
        (
            {"head": {"adapter_dim": 10**9}},
            r"invalid head config: adapter_dim=1000000000: expected an int in 0\.\.16384",
        ),
        ({"head": {"adapter_dim": 200}}, r"invalid model config: head\.adapter_dim=200: expected 0\.\.128"),
        ({"head": {"learn_layer_weights": 1}}, r"invalid head config: learn_layer_weights=1: expected true or false"),
        ({"head": [64]}, r"invalid model config: head=\[64\]: expected an object of head fields"),
    ],
)
def test_a_config_json_out_of_range_names_field_value_range_and_file(tiny_head_dir, tmp_path, changes, message):
    """Refused when the head loads, before any image is read: never a traceback, a huge allocation, or
    every image blamed for the config's mistake."""
    directory = shutil.copytree(tiny_head_dir, tmp_path / "copy")
    _edit_config(directory, lambda c: _merge(c["model"], changes))
    with pytest.raises(WeightsError, match=message) as info:
        TeMuIQA.from_pretrained(directory)
    assert str(info.value).startswith(f"{directory / 'config.json'}: ") and "\n" not in str(info.value)


def test_an_override_out_of_range_is_named_as_an_override(tiny_head_dir):
    from temu.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^image_size=True: expected"):
        TeMuIQA.from_pretrained(tiny_head_dir, image_size=True)
    with pytest.raises(WeightsError, match=r"with overrides \['layers'\]: invalid model config: layers=\[5\]"):
        TeMuIQA.from_pretrained(tiny_head_dir, layers=[5])


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float64, torch.int64])
def test_head_weights_of_another_dtype_are_refused_naming_the_tensor(tiny_head_dir, tmp_path, dtype):
    from safetensors.torch import load_file, save_file

    directory = shutil.copytree(tiny_head_dir, tmp_path / "copy")
    state = load_file(str(directory / "model.safetensors"))
    state["patch_weight.bias"] = state["patch_weight.bias"].to(dtype)
    save_file(state, str(directory / "model.safetensors"))
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(
        WeightsError, match=rf"copy/model\.safetensors: tensor patch_weight\.bias \({name}\): expected float32"
    ):
        TeMuIQA.from_pretrained(directory)


def test_head_weights_in_half_precision_load(tiny_head_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    directory = shutil.copytree(tiny_head_dir, tmp_path / "copy")
    state = load_file(str(directory / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in state.items()}, str(directory / "model.safetensors"))
    loaded = TeMuIQA.from_pretrained(directory)
    assert loaded.head.patch_weight.weight.dtype == torch.float32


@pytest.mark.parametrize(
    "write, found",
    [
        (lambda p, ckpt: p.write_bytes(b""), "found an empty file \\(0 bytes\\)"),
        (lambda p, ckpt: p.write_bytes(b"not a checkpoint at all"), "found a file that is not a checkpoint"),
        (lambda p, ckpt: p.write_bytes(ckpt.read_bytes()[:5000]), "found a file that is not a checkpoint"),
        (lambda p, ckpt: torch.save({"x": torch.zeros(2)}, p), "found tensors that do not fit it"),
        (lambda p, ckpt: torch.save([1, 2], p), "found a file that holds no state dict of tensors"),
    ],
)
def test_a_pretrained_file_that_is_not_a_checkpoint_names_the_file(
    tiny_head_dir, tiny_checkpoint, tmp_path, write, found
):
    from temu.errors import BackboneError

    checkpoint = tmp_path / "backbone.pt"
    write(checkpoint, tiny_checkpoint)
    with pytest.raises(
        BackboneError,
        match=rf"^pretrained='{checkpoint}': expected an open_clip or OpenAI CLIP "
        rf"checkpoint .* of the backbone .*tiny-clip\.json; {found}",
    ) as info:
        TeMuIQA.from_pretrained(tiny_head_dir, pretrained=str(checkpoint))
    assert "\n" not in str(info.value)


def test_a_damaged_safetensors_backbone_names_the_file(tiny_head_dir, tiny_checkpoint, tmp_path):
    from temu.errors import BackboneError

    checkpoint = tmp_path / "backbone.safetensors"
    checkpoint.write_bytes(tiny_checkpoint.read_bytes()[:-100])
    with pytest.raises(BackboneError, match=rf"^pretrained='{checkpoint}': .*; found a damaged safetensors file"):
        TeMuIQA.from_pretrained(tiny_head_dir, pretrained=str(checkpoint))


def test_a_full_disk_names_the_file_that_could_not_be_written(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    from temu.train.checkpoint import atomic_torch_save

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    target = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(OSError) as caught:
        atomic_torch_save({"epoch": 1}, target)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert str(target) in str(caught.value) and "No space left on device" in str(caught.value)
    assert list(target.parent.iterdir()) == []  # no temporary file left behind
