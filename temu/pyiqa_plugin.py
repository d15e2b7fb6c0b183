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
>>> pyiqa.create_metric("temu_iqa", head="runs/koniq-s-cal", scale="mos")   # a calibrated head, in MOS units

With ``scale="mos"`` or ``"percentile"`` the metric's ``score_range`` and ``lower_better`` are the
calibration's. pyiqa's ``InferenceModel`` copies both from the metric's config before it builds the
arch, so the arch corrects them on the ``InferenceModel`` as it is attached to it (``net``), through
torch's module-registration hook (:func:`torch.nn.modules.module.register_module_module_registration_hook`).
``pyiqa.default_model_configs.DEFAULT_CONFIGS["temu_iqa"]["score_range"]`` stays ``"0, 1"``: it is
per metric name, not per head.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

from _temu_pyiqa_hook import METRIC_CONFIGS, add_arch, add_configs

from .errors import CalibrationError
from .model.calibration import check_scales
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
        scale: ``"raw"`` (in [0, 1]), ``"mos"`` or ``"percentile"``: the head's calibration, as in
            :func:`temu.score` (not differentiable: ``as_loss`` needs ``"raw"``).

    Attributes:
        score_range: pyiqa's range string of the scores, e.g. ``"0, 1"``, ``"10, 90"`` (a MOS
            calibration's range), ``"0, 100"``; lower_better: True for a MOS map to a DMOS dataset.
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
        scale: str = "raw",
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
        check_scales(self.model.calibration, [scale], source=str(head))
        self.scale = scale
        calibration = self.model.calibration
        low, high = calibration.score_range(scale) if calibration is not None else (0.0, 1.0)
        self.score_range = f"{low:g}, {high:g}"
        self.lower_better = calibration is not None and calibration.lower_better(scale)
        if scale != "raw":
            _tell_inference_model(self)

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
        scores = scores.float()
        if self.scale != "raw" and self.model.calibration is not None:
            if scores.requires_grad:
                raise CalibrationError(
                    f"scale={self.scale!r} is not differentiable; as a loss (as_loss=True) use scale='raw'"
                )
            values = self.model.calibration.apply(scores.cpu().numpy(), self.scale)
            scores = torch.as_tensor(values, dtype=torch.float32, device=scores.device)
        return scores.unsqueeze(1)


#: Calibrated metrics not yet attached to a pyiqa InferenceModel (see the module docstring).
_PENDING: weakref.WeakSet[TeMuIQAMetric] = weakref.WeakSet()
_HOOK: list[Any] = []


def _tell_inference_model(metric: TeMuIQAMetric) -> None:
    """Have pyiqa's ``InferenceModel`` report ``metric``'s ``score_range`` and ``lower_better`` once it holds
    ``metric`` as its ``net``: one process-wide module-registration hook, installed on first use, that
    does nothing for any other module."""
    _PENDING.add(metric)
    if not _HOOK:
        _HOOK.append(torch.nn.modules.module.register_module_module_registration_hook(_on_register))


def _on_register(parent: nn.Module, name: str, child: Any) -> None:
    if not _PENDING or not isinstance(child, TeMuIQAMetric) or child not in _PENDING:
        return
    _PENDING.discard(child)
    if name == "net" and hasattr(parent, "score_range") and hasattr(parent, "lower_better"):
        parent.score_range = child.score_range
        parent.lower_better = child.lower_better


def is_8bit(x: torch.Tensor) -> bool:
    """Whether the float tensor ``x`` holds 8-bit pixels exactly: every value is ``k / 255`` for an int k in 0..255."""
    if not x.is_floating_point() or x.numel() == 0:
        return False
    with torch.no_grad():
        levels = x.float().mul(255).round_()
        return bool(((levels >= 0) & (levels <= 255) & (levels.div(255) == x.float())).all())
