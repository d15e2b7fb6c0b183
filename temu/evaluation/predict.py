"""Batched prediction over a labelled dataset, for validation during fine-tuning and for ``temu eval``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.dataset import IQADataset, make_loader
from ..data.records import IQARecord
from ..model import TeMuIQA
from ..precision import autocast_context
from ..scale import MOSScale
from .report import evaluate_scores

__all__ = ["evaluate_model", "predict"]

Gather = Callable[[torch.Tensor], torch.Tensor]


@torch.inference_mode()
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

    ``attribute``: a default attribute's name (:data:`temu.DEFAULT_ATTRIBUTES`) to predict that
    attribute's zero-shot score (:meth:`TeMuIQA.explain`) instead of the quality score.

    The loader is made by :func:`temu.data.make_loader` with ``by_size=True``. In a multi-process
    run each process scores its shard and ``gather`` (concatenate a tensor over the processes,
    e.g. :func:`temu.train.distributed.gather_cat`) gives every process the full result. Items
    that the sampler repeated to pad the shards are written twice with the same score.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    scores: list[torch.Tensor] = []
    indices: list[torch.Tensor] = []
    with autocast_context(device, precision):
        for groups in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress, file=sys.stderr):
            for images, _, idx in groups:
                images = images.to(device, non_blocking=True)
                if attribute is None:
                    out = model(images, check_input=False)
                else:
                    out = model.explain(images, [attribute], check_input=False).attributes[:, 0]
                scores.append(out.float())
                indices.append(idx.to(device, non_blocking=True))
    model.train(was_training)
    local_scores = torch.cat(scores) if scores else torch.zeros(0, device=device)
    local_idx = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long, device=device)
    if gather is not None:
        local_scores, local_idx = gather(local_scores), gather(local_idx)
    result = np.full(size, np.nan)
    result[local_idx.cpu().numpy()] = local_scores.double().cpu().numpy()
    missing = np.flatnonzero(np.isnan(result))
    if missing.size:
        raise RuntimeError(
            f"{missing.size} of {size} items got no score (first index {missing[0]}); this is a bug in temu"
        )
    return result


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
    """Score ``records`` with ``model`` (on its device); returns ``(pred, target, metrics)``, target = normalised MOS.

    ``attribute``: predict that default attribute's score instead of quality (see :func:`predict`).
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
    pred = predict(
        model,
        loader,
        size=len(dataset),
        device=device,
        precision=precision,
        progress=progress,
        desc="temu eval",
        attribute=attribute,
    )
    target = np.asarray(scale.normalise([r.mos for r in records]), dtype=np.float64)
    return pred, target, evaluate_scores(pred, target)
