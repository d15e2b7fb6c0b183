"""Start-up hook that makes ``import pyiqa`` list temu's metrics, without ``import temu``.

pyiqa finds architectures through its own plugin mechanism, the ``pyiqa.archs`` entry-point group
(temu registers ``TeMuIQAMetric`` there, in setup.cfg). Metric *names* have no such mechanism:
``pyiqa.create_metric`` and ``pyiqa.list_models`` read the dict
``pyiqa.default_model_configs.DEFAULT_CONFIGS``. So ``temu-pyiqa-hook.pth`` (installed at the top of
site-packages) imports this stdlib-only module at start-up, and it does one narrow thing:

- if pyiqa is not installed, nothing at all;
- otherwise one finder at the front of ``sys.meta_path`` answers only for the module
  ``pyiqa.default_model_configs``: it takes the spec the other finders give and runs that module's
  own loader unchanged, then adds temu's metric configs to ``DEFAULT_CONFIGS``. Every other import
  gets None at once, and no loader object is modified.

A failure becomes a RuntimeWarning, never a broken ``import pyiqa``. ``import temu`` calls
:func:`activate` too (for installs where no .pth ran); where entry points are not available either
(a zipapp without package metadata), call ``temu.pyiqa_plugin.register()`` after importing pyiqa.
Set ``TEMU_PYIQA_HOOK=0`` to turn the hook off.
"""

import os
import sys

#: pyiqa metric name -> pyiqa metric config (the single source; temu.pyiqa_plugin re-exports it).
METRIC_CONFIGS = {
    name: {
        "metric_opts": {"type": "TeMuIQAMetric", "head": head},
        "metric_mode": "NR",
        "lower_better": False,
        "score_range": "0, 1",
    }
    for name, head in (("temu_iqa", "temu-iqa-s"), ("temu_iqa-s", "temu-iqa-s"), ("temu_iqa-i", "temu-iqa-i"))
}
ARCH_NAME = "TeMuIQAMetric"
ARCH_PATH = "temu.pyiqa_plugin:TeMuIQAMetric"

CONFIGS_MODULE = "pyiqa.default_model_configs"
REGISTRY_MODULE = "pyiqa.utils.registry"


def add_configs(module):
    """Add temu's metric configs to a ``pyiqa.default_model_configs`` module (idempotent)."""
    import copy

    for name, config in METRIC_CONFIGS.items():
        module.DEFAULT_CONFIGS.setdefault(name, copy.deepcopy(config))


def add_arch(module):
    """Name temu's arch in a ``pyiqa.utils.registry`` module's ARCH_REGISTRY, lazily (idempotent)."""
    registry = module.ARCH_REGISTRY
    try:
        registry.register_lazy(ARCH_NAME, ARCH_PATH)
    except AssertionError:  # already there
        pass


def _run(action, module):
    try:
        action(module)
    except Exception as exc:  # never break `import pyiqa` for everybody
        import warnings

        warnings.warn(
            f"temu could not register its metrics with pyiqa ({exc!r}); `import temu` before creating "
            "them, or set TEMU_PYIQA_HOOK=0 to silence this",
            RuntimeWarning,
            stacklevel=2,
        )


class _ConfigsLoader:
    """Runs the loader the import system found for ``pyiqa.default_model_configs``, then adds the configs."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _run(add_configs, module)

    def __getattr__(self, name):  # everything else (get_source, resource readers, ...) is the real loader's
        return getattr(self.loader, name)


class _Finder:
    """Finds nothing itself; for ``pyiqa.default_model_configs`` it asks the finders after it."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != CONFIGS_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ConfigsLoader(spec.loader)  # this spec object is new and ours; the loader is untouched
        return spec


def _pyiqa_installed():
    """Whether an import of pyiqa would find it (asks the finders, as importlib.util.find_spec would, without importing it)."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if finder is _Finder or find_spec is None:
            continue
        try:
            if find_spec("pyiqa", None) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def activate():
    """Add the configs now if pyiqa is imported already, else install the finder if pyiqa is installed. Idempotent."""
    if os.environ.get("TEMU_PYIQA_HOOK", "1") == "0":
        return
    configs = sys.modules.get(CONFIGS_MODULE)
    if configs is not None:
        _run(add_configs, configs)
        registry = sys.modules.get(REGISTRY_MODULE)
        if registry is not None:  # pyiqa imported before temu, where entry points may not have run yet
            _run(add_arch, registry)
    elif _Finder not in sys.meta_path and _pyiqa_installed():
        sys.meta_path.insert(0, _Finder)
