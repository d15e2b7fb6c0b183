"""Optional dependencies: scoring needs none, and a command that needs a missing one says which extra adds it."""

from __future__ import annotations

import sys

import pytest

from temu.errors import MissingExtraError
from temu.extras import import_extra


def uninstall(monkeypatch, package: str) -> None:
    """Make ``package`` look not installed for the rest of the test: forgotten, and refused by a finder."""

    class Refuse:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == package or name.startswith(package + "."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Refuse, *sys.meta_path])


def test_a_missing_extra_names_the_pip_install(monkeypatch):
    uninstall(monkeypatch, "scipy")
    with pytest.raises(
        MissingExtraError, match=r'temu eval needs scipy, which is not installed: pip install "temu-iqa\[train\]"'
    ):
        import_extra("scipy.stats", "train", "temu eval")
    from temu.evaluation.metrics import srcc

    with pytest.raises(MissingExtraError, match="temu-iqa\\[train\\]"):
        srcc([1, 2, 3], [1, 3, 2])


def test_temu_eval_without_scipy_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    from temu.cli import main

    uninstall(monkeypatch, "scipy")
    (tmp_path / "labels.csv").write_text("image,mos\na.png,1\n")
    code = main(["eval", "--data", str(tmp_path / "labels.csv"), "--image-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [
        'temu eval: error: temu eval needs scipy, which is not installed: pip install "temu-iqa[train]"'
    ]


def test_panels_without_matplotlib_name_the_plots_extra(monkeypatch, tmp_path):
    import numpy as np

    from temu.plots import draw_panel

    uninstall(monkeypatch, "matplotlib")
    with pytest.raises(MissingExtraError, match=r'pip install "temu-iqa\[plots\]"'):
        draw_panel(np.zeros((8, 8, 3), np.uint8), "x", {"quality": (0.5, np.zeros((2, 2)))}, tmp_path / "p.png")


def test_a_broken_install_is_not_taken_for_a_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # scipy is there, a module inside it is not
    with pytest.raises(ModuleNotFoundError):
        import_extra("scipy.stats", "train", "temu eval")
