"""Start-up hook that makes ``import pyiqa`` know temu's metrics, without ``import temu``.

``temu-pyiqa-hook.pth`` (installed at the top of site-packages) imports this module when the
interpreter starts. It is stdlib-only and imports nothing else; torch, pyiqa and temu are not
loaded. It puts one finder at the front of ``sys.meta_path``, which watches for two pyiqa
modules and otherwise returns None at once:

- after ``pyiqa.default_model_configs`` runs, temu's metric configs are added to ``DEFAULT_CONFIGS``;
- after ``pyiqa.utils.registry`` runs, ``ARCH_REGISTRY.register_lazy`` names temu's arch.
  The arch's module, and with it torch and temu, is imported only when a metric is built.

Both steps are dict updates and cannot break ``import pyiqa``. A failure becomes a
RuntimeWarning. ``import temu`` calls :func:`activate` too (for installs where no .pth ran).
Set ``TEMU_PYIQA_HOOK=0`` to turn it off.
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

_CONFIGS_MODULE = "pyiqa.default_model_configs"
_REGISTRY_MODULE = "pyiqa.utils.registry"


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


_ACTIONS = {_CONFIGS_MODULE: add_configs, _REGISTRY_MODULE: add_arch}


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


class _Finder:
    """Finds nothing itself: for the two watched modules it asks the other finders and wraps the loader."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        action = _ACTIONS.get(fullname)
        if action is None:
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module):
            original(module)
            _run(action, module)

        loader.exec_module = exec_module  # this loader instance serves this one module
        return spec


def activate():
    """Install the finder, or act at once on watched modules already imported. Idempotent."""
    if os.environ.get("TEMU_PYIQA_HOOK", "1") == "0":
        return
    pending = False
    for name, action in _ACTIONS.items():
        module = sys.modules.get(name)
        if module is not None:
            _run(action, module)
        else:
            pending = True
    if pending and _Finder not in sys.meta_path:
        sys.meta_path.insert(0, _Finder)
