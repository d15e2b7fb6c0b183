"""Hyper-parameters of a fine-tuning run (docs/method.md, "Training"), as one typed, validated dataclass."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..precision import check_precision

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one fine-tuning run. Defaults are the paper's (docs/method.md, "Training").

    epochs: passes over the training set (paper: 30; 5 for FLIVE and AVA).
    batch_size: images per optimisation step over all processes (paper: 32). Under torchrun each
        of the W processes takes ``batch_size / W`` (must divide); the PLCC term is computed on
        each process's share.
    lr, weight_decay: Adam's (paper: lr 2e-3; weight decay 0, ours).
    eta_min: floor of the cosine annealing, stepped once per optimisation step over
        ``epochs * steps_per_epoch`` steps (ours).
    mse_weight, plcc_weight: ``mse_weight * MSE + plcc_weight * (1 - PLCC)`` on the originals (ours).
    ldg: Local Distortion Guidance on or off (paper: on).
    ldg_weight: lambda of ``lambda * MSE(q(I~), f * y)`` (ours: 1).
    ldg_ops, ldg_magnitude: RandAugment N and M (of 31 bins) inside the rectangle (paper: 6, 18).
    ldg_size: side range of the rectangle in pixels at ``ldg_reference_size`` (paper: 40-150 at 448);
        scaled proportionally for other input sizes.
    seed: the run's seed (shuffling, LDG draws; the head's initialisation is seeded by the caller).
    precision: autocast for the forward: ``auto`` (:data:`temu.precision.AUTO_RULE`: bf16 on CUDA and on CPUs
        with native bf16, else fp32), ``fp32``, ``bf16``, ``fp16``.
    workers: DataLoader worker processes per process (decode and resize).
    sync_every: read the losses back (and check them) every this many steps; None = 1 on the
        CPU, 25 on CUDA.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    eta_min: float = 0.0
    mse_weight: float = 1.0
    plcc_weight: float = 1.0
    ldg: bool = True
    ldg_weight: float = 1.0
    ldg_ops: int = 6
    ldg_magnitude: int = 18
    ldg_size: tuple[int, int] = (40, 150)
    ldg_reference_size: int = 448
    seed: int = 0
    precision: str = "auto"
    workers: int = 0
    sync_every: int | None = None

    def __post_init__(self) -> None:
        positive = {
            "epochs": self.epochs, "batch_size": self.batch_size, "ldg_ops": self.ldg_ops,
            "ldg_reference_size": self.ldg_reference_size,
        }  # fmt: skip
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (the PLCC loss needs two images), got {self.batch_size}")
        if (
            not isinstance(self.ldg_magnitude, int)
            or isinstance(self.ldg_magnitude, bool)
            or not 0 <= self.ldg_magnitude <= 30
        ):
            raise ValueError(
                f"ldg_magnitude must be an int in 0..30 (RandAugment's 31 bins), got {self.ldg_magnitude!r}"
            )
        for name in ("lr", "weight_decay", "eta_min", "mse_weight", "plcc_weight", "ldg_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.mse_weight == 0 and self.plcc_weight == 0:
            raise ValueError("mse_weight and plcc_weight are both 0: the original images would not be trained on")
        low, high = self.ldg_size
        if not (1 <= low <= high):
            raise ValueError(f"ldg_size must be (low, high) with 1 <= low <= high, got {self.ldg_size!r}")
        object.__setattr__(self, "ldg_size", (int(low), int(high)))
        check_precision(self.precision)
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.sync_every is not None and self.sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {self.sync_every}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ldg_size"] = list(self.ldg_size)
        return out

    def resume_key(self) -> dict[str, Any]:
        """The fields a resumed run must share with the checkpoint (everything that changes the result)."""
        out = self.to_dict()
        for name in ("workers", "sync_every"):
            out.pop(name)
        return out
