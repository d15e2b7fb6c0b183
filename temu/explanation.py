"""``temu.explain``: the quality score, plus why: zero-shot attribute scores and maps from the same pass."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .api import iter_scores
from .attributes import AttributeSpec
from .inputs import is_single_image
from .loading import ResizeOn
from .model import TeMuIQA
from .precision import Precision


@dataclass(frozen=True)
class Explanation:
    """One image's score and what it is made of.

    name: the image's path (or a description of an in-memory input).
    score: the quality score in [0, 1], as :func:`temu.score` gives it.
    attributes: attribute name -> score in [0, 1] (higher = more of the positive prompt).
    maps: name -> ``[h, w]`` patch map (float32 numpy): ``"quality"`` (patch quality scores),
        ``"weight"`` (patch weights in the score's average) and one per attribute (patch attribute scores).
    """

    name: str
    score: float
    attributes: Mapping[str, float]
    maps: Mapping[str, np.ndarray] = field(repr=False)


def explain(
    inputs: Any,
    model: TeMuIQA | str | os.PathLike[str] | None = None,
    attributes: AttributeSpec = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    num_workers: int | None = None,
    precision: Precision = "auto",
    compile: bool = False,
    resize_on: ResizeOn = "auto",
) -> Explanation | list[Explanation]:
    """Quality score, attribute scores and patch maps of each image, from one backbone pass per batch.

    inputs, model and the keywords are those of :func:`temu.score`. attributes: None (the
    default set, :data:`temu.DEFAULT_ATTRIBUTES`), a list of its names, or a dict name ->
    (positive prompt, negative prompt). Attributes are zero-shot CLIP judgements (METHOD.md
    step 9's rule with the attribute's prompts, the plain mean over the model's layers); they do
    not depend on a trained head. Returns one :class:`Explanation` for one image, else a list
    in input order. Raises :class:`~temu.InvalidAttributesError` for unusable attributes and
    :class:`~temu.ImageReadError` for an unreadable image.
    """
    single = is_single_image(inputs)
    results = [
        Explanation(
            r.name,
            float(r.score),  # type: ignore[arg-type]  # on_error="raise": every result has a score
            dict(r.attributes or {}),
            {"quality": r.score_map, "weight": r.weight_map, **(r.attribute_maps or {})},  # type: ignore[dict-item]
        )
        for r in iter_scores(
            inputs,
            model,
            batch_size=batch_size,
            device=device,
            progress=progress,
            num_workers=num_workers,
            precision=precision,
            compile=compile,
            resize_on=resize_on,
            with_maps=True,
            attributes=attributes,
        )
    ]
    return results[0] if single and len(results) == 1 else results
