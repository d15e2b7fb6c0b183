"""The docs say what the code does: CI runs README's test command, and the README's facts hold."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    """The CI script's last command is README's test command, verbatim; before it only Chromium is installed
    (for the browser tests of tests/test_demo.py)."""
    ci_lines = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert len(ci_lines) == 2 and "apt-get install -y -q chromium" in ci_lines[0]
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)
    assert len(commands) == 2, "the README's set-up is two commands"
    assert commands[1] == ci_lines[-1]
    assert "pytest" in commands[1] and "temu score" in commands[0]


def test_readme_head_parameter_counts_match_the_presets():
    import json

    from temu.model.hub import preset_root

    for name, count in (("temu-iqa-s", "99,929"), ("temu-iqa-i", "176,009")):
        config = json.loads((preset_root() / name / "config.json").read_text())
        assert f"{config['head_parameters']:,}" == count
        assert count in README


def command_options() -> dict[str, set[str]]:
    """The options each command prints in its --help: {"temu score": {"--output", ...}, ...}."""
    import contextlib
    import io

    from temu.cli import main
    from temu.cli.finetune import main as finetune_main

    options = {}
    for name, run, argv in (
        *(
            (f"temu {cmd}", main, [cmd, "--help"])
            for cmd in ("score", "select", "eval", "calibrate", "presets", "demo")
        ),
        ("temu-finetune", finetune_main, ["--help"]),
    ):
        with contextlib.redirect_stdout(io.StringIO()) as out, pytest.raises(SystemExit):
            run(argv)
        options[name] = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.getvalue()))
    return options


def inline_code(text: str) -> list[str]:
    """`spans` of Markdown text outside fenced code blocks."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", text)


def unreleased() -> str:
    return (REPO / "CHANGELOG.md").read_text().split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]


def test_options_named_in_the_docs_and_the_changelog_exist():
    """Every `--option` that README.md, docs/ and the unreleased changes name is an option of a temu
    command (of the command it is written with, in spans such as `temu score --maps`)."""
    options = command_options()
    every = set().union(*options.values())
    texts = {"CHANGELOG.md [Unreleased]": unreleased(), "README.md": README}
    texts |= {str(p.relative_to(REPO)): p.read_text() for p in (REPO / "docs").glob("*.md")}
    wrong = []
    for name, text in texts.items():
        for span in inline_code(text):
            command = next((c for c in sorted(options, key=len, reverse=True) if span.startswith(c + " ")), None)
            if command is None and not span.startswith("--"):
                continue
            for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span):
                if option not in (options[command] if command else every):
                    wrong.append(f"{name}: {option} in `{span}`")
    assert wrong == [], wrong


def test_what_the_changelog_says_was_added_exists():
    """The unreleased "Added" entries name public things that exist under those names: Python names
    (`temu.x.y`, `TeMuIQA.method()`, `python -m module`), commands and files."""
    import importlib

    from temu import TeMuIQA

    def resolves(dotted: str) -> bool:
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError as err:
                if err.name and err.name.split(".")[0] != "temu":
                    return True  # a temu module whose optional dependency (ray, pyiqa) is not installed here
                continue
            try:
                with warnings.catch_warnings():  # old top-level names the CHANGELOG mentions still resolve, deprecated
                    warnings.simplefilter("ignore", DeprecationWarning)
                    for attr in parts[cut:]:
                        obj = getattr(obj, attr)
            except AttributeError:
                return False
            return True
        return False

    added = unreleased().split("### Added", 1)[1].split("\n### ", 1)[0] if "### Added" in unreleased() else ""
    commands = set(command_options())
    missing = []
    for span in inline_code(added):
        for name in re.findall(r"(?<![\w.])temu(?:\.\w+)+", span) + re.findall(r"python -m ([\w.]+)", span):
            if not resolves(name):
                missing.append(name)
        for attr in re.findall(r"TeMuIQA\.(\w+)", span):
            if not hasattr(TeMuIQA, attr):
                missing.append(f"TeMuIQA.{attr}")
        command = re.match(r"(temu(?:-finetune)?)(?: ([a-z]+))?", span)
        if command and span.split()[0] in ("temu", "temu-finetune") and command.group(2):
            if command.group(0) not in commands and not command.group(2).startswith("-"):
                missing.append(command.group(0))
        if re.fullmatch(r"[\w.-]+(/[\w.-]*)+|LICENSE|MANIFEST\.in", span):  # files of this repository
            if not (REPO / span).exists():
                missing.append(span)
    assert missing == [], missing


