"""The package's layout holds: no import cycles, arrows point down only (cli -> train -> evaluation
-> data -> core; corpus -> core; integrations at the edge), inside the core the model and image
input do not know the inference layer above them, scoring loads no plotting/statistics/pyiqa
code, and the command line answers --version and --help without torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "temu"
UPPER = ("temu.data", "temu.train", "temu.evaluation", "temu.cli")
#: the integrations at the edge: each the only importer of its library
EDGE = ("temu.pyiqa_plugin", "temu.ray", "temu.demo")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_modules(name: str) -> set[str]:
    """temu modules that ``name`` imports anywhere (inside functions too), except under ``if TYPE_CHECKING``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                # `from pkg import sub` imports the submodule pkg.sub; `from mod import name` imports mod
                found.update(f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES and m != name}


def import_graph() -> dict[str, set[str]]:
    graph = {name: imported_modules(name) for name in MODULES}
    # temu/__init__ imports its public names lazily (importlib, by name): count those edges too
    import temu
    import temu.model

    graph["temu"] |= {f"temu.{module}" for module in temu._EXPORTS.values()}
    graph["temu"] |= {f"temu.{module}" for module, _ in temu._DEPRECATED.values()}
    graph["temu.model"] |= {f"temu.model.{module}" for module in temu.model._EXPORTS.values()}
    return graph


def layer(name: str) -> str:
    """The layer of a temu module: core, data, evaluation, train, corpus, cli or edge."""
    for prefix in ("temu.data", "temu.evaluation", "temu.train", "temu.corpus", "temu.cli"):
        if name == prefix or name.startswith(prefix + "."):
            return prefix.split(".")[1]
    return "edge" if name.startswith(EDGE) else "core"


#: what each layer may import
ALLOWED = {
    "core": {"core"},
    "data": {"core", "data"},
    "evaluation": {"core", "data", "evaluation"},
    "train": {"core", "data", "evaluation", "train"},
    "corpus": {"core", "corpus"},
    "cli": {"core", "data", "evaluation", "train", "corpus", "cli", "edge"},
    "edge": {"core", "corpus", "edge"},
}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_walker_sees_imports_inside_functions():
    graph = import_graph()
    assert "temu.model" in graph["temu.api"]  # a module-level import
    assert "temu.plots" in graph["temu.train.trainer"]  # an import inside a method
    assert "temu.model" in graph["temu"]  # a lazy public name
    assert "temu.model.temuiqa" in graph["temu.model"]  # a lazy name of a sub-package
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_public_api_lists_every_lazy_name():
    import temu

    assert sorted(temu.__all__) == sorted(["__version__", *temu._EXPORTS])
    for name in temu.__all__:
        assert getattr(temu, name) is not None


def test_no_import_cycles_counting_imports_inside_functions():
    assert find_cycle(import_graph()) is None


def facade_exports() -> set[str]:
    """The modules the facade ``temu`` (the package's __init__) imports lazily, by name, for its public names."""
    import temu

    return {f"temu.{module}" for module in temu._EXPORTS.values()}


def test_arrows_point_down_only():
    """Every module imports only from its own layer and those below, with one exception: the facade
    ``temu`` may export a public name lazily from any layer (``temu.calibrate`` lives in evaluation);
    its own imports, and every other core module's, stay in the core."""
    graph = import_graph()
    assert layer("temu.model.backbone") == "core" and layer("temu.cli.score") == "cli" and layer("temu.ray") == "edge"
    lazy = facade_exports()
    assert "temu.evaluation.calibration" in lazy  # the exception is used
    offences = {
        name: sorted(m for m in deps if layer(m) not in ALLOWED[layer(name)] and not (name == "temu" and m in lazy))
        for name, deps in graph.items()
    }
    assert {k: v for k, v in offences.items() if v} == {}
    assert sorted(m for m in imported_modules("temu") if layer(m) != "core") == []  # the facade's real imports


def test_inside_the_core_the_model_and_image_input_do_not_know_the_layers_above_them():
    """model/ and images/ are the bottom of the core: they never import the inference core, the API or
    the cache; images/ never imports the model."""
    graph = import_graph()
    above = ("temu.inference", "temu.api", "temu.cache", "temu.plots")
    for name, deps in graph.items():
        if name.startswith(("temu.model.", "temu.images")):
            assert not [m for m in deps if m.startswith(above)], name
        if name.startswith("temu.images"):
            assert not [m for m in deps if m.startswith("temu.model")], name


