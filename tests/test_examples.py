"""The scripts in examples/ run as documented (with the tiny backbone's head instead of the preset)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(monkeypatch, name: str, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", [name, *argv])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def test_score_folder(monkeypatch, capsys, photo_files, tiny_head_dir):
    folder = photo_files["coffee"].parent
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    run_example(monkeypatch, "score_folder.py", str(folder), "--model", str(tiny_head_dir), "--keep-above", "0")
    out = capsys.readouterr().out
    assert "4 scored, 1 unreadable" in out and "broken.jpg" in out
    assert "4 image(s) score above 0" in out and "best:" in out and "worst:" in out


def test_quality_map(monkeypatch, capsys, photo_files, tiny_head_dir, tmp_path):
    out_file = tmp_path / "map.png"
    run_example(
        monkeypatch, "quality_map.py", str(photo_files["rocket"]), "--model", str(tiny_head_dir), "--out", str(out_file)
    )
    with Image.open(out_file) as canvas, Image.open(photo_files["rocket"]) as original:
        assert canvas.size == (3 * original.width, original.height)
    assert "wrote" in capsys.readouterr().out