def test_readme_pyiqa_snippet_runs_with_a_tiny_backbone(tiny_checkpoint):
    """The "With IQA-PyTorch" snippet, verbatim but for the backbone, in a fresh interpreter."""
    import os
    import subprocess
    import sys

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


def test_readme_ray_snippet_runs(tiny_head_dir, photos, tmp_path):
    """The "In your own Ray Data pipeline" snippet in a fresh interpreter: a local Ray (4 logical CPUs:
    fewer stall small pipelines), two local WebDataset shards instead of S3, the tiny head, no GPU."""
    import io
    import os
    import subprocess
    import sys
    import tarfile

    pytest.importorskip("ray")
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    from PIL import Image

    block = README.split("<!-- ray-snippet", 1)[1]
    code = re.search(r"```python\n(.*?)\n```", block, flags=re.S).group(1)
    arrays = list(photos.values())
    (tmp_path / "bucket").mkdir()
    for shard in range(2):
        with tarfile.open(tmp_path / "bucket" / f"{shard:05d}.tar", "w") as tar:
            for i in range(2):
                data = io.BytesIO()
                Image.fromarray(arrays[2 * shard + i]).save(data, format="JPEG")
                member = tarfile.TarInfo(f"sample{shard}{i}.jpg")
                member.size = data.getbuffer().nbytes
                tar.addfile(member, io.BytesIO(data.getvalue()))
    substitutions = {
        "s3://bucket/shards/": str(tmp_path / "bucket"),
        "s3://bucket/scores/": str(tmp_path / "scores"),
        '"temu-iqa-s"': repr(str(tiny_head_dir)),
        "num_gpus=1": "num_gpus=0",
        "max_size=8": "max_size=1",
        "import temu.ray\n": "import temu.ray\n\nray.init(num_cpus=4, include_dashboard=False)\n",
    }
    for old, new in substitutions.items():
        assert old in code, old
        code = code.replace(old, new)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", code + "\nray.shutdown()\n"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pyarrow_parquet.read_table(tmp_path / "scores")
    assert sorted(table.column("__key__").to_pylist()) == ["sample00", "sample01", "sample10", "sample11"]
    assert table.column("error").null_count == 4 and table.column("score").null_count == 0


def test_install_instructions_name_the_distribution_temu_iqa():
    """`temu` on the package index is someone else's: every doc, message and model card says temu-iqa."""
    from temu.model.card import model_card
    from temu.model.config import TeMuConfig

    card = model_card(TeMuConfig(), head_parameters=1)
    texts = {str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in _user_facing_files()}
    texts["model_card()"] = card
    wrong = re.compile(r"""pip install (?:-\S+ )*["']?temu(?![\w-])|(?<![\w-])temu\[""")
    offenders = {name: wrong.findall(text) for name, text in texts.items() if wrong.search(text)}
    assert not offenders, offenders
    for name in ("README.md", "weights/temu-iqa-s/README.md", "weights/temu-iqa-i/README.md", "model_card()"):
        assert "pip install temu-iqa" in texts[name], name
    assert 'pip install "temu-iqa[pyiqa]"' in README


def _user_facing_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "_temu_pyiqa_hook.py", *(REPO / "weights").glob("*/README.md")]
    for folder, pattern in (("temu", "*.py"), ("docs", "*.md"), ("examples", "*.py"), ("examples", "*.md")):
        files += (REPO / folder).rglob(pattern)
    return files