def test_no_module_imports_the_temu_package_itself():
    """``import temu`` / ``from temu import x`` inside temu would close a cycle through temu/__init__."""
    graph = import_graph()
    assert sorted(name for name, deps in graph.items() if "temu" in deps and name != "temu") == []


def run_python(code: str) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_scoring_loads_no_plotting_statistics_or_pyiqa_code(tiny_kwargs):
    code = f"""
import sys, torch, temu
model = temu.TeMuIQA(**{tiny_kwargs!r})
temu.score([torch.rand(3, 64, 64), torch.rand(3, 80, 96)], model=model)
temu.explain([torch.rand(3, 64, 64)], model=model)  # attributes and maps: no plotting either
heavy = ("matplotlib", "scipy", "pyiqa", "gradio", "temu.data", "temu.train", "temu.evaluation", "temu.cli", "temu.demo")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(heavy)))
"""
    assert run_python(code) == "[]"


def test_version_and_help_answer_without_torch():
    code = """
import contextlib, io, sys
from temu.cli import main
for argv in (["--version"], ["--help"], ["score", "--help"], ["eval", "--help"], ["demo", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(argv)
        except SystemExit as done:
            assert done.code == 0, (argv, done.code)
    assert out.getvalue().strip(), argv
from temu.cli.finetune import build_parser
build_parser()
print("torch" in sys.modules, "numpy" in sys.modules, "gradio" in sys.modules)
"""
    assert run_python(code) == "False False False"


def external_imports(name: str) -> set[str]:
    """Top-level names of the non-temu packages ``name`` imports anywhere (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found - {"temu"}


def test_only_the_ray_integration_imports_ray():
    """temu.corpus.ray (TeMuScorer and the Ray engine) imports ray; temu.ray only re-exports TeMuScorer."""
    assert sorted(name for name in MODULES if "ray" in external_imports(name)) == ["temu.corpus.ray"]
    assert "temu.corpus.ray" in imported_modules("temu.ray")


def test_only_the_model_imports_open_clip_and_only_plots_import_matplotlib():
    assert {name for name in MODULES if "open_clip" in external_imports(name)} <= {
        n for n in MODULES if n.startswith("temu.model.")
    }
    assert sorted(name for name in MODULES if "matplotlib" in external_imports(name)) == ["temu.plots"]


def test_only_the_demo_page_imports_gradio_and_only_the_demo_command_imports_it():
    assert sorted(name for name in MODULES if "gradio" in external_imports(name)) == ["temu.demo.app"]
    graph = import_graph()
    users = sorted(n for n, deps in graph.items() if any(d.startswith("temu.demo") for d in deps))
    assert [n for n in users if not n.startswith("temu.demo")] == ["temu.cli.demo"]


def test_ray_reader_tasks_load_no_torch():
    """Ray starts reader tasks in fresh worker processes: the code they import must not pull in torch."""
    pytest.importorskip("pyarrow")
    code = "import sys, temu.corpus.read; print('torch' in sys.modules)"
    assert run_python(code) == "False"


def test_setup_cfg_lists_every_sub_package():
    """A sub-package missing from setup.cfg's ``packages`` is absent from the wheel (CI installs the wheel)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(PACKAGE.parent / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    on_disk = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert on_disk - listed == set(), "add these to setup.cfg's [options] packages"


def test_public_functions_of_five_or_more_arguments_document_them_under_args():
    """One docstring style (Google's ``Args:`` / ``Returns:``) where a signature is long enough to need it."""
    import ast

    missing = []
    for name, path in MODULES.items():
        if name.startswith("temu.cli"):
            continue

        def visit(body, prefix):
            for node in body:
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    visit(node.body, f"{prefix}{node.name}.")
                elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                    args = [a.arg for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
                    if len(args) >= 5 and "Args:" not in (ast.get_docstring(node) or ""):
                        missing.append(f"{prefix}{node.name}")

        visit(ast.parse(path.read_text()).body, f"{name}.")
    assert missing == []
