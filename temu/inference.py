"""The one inference core: batches of pixels -> one result per image.

Every entry point scores through :class:`Predictor`: ``temu.score`` / ``iter_scores`` /
``explain``, the corpus engines (this process and Ray), ``temu eval`` and fine-tuning's
validation. For each batch it runs the model under ``torch.inference_mode()`` and the precision's
autocast (:mod:`temu.precision`), copies the outputs to the host, and applies the non-finite rule
(a NaN or infinite score is that image's :class:`~temu.errors.NonFiniteScoreError`, never a
score). The batches come from :mod:`temu.images.loading` (8-bit pixels stay uint8 until the model
converts them, once per batch, on its device).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .errors import non_finite_score
from .images.loading import Batch
from .model import AttributeMaps, QualityMaps, TeMuIQA
from .precision import Precision, autocast_context, check_precision


@dataclass
class ScoreResult:
    """One image's outcome: ``score`` in [0, 1], or ``error`` saying why it could not be scored.

    ``index`` is the image's position among the inputs and ``name`` its path (or a description of an
    in-memory input). ``score_map`` / ``weight_map`` (``[h, w]`` numpy arrays) are filled when maps
    were asked for; ``attributes`` (name -> score in [0, 1]) when attributes were, and with maps also
    ``attribute_maps`` (name -> ``[h, w]``); see :func:`temu.explain`. ``mos`` (in the calibration
    dataset's units) and ``percentile`` (in [0, 100]) are the calibrated score when that scale was
    asked for (``scale=``, :mod:`temu.model.calibration`; a video's reduced score is mapped);
    ``score`` is always the raw score.

    For a video (:mod:`temu.video`), ``score`` and ``attributes`` are its sampled frames' values
    reduced (mean by default), ``frames`` the number of samples, ``frame_scores`` and ``timestamps``
    (seconds from the first frame) one per sample, and, when maps or attributes were asked for,
    ``frame_results`` each sample's own result (its maps, attributes; ``index`` = sample number).
    The maps of the video's own result stay None. For an image these four are None.
    """

    index: int
    name: str
    score: float | None
    error: str | None = None
    score_map: np.ndarray | None = None
    weight_map: np.ndarray | None = None
    attributes: dict[str, float] | None = None
    attribute_maps: dict[str, np.ndarray] | None = None
    frames: int | None = None
    frame_scores: list[float] | None = None
    timestamps: list[float] | None = None
    frame_results: list[ScoreResult] | None = None
    mos: float | None = None
    percentile: float | None = None


class HostOutput(NamedTuple):
    """One group's outputs on the host: scores ``[B]``, and when asked for, maps ``[B, h, w]``,
    attributes ``[B][A]`` and attribute maps ``[B, A, h, w]`` with the attribute ``names``."""

    scores: list[float]
    score_maps: np.ndarray | None = None
    weight_maps: np.ndarray | None = None
    attributes: list[list[float]] | None = None
    attribute_maps: np.ndarray | None = None
    names: tuple[str, ...] = ()


class Predictor:
    """Runs ``model`` on batches of pixels and turns its outputs into :class:`ScoreResult` s.

    Args:
        model: the model, in eval mode, on the device the batches are on.
        precision: the backbone's autocast (:data:`temu.precision.PRECISIONS`).
        attributes: None, or resolved attribute prompt pairs (name -> (positive, negative)) to judge
            in the same pass (:meth:`TeMuIQA.explain`).
        with_maps: also return the ``[h, w]`` patch maps.
    """

    def __init__(
        self,
        model: TeMuIQA,
        *,
        precision: Precision = "auto",
        attributes: Mapping[str, tuple[str, str]] | None = None,
        with_maps: bool = False,
    ) -> None:
        check_precision(precision)
        self.model = model
        self.device = next(model.parameters()).device
        self.autocast = autocast_context(self.device, precision)
        self.attributes = dict(attributes) if attributes is not None else None
        self.with_maps = with_maps

    def forward(self, x: torch.Tensor) -> HostOutput:
        """``[B, 3, h, w]`` pixels (uint8, or floats in [0, 1]) on the model's device -> outputs on the host."""
        with torch.inference_mode(), self.autocast:
            if self.attributes is None:
                out = self.model(x, return_maps=self.with_maps, check_input=False)
            else:
                out = self.model.explain(x, self.attributes, check_input=False)
        return _to_host(out, self.with_maps)

    def results(self, batch: Batch, name_of: Callable[[int], str]) -> list[ScoreResult]:
        """The results of one :class:`~temu.images.loading.Batch`, in index order, non-finite scores as
        errors. ``name_of(index)`` names each image."""
        results: list[ScoreResult] = []
        for indices, x in batch.groups:
            results.extend(self._group_results(indices, self.forward(x), name_of))
        results.sort(key=lambda r: r.index)
        return results

    def _group_results(self, indices: list[int], host: HostOutput, name_of: Callable[[int], str]) -> list[ScoreResult]:
        results = []
        for j, i in enumerate(indices):
            name, value = name_of(i), host.scores[j]
            if (bad := non_finite_score(name, value)) is not None:
                results.append(ScoreResult(i, name, None, str(bad)))
                continue
            result = ScoreResult(i, name, value)
            if host.score_maps is not None and host.weight_maps is not None:
                result.score_map, result.weight_map = host.score_maps[j], host.weight_maps[j]
            if host.attributes is not None:
                result.attributes = dict(zip(host.names, host.attributes[j]))
            if host.attribute_maps is not None:
                result.attribute_maps = dict(zip(host.names, host.attribute_maps[j]))
            results.append(result)
        return results


def _to_host(out: torch.Tensor | QualityMaps | AttributeMaps, with_maps: bool) -> HostOutput:
    """The model's outputs copied to the host (waits for the device)."""
    if isinstance(out, torch.Tensor):
        return HostOutput(out.float().cpu().tolist())
    host = HostOutput(out.score.float().cpu().tolist())
    if with_maps:
        host = host._replace(
            score_maps=out.score_map.float().cpu().numpy(), weight_maps=out.weight_map.float().cpu().numpy()
        )
    if isinstance(out, AttributeMaps):
        host = host._replace(attributes=out.attributes.float().cpu().tolist(), names=tuple(out.names))
        if with_maps:
            host = host._replace(attribute_maps=out.attribute_maps.float().cpu().numpy())
    return host
