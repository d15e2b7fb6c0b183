"""Evaluating a model on labelled data: metrics (``metrics``), the logistic fit behind the fitted PLCC
(``fitting``), batched prediction (``predict``), reports (``report``) and calibration (``calibration``)."""

from .calibration import calibrate, fit_mos_map, read_reference, reference_percentiles
from .fitting import LogisticFit, fit_logistic4, fitted_plcc, logistic4
from .metrics import evaluate, krcc, plcc, rmse, srcc
from .predict import evaluate_model, predict, predict_records
from .report import (
    METRIC_LABELS,
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
    "METRIC_LABELS",
    "EvalReport",
    "LogisticFit",
    "SplitSummary",
    "calibrate",
    "evaluate",
    "evaluate_model",
    "evaluate_scores",
    "fit_logistic4",
    "fit_mos_map",
    "fitted_plcc",
    "format_report",
    "krcc",
    "logistic4",
    "plcc",
    "predict",
    "predict_records",
    "read_reference",
    "reference_percentiles",
    "random_subsets",
    "rmse",
    "split_metrics",
    "srcc",
    "target_scale",
]
