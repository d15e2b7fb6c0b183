"""What a release ships and what pip installs, checked on the built artefacts, offline.

`python -m build --no-isolation` builds the sdist, then the wheel from the unpacked sdist (so the
wheel is only as complete as the sdist); `twine check` reads both. The wheel, and the editable
wheel `pip install -e .` makes, are pip-installed into throwaway venvs that reach this
interpreter's dependencies (torch, pyiqa, ...) through a path-only .pth file, so nothing
downloads. All slow: `pytest -m "not slow"` skips them.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
VERSION = re.search(r'__version__ = "(.+)"', (REPO / "temu" / "_version.py").read_text()).group(1)
PRESET_FILES = [
    f"{p}/{f}" for p in ("temu-iqa-s", "temu-iqa-i") for f in ("config.json", "model.safetensors", "README.md")
]


def run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel as a release builds them, and the editable wheel of `pip install -e .`."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, REPO], cwd=REPO)
    editable = tmp_path_factory.mktemp("editable")  # PEP 660, as `pip install -e .` does
    run(
        [sys.executable, "-c", f"from setuptools import build_meta as b; b.build_editable({str(editable)!r})"], cwd=REPO
    )
    (sdist,) = out.glob(f"temu_iqa-{VERSION}.tar.gz")
    (wheel,) = out.glob(f"temu_iqa-{VERSION}-py3-none-any.whl")
    (editable_wheel,) = editable.glob(f"temu_iqa-{VERSION}-*.whl")
    return {"sdist": sdist, "wheel": wheel, "editable": editable_wheel}


def install_in_throwaway_venv(wheel: Path, root: Path) -> Path:
    """pip-install ``wheel`` (no dependencies, no index) into a new venv at ``root``; its python."""
    run([sys.executable, "-m", "venv", "--without-pip", root])
    python = root / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])
    # Dependencies (torch, pyiqa, ...) from this interpreter, minus any temu installed there (it would
    # shadow the copy under test: sys.path is searched before setuptools' editable finder). A path
    # line in a .pth does not run that folder's own .pth files.
    deps = root / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("temu", "_temu", "__editable__")):
            (deps / entry.name).symlink_to(entry)
    (site_packages(python) / "zz-deps.pth").write_text(f"{deps}\n")
    return python


def site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(run([python, "-c", code]).stdout.strip())


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory) -> dict[str, Path]:
    """The python of a throwaway venv with the wheel, and of one with the editable wheel, installed."""
    return {
        kind: install_in_throwaway_venv(dists[kind], tmp_path_factory.mktemp(kind) / "venv")
        for kind in ("wheel", "editable")
    }


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        return email.parser.Parser().parsestr(zf.read(f"temu_iqa-{VERSION}.dist-info/METADATA").decode())


def test_twine_check_passes_on_the_sdist_and_the_wheel(dists):
    out = run([sys.executable, "-m", "twine", "check", "--strict", dists["sdist"], dists["wheel"]]).stdout
    assert out.count("PASSED") == 2, out


def test_metadata_names_the_distribution_the_licence_and_the_one_version(dists):
    import trove_classifiers

    meta = wheel_metadata(dists["wheel"])
    assert (meta["Name"], meta["Version"], meta["License-Expression"]) == ("temu-iqa", VERSION, "Apache-2.0")
    with tarfile.open(dists["sdist"]) as tf:
        pkg_info = tf.extractfile(f"temu_iqa-{VERSION}/PKG-INFO").read().decode()
    assert f"\nVersion: {VERSION}\n" in pkg_info and "\nLicense-Expression: Apache-2.0\n" in pkg_info
    with zipfile.ZipFile(dists["wheel"]) as zf:
        assert zf.read(f"temu_iqa-{VERSION}.dist-info/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
    classifiers = meta.get_all("Classifier")
    unknown = [c for c in classifiers if c not in trove_classifiers.classifiers]
    assert not unknown, f"the package index rejects unknown classifiers: {unknown}"
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: the expression replaces them
    # the oldest Python listed is the oldest allowed
    pythons = [c.rsplit(" ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert meta["Requires-Python"] == f">={min(pythons, key=lambda v: int(v.split('.')[1]))}"
    assert {"pyiqa", "test"} <= set(meta.get_all("Provides-Extra"))
    assert meta["Description-Content-Type"] == "text/markdown" and "## Licence" in meta.get_payload()


def test_wheel_holds_every_module_the_presets_and_the_hook(dists):
    with zipfile.ZipFile(dists["wheel"]) as zf:
        names = set(zf.namelist())
        record = zf.read(f"temu_iqa-{VERSION}.dist-info/RECORD").decode()
        entry_points = zf.read(f"temu_iqa-{VERSION}.dist-info/entry_points.txt").decode()
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "temu").rglob("*.py") if "__pycache__" not in p.parts}
    assert modules - names == set(), "a module (or sub-package missing from setup.cfg's packages) is not in the wheel"
    assert {f"temu/weights/{f}" for f in PRESET_FILES} <= names
    assert {"temu/py.typed", "temu-pyiqa-hook.pth", "_temu_pyiqa_hook.py"} <= names
    assert "temu-pyiqa-hook.pth," in record  # so `pip uninstall temu-iqa` removes it
    assert not any(n.startswith(("tests/", "weights/", "benchmarks/", "examples/", "docs/")) for n in names)
    for line in ("temu = temu.cli:main", "temu-finetune = temu.cli.finetune:main", "temu = temu.pyiqa_plugin:register"):
        assert line in entry_points


def test_editable_wheel_installs_the_hook_too(dists):
    names = set(zipfile.ZipFile(dists["editable"]).namelist())
    assert {"temu-pyiqa-hook.pth", "_temu_pyiqa_hook.py"} <= names
    assert any(n.startswith("__editable__") and n.endswith(".pth") for n in names)


def test_sdist_holds_every_tracked_file(dists):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = set(run(["git", "ls-files"], cwd=REPO).stdout.splitlines()) - {".gitignore"}
    with tarfile.open(dists["sdist"]) as tf:
        shipped = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert tracked - shipped == set()


def test_the_sdists_own_tests_run_from_the_unpacked_sdist(dists, tmp_path):
    """The tests that read the README, the CI script, the changelog and the presets pass from the
    unpacked sdist alone, with the sdist's own pytest configuration and conftest."""
    with tarfile.open(dists["sdist"]) as tf:
        tf.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    src = tmp_path / f"temu_iqa-{VERSION}"
    env = clean_env() | {"PYTHONPATH": str(src)}  # the sdist's temu, not this checkout's
    assert run([sys.executable, "-c", "import temu; print(temu.__file__)"], cwd=src, env=env).stdout.startswith(
        str(src)
    )
    files = ["tests/test_docs.py", "tests/test_presets.py"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not snippet and not shipped", *files]
    out = run(cmd, cwd=src, env=env).stdout  # exit status 0: nothing failed
    passed = re.search(r"\b(\d+) passed", out)
    assert passed and int(passed.group(1)) >= 5 and "skipped" not in out, out[-3000:]  # they ran, none skipped


def test_installed_wheel_commands_work_from_a_clean_venv(installed, tiny_head_dir, photo_files):
    import temu

    python = installed["wheel"]
    bin_dir, site, env = python.parent, str(python.parent.parent), clean_env()
    assert run([bin_dir / "temu", "--version"], env=env).stdout.strip() == f"temu {VERSION}"
    presets = dict(line.split("\t") for line in run([bin_dir / "temu", "presets"], env=env).stdout.splitlines())
    assert sorted(presets) == ["temu-iqa-i", "temu-iqa-s"] and all(p.startswith(site) for p in presets.values())
    assert "usage: temu-finetune" in run([bin_dir / "temu-finetune", "--help"], env=env).stdout
    image = photo_files["coffee"]
    rows = run([bin_dir / "temu", "score", image, "--model", tiny_head_dir, "--quiet"], env=env).stdout.splitlines()
    assert rows[0] == "path,score"
    assert float(rows[1].rsplit(",", 1)[1]) == pytest.approx(
        temu.score(image, model=temu.load(tiny_head_dir)), abs=1e-5
    )


@pytest.mark.parametrize("kind", ["wheel", "editable"])
def test_installed_copy_finds_presets_and_registers_with_pyiqa_without_import_temu(installed, kind, tmp_path):
    python = installed[kind]
    code = (
        "import sys, warnings; warnings.filterwarnings('ignore'); "
        "start = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pyiqa', 'temu')); "
        "import pyiqa; listed = [m for m in pyiqa.list_models() if m.startswith('temu')]; "
        "loaded_by_pyiqa = 'temu' in sys.modules; "
        "import temu, temu.model.hub; "
        "print(start, listed, loaded_by_pyiqa, temu.__file__, temu.list_presets(), temu.model.hub.resolve_head_dir('temu-iqa-s'), sep='\\n')"
    )
    out = run([python, "-c", code], cwd=tmp_path, env=clean_env()).stdout
    start, listed, loaded_by_pyiqa, file, presets, head_dir = out.strip().splitlines()
    assert start == "[]" and loaded_by_pyiqa == "False"
    assert listed == "['temu_iqa', 'temu_iqa-i', 'temu_iqa-s']"
    assert presets == "['temu-iqa-i', 'temu-iqa-s']"
    if kind == "wheel":
        site = str(python.parent.parent)
        assert file.startswith(site), "imported the source tree, not the installed wheel"
        assert head_dir.startswith(site) and head_dir.endswith("temu/weights/temu-iqa-s")
    else:
        assert file == str(REPO / "temu" / "__init__.py")  # editable: the checkout
        assert head_dir == str(REPO / "weights" / "temu-iqa-s")


def test_pip_uninstall_leaves_nothing_behind(dists, tmp_path):
    python = install_in_throwaway_venv(dists["wheel"], tmp_path / "venv")
    site = site_packages(python)
    before = sorted(p.name for p in site.iterdir())
    assert {"temu", "_temu_pyiqa_hook.py", "temu-pyiqa-hook.pth", f"temu_iqa-{VERSION}.dist-info"} <= set(before)
    run([sys.executable, "-m", "pip", "--python", python, "uninstall", "-y", "-q", "temu-iqa"])
    assert sorted(p.name for p in site.iterdir() if p.name != "__pycache__") == ["zz-deps.pth"]