# --------------------------------------------------------------------------- README's Python blocks run
#
# Every ```python block of README.md runs here, as written, in a fresh namespace, in a temporary working
# directory, offline (HF_HUB_OFFLINE=1, an empty Hub cache). No CLIP weights exist offline, so before a block
# runs the test makes the replacements of SUBSTITUTIONS (README text -> test text) and provides the names of
# PLACEHOLDERS (files in the working directory, variables in the namespace). Tracebacks point at README.md
# lines, and the test's id is the block's line: README.md:<line>.
#
# To keep a new block runnable: write it as a user would, with the real preset and backbone names. Where it
# needs weights, use a form the table covers (the default preset, `TeMuIQA()`, `pretrained="openai"` for an
# architecture only) or add a row; where it uses a name it does not define (an image, a tensor, a model),
# add a placeholder. A row or placeholder that no block uses fails `test_readme_substitutions_are_all_used`.
# The pyiqa block is run separately (above) in a fresh interpreter, as a pyiqa user would run it.

README_PATH = REPO / "README.md"

#: README text -> replacement ("{...}" filled in by the test); every row must be used by some block
SUBSTITUTIONS: dict[str, str] = {
    # the default preset is a head on OpenAI's ViT-L/14 (1.7 GB of weights): a saved head on the tiny backbone
    '"temu-iqa-s"': "{tiny_head!r}",
    # the default TeMuIQA() is ViT-L/14 with OpenAI's weights: the tiny backbone with its seeded checkpoint
    "TeMuIQA()": "TeMuIQA(backbone={tiny_backbone!r}, pretrained={tiny_checkpoint!r}, image_size=64)",
    # a block that only builds an architecture gets random weights instead of a download
    'pretrained="openai"': "pretrained=None",
    # no GPU in the test suite
    'device="cuda"': 'device="cpu"',
    # eight DataLoader processes would cost seconds on a 2-core machine; two still go through the workers
    "num_workers=8": "num_workers=2",
    # the demo page would serve until interrupted: serve it, then close it
    "demo.launch()": "demo.launch(prevent_thread_lock=True, quiet=True)\ndemo.close()",
}

#: names a block may use without defining them: files in the working directory, then namespace variables
PLACEHOLDER_FILES = ("photo.jpg", "a.jpg", "b.png", "photos/", "tests/assets/tiny-clip.json", "clip.mp4")
PLACEHOLDER_NAMES = ("pil_image", "numpy_hwc_uint8", "tensor_n3hw_in_0_1", "image_paths", "x", "model")


def readme_python_blocks() -> list[tuple[int, str]]:
    """(line of the block's first code line, code) of every ```python block, except the pyiqa snippet."""
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", README, flags=re.S | re.M):
        if README[: match.start()].rstrip().splitlines()[-1].startswith(("<!-- pyiqa-snippet", "<!-- ray-snippet")):
            continue  # run by test_readme_pyiqa_snippet_runs_with_a_tiny_backbone / test_readme_ray_snippet_runs
        blocks.append((README.count("\n", 0, match.start()) + 2, match.group(1)))
    return blocks


BLOCKS = readme_python_blocks()


def test_readme_has_python_blocks_beside_the_pyiqa_snippet():
    assert README.count("```python") == len(BLOCKS) + 2 and len(BLOCKS) >= 4


def test_readme_substitutions_are_all_used():
    code = "\n".join(block for _, block in BLOCKS)
    assert [s for s in SUBSTITUTIONS if s not in code] == []
    assert [p for p in PLACEHOLDER_FILES if p not in code] == []
    assert [n for n in PLACEHOLDER_NAMES if not re.search(rf"\b{n}\b", code)] == []


