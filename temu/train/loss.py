"""The training loss: ``mse_weight * MSE + plcc_weight * (1 - PLCC)`` plus LDG's MSE (docs/method.md, "Loss" and "Local Distortion Guidance")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["loss_parts", "pearson_torch"]


def pearson_torch(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Differentiable Pearson correlation of two score vectors, a scalar tensor.

    ``pred`` and ``target`` hold one score per image, shape ``(B,)`` or ``(B, 1)``,
    with ``B >= 2``. ``eps`` is added under each square root so a constant batch
    gives a finite value (0) and finite gradients instead of NaN. Use
    ``1 - pearson_torch(pred, target)`` as the PLCC loss.
    """
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(
            f"pred and target must be torch tensors, got {type(pred).__name__} "
            f"and {type(target).__name__}; use temu.evaluation.metrics.plcc for arrays"
        )
    p = pred.reshape(-1)
    t = target.reshape(-1).to(p.dtype)
    if p.shape[0] != t.shape[0]:
        raise ValueError(
            f"pred and target must have the same number of elements, got "
            f"{p.shape[0]} (shape {tuple(pred.shape)}) and {t.shape[0]} (shape {tuple(target.shape)})"
        )
    if p.shape[0] < 2:
        raise ValueError(f"need a batch of at least 2 scores, got {p.shape[0]}")
    pc = p - p.mean()
    tc = t - t.mean()
    return (pc * tc).sum() / (torch.sqrt((pc * pc).sum() + eps) * torch.sqrt((tc * tc).sum() + eps))


def loss_parts(
    scores: torch.Tensor,
    targets: torch.Tensor,
    ldg_scores: torch.Tensor | None,
    ldg_targets: torch.Tensor | None,
    *,
    mse_weight: float = 1.0,
    plcc_weight: float = 1.0,
    ldg_weight: float = 1.0,
) -> torch.Tensor:
    """The training loss and its parts (docs/method.md, "Training").

    Args:
        scores, targets: ``[N]`` predictions and normalised MOS of the originals.
        ldg_scores, ldg_targets: ``[N]`` predictions for the distorted copies and their targets
            ``f * y``; None without LDG (the LDG part is 0).
        mse_weight, plcc_weight, ldg_weight: the parts' weights.

    Returns:
        ``[4]``: ``[total, mse, 1 - plcc, ldg_mse]``, total = mse_weight * mse +
        plcc_weight * (1 - plcc) + ldg_weight * ldg_mse.
    """
    mse = F.mse_loss(scores, targets)
    plcc = 1.0 - pearson_torch(scores, targets)
    total = mse_weight * mse + plcc_weight * plcc
    if ldg_scores is not None and ldg_targets is not None:
        ldg = F.mse_loss(ldg_scores, ldg_targets)
        total = total + ldg_weight * ldg
    else:
        ldg = torch.zeros((), device=scores.device)
    return torch.stack([total, mse, plcc, ldg])
