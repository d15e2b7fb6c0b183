"""temu as a pyiqa metric, checked in fresh interpreters (offline, tiny random backbone).

One subprocess does the whole tour and prints JSON: every fresh interpreter pays pyiqa's and
open_clip's import time (about 10 s), so the checks share one. The tour never imports temu
before creating the metrics: the start-up hook (temu-pyiqa-hook.pth) must make that work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("pyiqa")

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "tests" / "assets" / "tiny-clip.json")

TOUR = textwrap.dedent(
    """
    import io, json, sys, warnings
    warnings.filterwarnings("ignore")
    at_start = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "pyiqa", "temu"))
    import pyiqa, torch
    from PIL import Image
    ckpt, image, head_dir = sys.argv[2:5]
    kw = dict(backbone=sys.argv[5], pretrained=ckpt, image_size=64, device="cpu")
    out = {"at_start": at_start, "temu_after_import_pyiqa": "temu" in sys.modules}
    out["listed"] = [m for m in pyiqa.list_models() if m.startswith("temu")]
    out["listed_nr"] = [m for m in pyiqa.list_models(metric_mode="NR") if m.startswith("temu")]
    metrics = {name: pyiqa.create_metric(name, **kw) for name in out["listed"]}
    out["attributes"] = {n: [m.metric_mode, m.lower_better, m.score_range] for n, m in metrics.items()}
    out["variants"] = {n: m.net.model.config.variant for n, m in metrics.items()}
    m = metrics["temu_iqa"]
    x = torch.rand(2, 3, 48, 56, generator=torch.Generator().manual_seed(0))
    import temu
    out["tensor"] = m(x).tolist()
    out["tensor_temu"] = temu.score(x, model=m.net.model)
    out["gray"] = m(x[:, :1]).shape[1]
    out["path"] = m(image).item()
    with open(image, "rb") as f:
        out["bytes"] = m(f.read()).item()
    out["pil"] = m(Image.open(image)).item()
    out["path_temu"] = temu.score(image, model=m.net.model)
    loss = pyiqa.create_metric("temu_iqa", as_loss=True, **kw)
    xg = x.clone().requires_grad_(True)
    value = loss(xg)
    value.backward()
    out["loss"] = [float(value), float(xg.grad.abs().sum())]
    trained = pyiqa.create_metric("temu_iqa", head=head_dir, device="cpu")
    out["trained"] = trained(image).item()
    out["trained_temu"] = temu.score(image, model=temu.load(head_dir))
    print("RESULT" + json.dumps(out))
    """
)


def run_tour(mode: str, tiny_checkpoint: Path, image: Path, head_dir: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", TOUR, mode, str(tiny_checkpoint), str(image), str(head_dir), TINY],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO / "tests",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [text for text in proc.stdout.splitlines() if text.startswith("RESULT")]
    return json.loads(line[len("RESULT") :])


@pytest.fixture(scope="module")
def tour(tiny_checkpoint, tiny_head_dir, tmp_path_factory, photos) -> dict:
    from PIL import Image

    image = tmp_path_factory.mktemp("pyiqa") / "coffee.png"
    Image.fromarray(photos["coffee"]).save(image)
    return run_tour("no-import", tiny_checkpoint, image, tiny_head_dir)


def test_metrics_work_without_import_temu_and_nothing_heavy_loads_at_start_up(tour):
    assert tour["at_start"] == []  # the .pth imports only _temu_pyiqa_hook: no torch, pyiqa or temu
    assert tour["temu_after_import_pyiqa"] is False  # registration is lazy until a metric is built


def test_every_name_is_created_and_listed(tour):
    assert tour["listed"] == ["temu_iqa", "temu_iqa-i", "temu_iqa-s"]
    assert tour["listed_nr"] == tour["listed"]
    assert tour["variants"] == {"temu_iqa": "S", "temu_iqa-s": "S", "temu_iqa-i": "I"}


def test_metric_attributes_follow_pyiqa(tour):
    assert all(a == ["NR", False, "0, 1"] for a in tour["attributes"].values())


def test_tensor_path_bytes_and_pil_inputs_score_like_temu(tour):
    assert all(len(row) == 1 for row in tour["tensor"])  # [N, 1], like pyiqa's CLIP metrics
    assert [row[0] for row in tour["tensor"]] == pytest.approx(tour["tensor_temu"], abs=1e-5)
    assert tour["gray"] == 1
    for kind in ("path", "bytes", "pil"):
        assert tour[kind] == pytest.approx(tour["path_temu"], abs=1e-5)


def test_as_loss_gives_gradients_on_the_image(tour):
    value, grad = tour["loss"]
    assert 0 <= value <= 1 and grad > 0


def test_trained_head_passes_through(tour):
    assert tour["trained"] == pytest.approx(tour["trained_temu"], abs=1e-5)


def test_import_temu_registers_without_any_pth(tiny_checkpoint):
    """`python -S` runs no .pth file: `import temu` alone must make pyiqa see the metrics."""
    import sysconfig

    code = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.filterwarnings("ignore")
        sys.path += [{str(REPO)!r}, {sysconfig.get_paths()["purelib"]!r}]
        assert "_temu_pyiqa_hook" not in sys.modules
        import temu, pyiqa
        metric = pyiqa.create_metric("temu_iqa-i", backbone={TINY!r}, pretrained={str(tiny_checkpoint)!r}, image_size=64, device="cpu")
        print("RESULT", [m for m in pyiqa.list_models() if m.startswith("temu")], metric.net.model.config.variant)
        """
    )
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=REPO / "tests")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT ['temu_iqa', 'temu_iqa-i', 'temu_iqa-s'] I" in proc.stdout


