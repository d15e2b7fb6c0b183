"""benchmarks/gpu_suite.py: its tiny CPU run works end to end, and a failing section fails the suite loudly.

The GPU numbers themselves come from running the suite on a GPU machine (benchmarks/RESULTS.md);
this only keeps the script from rotting between loans.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"


@pytest.fixture(scope="module")
def suite():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import gpu_suite

        yield gpu_suite
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_flop_count_matches_the_vit_l14_figure_at_448(suite):
    """MFU is quoted against 0.72 TFLOP per image for ViT-L/14 at 448 (1,025 tokens, width 1024, 24 blocks)."""
    assert suite.vit_flops(1024, 24, 32 * 32 + 1) == pytest.approx(0.72e12, rel=0.01)
    # ViT-B/16 at 224: the usual 17.5 GMAC
    assert suite.vit_flops(768, 12, 14 * 14 + 1) == pytest.approx(35e9, rel=0.02)


def test_a_section_that_raises_or_runs_over_budget_fails_the_suite(suite, tmp_path, monkeypatch, capsys):
    def boom(settings):
        raise RuntimeError("no clipiqa+ weights")

    def slow(settings):
        time.sleep(3)
        return "never"

    sections = [
        suite.Section("boom", "raises", 10, boom),
        suite.Section("slow", "too slow", 0.3, slow),
        suite.Section("fine", "works", 10, lambda s: "| a |\n|---|\n| 1 |"),
    ]
    monkeypatch.setattr(suite, "SECTIONS", sections)
    assert suite.main([str(tmp_path), "--tiny"]) == 1
    summary = (tmp_path / "summary.md").read_text()
    assert "| boom    | FAILED: RuntimeError: no clipiqa+ weights" in summary
    assert "FAILED: SectionTimeout: ran over its budget of 0 s" in summary
    assert "| fine    | ok" in summary  # the other sections still run
    assert "FAILED: boom, slow" in summary
    results = (tmp_path / "results.md").read_text()
    assert "**FAILED**: RuntimeError: no clipiqa+ weights" in results and "| 1 |" in results
    assert "2 section(s) FAILED: boom, slow" in capsys.readouterr().err


def test_without_a_gpu_the_full_run_refuses_at_once(suite, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="CUDA is not available .* pass --tiny"):
        suite.main([str(tmp_path)])


def test_unknown_section_is_a_usage_error(suite, tmp_path):
    with pytest.raises(SystemExit) as exc:
        suite.main([str(tmp_path), "--tiny", "--sections", "nonsense"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_tiny_run_measures_every_section(tmp_path):
    pytest.importorskip("pyiqa")
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_suite.py"), str(out), "--tiny"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    results = (out / "results.md").read_text()
    for name in ("overhead", "layer_sweep", "pyiqa", "score_files", "finetune", "agreement", "cpu_precision"):
        assert f"| {name} " in summary
    assert "all sections ok" in summary and "FAILED" not in results
    for row in (
        "| temu S ",
        "| open_clip encode_image ",
        "| clipiqa+_vitL14_512, fp32",
        "| temu.iter_scores from JPEG files",
        "| train step, LDG on (2N)",
        "KonIQ-10k on this device, LDG off",
        "SRCC bf16 vs fp32",
        "precision='auto' picks",
    ):
        assert row in results, row
