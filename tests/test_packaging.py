"""What pip installs: the wheel carries the presets and the pyiqa start-up hook, and both work
from an installed copy, for a regular and an editable wheel. A throwaway venv installs them
(unpacked as pip would), reaching torch and pyiqa through a path-only .pth file."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def build(kind: str, out: Path) -> Path:
    if kind == "wheel":
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ]
    else:  # PEP 660, as `pip install -e .` does
        cmd = [sys.executable, "-c", f"from setuptools import build_meta as b; b.build_editable({str(out)!r})"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("temu-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    return {kind: build(kind, tmp_path_factory.mktemp(kind)) for kind in ("wheel", "editable")}


def install_in_throwaway_venv(wheel: Path, root: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    zipfile.ZipFile(wheel).extractall(purelib)
    # Dependencies (torch, pyiqa, ...) from this interpreter, minus any temu installed there (it would
    # shadow the copy under test: sys.path is searched before setuptools' editable finder). A path
    # line in a .pth does not run that folder's own .pth files.
    deps = root / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("temu", "_temu", "__editable__")):
            (deps / entry.name).symlink_to(entry)
    (purelib / "zz-deps.pth").write_text(f"{deps}\n")
    return python


def test_wheel_contents(wheels):
    names = zipfile.ZipFile(wheels["wheel"]).namelist()
    for preset in ("temu-iqa-s", "temu-iqa-i"):
        for file in ("config.json", "model.safetensors", "README.md"):
            assert f"temu/weights/{preset}/{file}" in names
    assert {"temu/py.typed", "temu-pyiqa-hook.pth", "_temu_pyiqa_hook.py"} <= set(names)
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "temu").rglob("*.py")}
    assert sorted(sources - set(names)) == []  # every sub-package is listed in setup.cfg
    record = zipfile.ZipFile(wheels["wheel"]).read(next(n for n in names if n.endswith("RECORD"))).decode()
    assert "temu-pyiqa-hook.pth," in record  # so `pip uninstall temu` removes it
    assert not any(n.startswith(("tests/", "weights/", "benchmarks/")) for n in names)
    entry_points = (
        zipfile.ZipFile(wheels["wheel"]).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    )
    assert (
        "temu-finetune = temu.cli.finetune:main" in entry_points and "temu = temu.pyiqa_plugin:register" in entry_points
    )


def test_editable_wheel_installs_the_hook_too(wheels):
    names = set(zipfile.ZipFile(wheels["editable"]).namelist())
    assert {"temu-pyiqa-hook.pth", "_temu_pyiqa_hook.py"} <= names
    assert any(n.startswith("__editable__") and n.endswith(".pth") for n in names)


@pytest.mark.parametrize("kind", ["wheel", "editable"])
def test_installed_copy_finds_presets_and_registers_with_pyiqa_without_import_temu(wheels, kind, tmp_path):
    python = install_in_throwaway_venv(wheels[kind], tmp_path / "venv")
    code = (
        "import sys, warnings; warnings.filterwarnings('ignore'); "
        "start = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pyiqa', 'temu')); "
        "import pyiqa; listed = [m for m in pyiqa.list_models() if m.startswith('temu')]; "
        "loaded_by_pyiqa = 'temu' in sys.modules; "
        "import temu, temu.hub; "
        "print(start, listed, loaded_by_pyiqa, temu.__file__, temu.list_presets(), temu.hub.resolve_head_dir('temu-iqa-s'), sep='\\n')"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    start, listed, loaded_by_pyiqa, file, presets, head_dir = run.stdout.strip().splitlines()
    assert start == "[]" and loaded_by_pyiqa == "False"
    assert listed == "['temu_iqa', 'temu_iqa-i', 'temu_iqa-s']"
    assert presets == "['temu-iqa-i', 'temu-iqa-s']"
    if kind == "wheel":
        site = str(tmp_path / "venv")
        assert file.startswith(site), "imported the source tree, not the installed wheel"
        assert head_dir.startswith(site) and head_dir.endswith("temu/weights/temu-iqa-s")
    else:
        assert file == str(REPO / "temu" / "__init__.py")  # editable: the checkout
        assert head_dir == str(REPO / "weights" / "temu-iqa-s")