class FakeHfApi:
    """Stands in for huggingface_hub.HfApi: records what push_to_hub would upload."""

    uploads: list[tuple[str, list[str]]] = []

    def __init__(self, **kwargs):
        pass

    def create_repo(self, repo_id, private=None, exist_ok=False):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, commit_message, revision=None):
        FakeHfApi.uploads.append((repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
        return f"https://huggingface.co/{repo_id}/commit/0"


@pytest.fixture
def readme_world(tmp_path, monkeypatch, hub_cache, tiny_head_dir, tiny_kwargs, photos):
    """The working directory and namespace of a README block (see the table above)."""
    import huggingface_hub
    import torch
    from PIL import Image
    from temu_testing import TINY_CONFIG

    import temu
    import temu.cache

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(temu.cache, "DEFAULT_MODEL", str(tiny_head_dir))  # temu.score() without model=
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    FakeHfApi.uploads.clear()
    arrays = list(photos.values())
    Image.fromarray(arrays[0]).save("photo.jpg")
    Image.fromarray(arrays[1]).save("a.jpg")
    Image.fromarray(arrays[2]).save("b.png")
    Path("photos").mkdir()
    for i, arr in enumerate(arrays):
        Image.fromarray(arr).save(f"photos/{i}.jpg")
    write_clip("clip.mp4", arrays)
    Path("tests/assets").mkdir(parents=True)
    (tmp_path / "tests/assets/tiny-clip.json").write_bytes(TINY_CONFIG.read_bytes())
    fill = {
        "tiny_head": str(tiny_head_dir),
        "tiny_backbone": tiny_kwargs["backbone"],
        "tiny_checkpoint": tiny_kwargs["pretrained"],
    }
    namespace = {
        "pil_image": Image.fromarray(arrays[3]),
        "numpy_hwc_uint8": arrays[3],
        "tensor_n3hw_in_0_1": torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
        "image_paths": ["photo.jpg", "a.jpg", "b.png"],
        "x": torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)),
        "model": temu.load(tiny_head_dir),
    }
    yield {name: value.format(**fill) for name, value in SUBSTITUTIONS.items()}, namespace
    temu.clear_model_cache()


def write_clip(path: str, arrays: list) -> None:
    """A 3 s clip at 10 fps (64x48, H.264) cycling through the photographs, for the README's video blocks."""
    import numpy as np
    from PIL import Image
    from temu_testing import write_clip as write

    pytest.importorskip("av")
    frames = [Image.fromarray(a).resize((64, 48)) for a in arrays]
    write(
        Path(path), [np.asarray(frames[i // 8 % len(frames)]) for i in range(30)], [i / 10 for i in range(30)], rate=10
    )


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_python_block_runs(line, code, readme_world):
    substitutions, namespace = readme_world
    for old, new in substitutions.items():
        code = code.replace(old, new)
    compiled = compile("\n" * (line - 1) + code, str(README_PATH), "exec")  # line numbers = README lines
    try:
        exec(compiled, {"__name__": "__readme__", **namespace})
    except Exception as error:
        raise AssertionError(
            f"README.md block at line {line} failed: {type(error).__name__}: {error}\n"
            "(see the table at the top of this section of tests/test_docs.py for how blocks are made runnable)"
        ) from error
    if "push_to_hub(" in code:
        assert FakeHfApi.uploads and {"config.json", "model.safetensors"} <= set(FakeHfApi.uploads[-1][1])


def test_every_temu_name_the_docs_mention_exists():
    """Dotted names such as `temu.images.names.IMAGE_EXTENSIONS` in README.md and docs/ resolve: a module
    path that moved, or a name that was renamed, fails here (the changelog may name what used to be)."""
    import importlib

    texts = {"README.md": README}
    texts |= {str(p.relative_to(REPO)): p.read_text() for p in (REPO / "docs").glob("*.md")}
    missing = []
    for where, text in texts.items():
        for span in inline_code(text):
            match = re.match(r"(temu(?:\.[A-Za-z_]\w*)+)", span)
            if match is None:
                continue
            parts = match.group(1).split(".")
            for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                except ImportError:
                    continue
                try:
                    for attr in parts[cut:]:
                        obj = getattr(obj, attr)
                except AttributeError:
                    missing.append(f"{where}: {match.group(1)}")
                break
    assert missing == []


def test_benchmarks_and_examples_import_names_that_exist():
    """A module move must not leave a benchmark importing a name that is gone (they are not run in CI)."""
    import ast
    import importlib
    import importlib.util

    missing = []
    for path in [*(REPO / "benchmarks").glob("*.py"), *(REPO / "examples").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "temu":
                module = importlib.import_module(node.module)
                missing += [
                    f"{path.name}: {node.module}.{a.name}"
                    for a in node.names
                    if not hasattr(module, a.name) and importlib.util.find_spec(f"{node.module}.{a.name}") is None
                ]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "temu":
                        importlib.import_module(alias.name)
    assert not missing
