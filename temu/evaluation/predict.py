"""Batched prediction over a labelled dataset, for validation during fine-tuning and for ``temu eval``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.dataset import IQADataset, make_loader
from ..data.records import IQARecord
from ..errors import NonFiniteScoreError
from ..images.loading import Batch
from ..inference import Predictor
from ..model import TeMuIQA
from ..model.attributes import resolve_attributes
from ..model.scale import MOSScale
from .report import evaluate_scores

__all__ = ["evaluate_model", "predict", "predict_records"]

Gather = Callable[[torch.Tensor], torch.Tensor]


def predict(
    model: TeMuIQA,
    loader: DataLoader,
    *,
    size: int,
    device: torch.device,
    precision: str = "auto",
    gather: Gather | None = None,
    progress: bool = False,
    desc: str = "eval",
    attribute: str | None = None,
) -> np.ndarray:
    """Scores ``[size]`` (float64 in [0, 1]) of every item of ``loader.dataset``, in dataset order.

    Runs through the inference core (:class:`temu.inference.Predictor`), as :func:`temu.score` does.

    Args:
        model: the model, on ``device``.
        loader: made by :func:`temu.data.make_loader` with ``by_size=True`` over an :class:`IQADataset`.
        size: the number of items in the dataset.
        device: where the batches go.
        precision: the backbone's autocast (:mod:`temu.precision`).
        gather: in a multi-process run, concatenates a tensor over the processes (e.g.
            :func:`temu.train.distributed.gather_cat`), so every process gets the full result. Items the
            sampler repeated to pad the shards are written twice with the same score.
        progress: a progress bar on stderr; desc: its label.
        attribute: a default attribute's name (:data:`temu.DEFAULT_ATTRIBUTES`) to predict that attribute's
            zero-shot score instead of the quality score.

    Raises:
        NonFiniteScoreError: an image scored NaN or infinite (its path is named).
    """
    from tqdm.auto import tqdm

    records = loader.dataset.records
    pairs = None if attribute is None else resolve_attributes([attribute])
    was_training = model.training
    model.eval()
    predictor = Predictor(model, precision=precision, attributes=pairs)
    scores: list[float] = []
    indices: list[int] = []
    try:
        for groups in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress, file=sys.stderr):
            batch = Batch([(idx.tolist(), images) for images, _, idx in groups]).to(device)
            for result in predictor.results(batch, lambda i: str(records[i].path)):
                if result.error is not None:
                    raise NonFiniteScoreError(result.error)
                scores.append(result.score if attribute is None else result.attributes[attribute])
                indices.append(result.index)
    finally:
        model.train(was_training)
    local_scores = torch.tensor(scores, dtype=torch.float64, device=device)
    local_idx = torch.tensor(indices, dtype=torch.long, device=device)
    if gather is not None:
        local_scores, local_idx = gather(local_scores), gather(local_idx)
    result = np.full(size, np.nan)
    result[local_idx.cpu().numpy()] = local_scores.cpu().numpy()
    missing = np.flatnonzero(np.isnan(result))
    if missing.size:
        raise RuntimeError(
            f"{missing.size} of {size} items got no score (first index {missing[0]}); this is a bug in temu"
        )
    return result


def predict_records(
    model: TeMuIQA,
    records: Sequence[IQARecord],
    scale: MOSScale,
    *,
    batch_size: int = 32,
    workers: int = 0,
    precision: str = "auto",
    progress: bool = False,
    desc: str = "temu eval",
    attribute: str | None = None,
) -> np.ndarray:
    """Scores of ``records`` by ``model`` (on its device), in record order.

    Args:
        model: the model.
        records: the labelled images.
        scale: normalises the MOS the loader carries (unused here).
        batch_size, workers, precision: as for :func:`temu.iter_scores` (``workers``: ``num_workers``).
        progress: a progress bar, labelled ``desc``.
        desc: the bar's label.
        attribute: score that default attribute instead of quality (see :func:`predict`).

    Returns:
        ``[len(records)]`` float64 in [0, 1].
    """
    device = next(model.parameters()).device
    dataset = IQADataset.for_model(records, model.input_size, scale)
    loader = make_loader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        seed=0,
        drop_last=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        by_size=True,
    )
    return predict(
        model,
        loader,
        size=len(dataset),
        device=device,
        precision=precision,
        progress=progress,
        desc=desc,
        attribute=attribute,
    )


def evaluate_model(
    model: TeMuIQA,
    records: Sequence[IQARecord],
    scale: MOSScale,
    *,
    batch_size: int = 32,
    workers: int = 0,
    precision: str = "auto",
    progress: bool = False,
    attribute: str | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Score ``records`` with ``model`` (on its device) and compare with their MOS.

    Args:
        model, records, batch_size, workers, precision, progress, attribute: as for :func:`predict_records`.
        scale: normalises the records' MOS to [0, 1], higher is better.

    Returns:
        ``(pred, target, metrics)``: ``[N]`` scores, ``[N]`` normalised MOS, and the metrics (SRCC, PLCC, ...).
    """
    pred = predict_records(
        model,
        records,
        scale,
        batch_size=batch_size,
        workers=workers,
        precision=precision,
        progress=progress,
        attribute=attribute,
    )
    target = np.asarray(scale.normalise([r.mos for r in records]), dtype=np.float64)
    return pred, target, evaluate_scores(pred, target)
