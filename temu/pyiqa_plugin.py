"""temu as IQA-PyTorch (pyiqa) metrics: ``temu_iqa`` (= ``temu_iqa-s``) and ``temu_iqa-i``.

This is the only module that imports pyiqa, and only inside :func:`register`. Registration adds
the metric configs to ``pyiqa.default_model_configs.DEFAULT_CONFIGS`` and the arch
``TeMuIQAMetric`` to pyiqa's ``ARCH_REGISTRY`` (lazily: this module is imported only when a
metric is built).

>>> import pyiqa
>>> metric = pyiqa.create_metric("temu_iqa", device="cuda")
>>> metric("photo.jpg")                      # tensor([[0.63]])
>>> pyiqa.create_metric("temu_iqa", head="runs/koniq-s")   # a trained head: directory or Hub repo id
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

#: pyiqa metric name -> pyiqa metric config. Names follow pyiqa's ``metric-variant`` convention.
METRIC_CONFIGS: dict[str, dict[str, Any]] = {
    name: {
        "metric_opts": {"type": "TeMuIQAMetric", "head": head},
        "metric_mode": "NR",
        "lower_better": False,
        "score_range": "0, 1",
    }
    for name, head in (("temu_iqa", "temu-iqa-s"), ("temu_iqa-s", "temu-iqa-s"), ("temu_iqa-i", "temu-iqa-i"))
}

_ARCH = "TeMuIQAMetric"
_UNSET: Any = object()


def register() -> None:
    """Make temu's metrics known to pyiqa. Idempotent; also pyiqa's ``pyiqa.archs`` entry point."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS
    from pyiqa.utils.registry import ARCH_REGISTRY

    for name, config in METRIC_CONFIGS.items():
        DEFAULT_CONFIGS.setdefault(name, copy.deepcopy(config))
    try:
        ARCH_REGISTRY.register_lazy(_ARCH, f"{__name__}:{_ARCH}")
    except AssertionError:  # already registered (by an earlier call or the entry point)
        pass


class TeMuIQAMetric(nn.Module):
    """pyiqa arch wrapping :class:`temu.TeMuIQA`: ``[N, 3, H, W]`` (or ``[N, 1, H, W]``) in [0, 1] -> ``[N, 1]`` scores.

    Args:
        head: preset name, head directory or Hub repo id (``temu.load``'s argument).
        backbone, pretrained, image_size, layers, variant, prompts: override the head's config
            (see :meth:`temu.TeMuIQA.from_pretrained`).
    """

    def __init__(
        self,
        head: str = "temu-iqa-s",
        backbone: str = _UNSET,
        pretrained: str | None = _UNSET,
        image_size: int | None = _UNSET,
        layers: Any = _UNSET,
        variant: str = _UNSET,
        prompts: Any = _UNSET,
    ) -> None:
        super().__init__()
        from .model import TeMuIQA

        given = dict(backbone=backbone, pretrained=pretrained, image_size=image_size, layers=layers, variant=variant, prompts=prompts)
        overrides = {k: v for k, v in given.items() if v is not _UNSET}
        if isinstance(overrides.get("variant"), str):
            overrides["variant"] = overrides["variant"].upper()
        self.model = TeMuIQA.from_pretrained(head, **overrides).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        # as a loss (x requires grad) pyiqa skips its range check, and so do we
        return self.model(x, check_input=not x.requires_grad).unsqueeze(1)