def test_pyiqa_command_line_reaches_the_metric(tmp_path, photos):
    """pyiqa's CLI builds the default preset; offline with an empty cache, the error must be temu's."""
    import shutil

    from PIL import Image

    exe = shutil.which("pyiqa", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("pyiqa's console script is not installed beside this interpreter")
    image = tmp_path / "coffee.png"
    Image.fromarray(photos["coffee"]).save(image)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    proc = subprocess.run(
        [exe, "temu_iqa", "-t", str(image), "--device", "cpu"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "NotCachedError" in proc.stderr and "ViT-L-14" in proc.stderr  # temu's own, actionable error
    assert "not implemented" not in proc.stderr


def test_the_hook_touches_nothing_but_pyiqas_config_module():
    """The finder answers only for pyiqa.default_model_configs and never modifies a loader; where pyiqa is
    not installed it is not even installed."""
    import sysconfig

    code = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.filterwarnings("ignore")
        sys.path.append({str(REPO)!r})
        import _temu_pyiqa_hook as hook
        hook.activate()
        without = hook._Finder in sys.meta_path  # pyiqa is not on this path
        sys.path.append({sysconfig.get_paths()["purelib"]!r})
        hook.activate()
        hook.activate()  # idempotent
        installed = sys.meta_path.count(hook._Finder)
        import email.mime.text, json, xml.dom.minidom, csv, zipfile, sqlite3, decimal, fractions
        others = [m for m in list(sys.modules.values()) if getattr(getattr(m, "__spec__", None), "loader", None) is not None]
        touched = [m.__name__ for m in others
                   if isinstance(m.__spec__.loader, hook._ConfigsLoader)
                   or (not isinstance(m.__spec__.loader, type) and "exec_module" in vars(m.__spec__.loader))]
        print("RESULT", without, installed, touched, "pyiqa" in sys.modules)
        import pyiqa.default_model_configs as configs
        loader = configs.__spec__.loader
        print("RESULT2", type(loader).__name__, type(loader.loader).__name__, "exec_module" in vars(loader.loader),
              "temu_iqa" in configs.DEFAULT_CONFIGS)
        """
    )
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=REPO / "tests")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT False 1 [] False" in proc.stdout
    assert "RESULT2 _ConfigsLoader SourceFileLoader False True" in proc.stdout
