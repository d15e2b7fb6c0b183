"""Evaluating a model on labelled data: metrics (``metrics``), batched prediction (``predict``) and reports (``report``)."""

from .metrics import evaluate, krcc, plcc, rmse, srcc
from .predict import evaluate_model, predict
from .report import (
    METRICS,
    EvalReport,
    SplitSummary,
    evaluate_scores,
    format_report,
    random_subsets,
    split_metrics,
    target_scale,
)

__all__ = [
    "METRICS",
    "EvalReport",
    "SplitSummary",
    "evaluate",
    "evaluate_model",
    "evaluate_scores",
    "format_report",
    "krcc",
    "plcc",
    "predict",
    "random_subsets",
    "rmse",
    "split_metrics",
    "srcc",
    "target_scale",
]
