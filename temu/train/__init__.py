"""Fine-tuning a TeMu-IQA head: the loop, its config, checkpoints, multi-process helpers, the loss,
Local Distortion Guidance (LDG: ``ldg``, ``cwssim``) and the run's plots.

Nothing here is imported by scoring; the ``temu-finetune`` command (:mod:`temu.cli.finetune`)
drives it.
"""

from .config import TrainConfig
from .trainer import CHECKPOINT_NAME, CURVES_NAME, METRIC_COLUMNS, METRICS_NAME, StepInfo, Trainer, TrainResult

__all__ = [
    "CHECKPOINT_NAME",
    "CURVES_NAME",
    "METRICS_NAME",
    "METRIC_COLUMNS",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "Trainer",
]
