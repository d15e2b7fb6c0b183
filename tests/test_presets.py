"""The shipped presets are what temu.presets writes, and an installed wheel (not only the source tree) finds them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from safetensors.torch import load_file

import temu
from temu.hub import preset_root
from temu.presets import PRESETS, write_untrained_preset

REPO = Path(__file__).resolve().parent.parent


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
    assert (a["layer_logits"] == 0).all() and (a["adapter.up.weight"] == 0).all() and (a["patch_weight.weight"] == 0).all()
    config = json.loads((shipped / "config.json").read_text())["model"]
    assert config["backbone"] == "ViT-L-14" and config["pretrained"] == "openai" and config["image_size"] == 448
    assert "untrained" in (shipped / "README.md").read_text().lower()


def test_wheel_ships_the_presets_and_an_installed_copy_finds_them(tmp_path):
    """Build the wheel, unpack it as pip would install it, and import temu from there only."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("temu-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for preset in PRESETS:
        for file in ("config.json", "model.safetensors", "README.md"):
            assert f"temu/weights/{preset}/{file}" in names
    assert "temu/py.typed" in names
    assert not any(n.startswith(("tests/", "weights/")) for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import temu, temu.hub; "
        "print(temu.__file__); print(temu.list_presets()); print(temu.hub.resolve_head_dir('temu-iqa-s'))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    file, presets, head_dir = run.stdout.strip().splitlines()
    assert file.startswith(str(site)), "imported the source tree, not the installed wheel"
    assert presets == "['temu-iqa-i', 'temu-iqa-s']"
    assert head_dir == str(site / "temu" / "weights" / "temu-iqa-s")
