"""Fine-tuning a TeMu-IQA head: the loop, its config, checkpoints, multi-process helpers, the loss,
Local Distortion Guidance (LDG: ``ldg``, ``cwssim``), the run's files and plots, and the protocol
of several runs on several splits (``protocol.run_splits``).

Nothing here is imported by scoring; the ``temu-finetune`` command (:mod:`temu.cli.finetune`)
drives it.
"""

from .config import TrainConfig
from .protocol import ProtocolResult, SplitResult, run_splits
from .trainer import CHECKPOINT_NAME, CURVES_NAME, METRIC_COLUMNS, METRICS_NAME, StepInfo, Trainer, TrainResult

__all__ = [
    "CHECKPOINT_NAME",
    "CURVES_NAME",
    "METRICS_NAME",
    "METRIC_COLUMNS",
    "ProtocolResult",
    "SplitResult",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "run_splits",
]
