"""temu as IQA-PyTorch (pyiqa) metrics: ``temu_iqa`` (= ``temu_iqa-s``) and ``temu_iqa-i``.

This is the only module that imports pyiqa, and only inside :func:`register`. Registration adds
the metric configs to ``pyiqa.default_model_configs.DEFAULT_CONFIGS`` and the arch
``TeMuIQAMetric`` to pyiqa's ``ARCH_REGISTRY`` (lazily: this module is imported only when a
metric is built). The metric configs live in ``_temu_pyiqa_hook``: the start-up hook that registers
them when pyiqa is imported, so ``import temu`` is not needed first.

>>> import pyiqa
>>> metric = pyiqa.create_metric("temu_iqa", device="cuda")
>>> metric("photo.jpg")                      # a [1, 1] tensor in [0, 1]
>>> pyiqa.create_metric("temu_iqa", head="runs/koniq-s")   # a trained head: directory or Hub repo id
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from _temu_pyiqa_hook import METRIC_CONFIGS, add_arch, add_configs

from .precision import Precision, autocast_context, check_precision

__all__ = ["METRIC_CONFIGS", "TeMuIQAMetric", "register"]

_UNSET: Any = object()


def register() -> None:
    """Make temu's metrics known to pyiqa (imports pyiqa). Idempotent; also pyiqa's ``pyiqa.archs`` entry point."""
    import pyiqa.default_model_configs
    import pyiqa.utils.registry

    add_configs(pyiqa.default_model_configs)
    add_arch(pyiqa.utils.registry)


class TeMuIQAMetric(nn.Module):
    """pyiqa arch wrapping :class:`temu.TeMuIQA`: ``[N, 3, H, W]`` (or ``[N, 1, H, W]``) in [0, 1] -> ``[N, 1]`` scores.

    Args:
        head: preset name, head directory or Hub repo id (``temu.load``'s argument).
        backbone, pretrained, image_size, layers, variant, prompts: override the head's config
            (see :meth:`temu.TeMuIQA.from_pretrained`).
        precision: the backbone's autocast, as in :func:`temu.score` (``"auto"``: see
            :data:`temu.precision.AUTO_RULE`; ``"fp32"`` turns it off). The head runs in fp32.
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
        precision: Precision = "auto",
    ) -> None:
        super().__init__()
        from .model import TeMuIQA

        self.precision = check_precision(precision)
        given = dict(
            backbone=backbone,
            pretrained=pretrained,
            image_size=image_size,
            layers=layers,
            variant=variant,
            prompts=prompts,
        )
        overrides = {k: v for k, v in given.items() if v is not _UNSET}
        if isinstance(overrides.get("variant"), str):
            overrides["variant"] = overrides["variant"].upper()
        self.model = TeMuIQA.from_pretrained(head, **overrides).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` (or ``[N, 1, H, W]``) in [0, 1] -> ``[N, 1]`` scores.

        pyiqa reads a path into floats ``k / 255``; such 8-bit pixels are given to the model as uint8,
        so they are resized as :func:`temu.score` resizes the file (pyiqa's reader applies no EXIF
        orientation). Other floats, and inputs that need gradients (``as_loss``), are used as they are.
        """
        if x.dim() == 4 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if not x.requires_grad and is_8bit(x):
            x = x.mul(255).round_().to(torch.uint8)
        # as a loss (x requires grad) pyiqa skips its range check, and so do we
        with autocast_context(x.device, self.precision):
            scores = self.model(x, check_input=not x.requires_grad)
        return scores.float().unsqueeze(1)


def is_8bit(x: torch.Tensor) -> bool:
    """Whether the float tensor ``x`` holds 8-bit pixels exactly: every value is ``k / 255`` for an int k in 0..255."""
    if not x.is_floating_point() or x.numel() == 0:
        return False
    with torch.no_grad():
        levels = x.float().mul(255).round_()
        return bool(((levels >= 0) & (levels <= 255) & (levels.div(255) == x.float())).all())
