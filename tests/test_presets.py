"""The shipped presets are what temu.presets writes (packaging checks: test_packaging.py)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

import temu
from temu.cli.presets import write_untrained_preset
from temu.model.hub import preset_root
from temu.model.presets import PRESETS


def test_presets_are_listed():
    assert temu.list_presets() == ["temu-iqa-i", "temu-iqa-s"] == sorted(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_preset_is_the_untrained_head_the_code_writes(name, tmp_path):
    shipped = preset_root() / name
    fresh = write_untrained_preset(name, tmp_path / name)
    assert json.loads((shipped / "config.json").read_text()) == json.loads((fresh / "config.json").read_text())
    a, b = load_file(str(shipped / "model.safetensors")), load_file(str(fresh / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert (shipped / "README.md").read_text() == (fresh / "README.md").read_text()
    # untrained: uniform layer weights, zero adapter output, equal patch weights
    assert (
        (a["layer_logits"] == 0).all() and (a["adapter.up.weight"] == 0).all() and (a["patch_weight.weight"] == 0).all()
    )
    config = json.loads((shipped / "config.json").read_text())["model"]
    assert config["backbone"] == "ViT-L-14" and config["pretrained"] == "openai" and config["image_size"] == 448
    assert "untrained" in (shipped / "README.md").read_text().lower()
