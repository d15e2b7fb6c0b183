"""The docs say what the code does: CI runs README's test command, and the README's facts hold."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert len(ci_lines) == 1
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)
    assert len(commands) == 2, "the README's set-up is two commands"
    assert commands[1] == ci_lines[0]
    assert "pytest" in commands[1] and "temu score" in commands[0]


def test_readme_head_parameter_counts_match_the_presets():
    import json

    from temu.hub import preset_root

    for name, count in (("temu-iqa-s", "99,929"), ("temu-iqa-i", "176,009")):
        config = json.loads((preset_root() / name / "config.json").read_text())
        assert f"{config['head_parameters']:,}" == count
        assert count in README


def test_changelog_has_an_unreleased_section():
    assert "## [Unreleased]" in (REPO / "CHANGELOG.md").read_text()


def test_readme_pyiqa_snippet_runs_with_a_tiny_backbone(tiny_checkpoint):
    """The "With IQA-PyTorch" snippet, verbatim but for the backbone, in a fresh interpreter."""
    import os
    import subprocess
    import sys

    import pytest

    pytest.importorskip("pyiqa")
    block = README.split("<!-- pyiqa-snippet", 1)[1]
    code = re.search(r"```python\n(.*?)\n```", block, flags=re.S).group(1)
    real = 'backbone="ViT-L-14", pretrained="openai"'
    assert code.count(real) == 2
    tiny = f"backbone={str(REPO / 'tests' / 'assets' / 'tiny-clip.json')!r}, pretrained={str(tiny_checkpoint)!r}, image_size=64"
    code = code.replace(real, tiny)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "NR False 0, 1"
    assert lines[1].startswith("tensor([[") and lines[-1] == "tensor(True)"
    assert 0.0 <= float(lines[-2]) <= 1.0  # an attribute from metric.net.model, the metric's TeMuIQA
