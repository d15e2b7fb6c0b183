"""Typed configuration of a TeMu-IQA model, and its JSON form (``config.json`` beside the head weights)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import WeightsError
from .scale import MOSScale

#: Version of the ``config.json`` layout written by :meth:`TeMuConfig.to_dict`.
CONFIG_FORMAT = 1

VARIANTS = ("S", "I")

#: Default :attr:`TeMuConfig.max_pixels`: 1024 x 1024. The largest images of the common IQA
#: datasets (KonIQ-10k, 1024x768) fit under it, so a native-size head scores them at the size it
#: was trained on, while a 48 MP photo (8000x6000, about 245,000 ViT-L/14 patch tokens) is
#: scored at 1182x886.
DEFAULT_MAX_PIXELS = 1024 * 1024

LayerSpec = Union[None, int, Sequence[int]]  # noqa: UP007 (a runtime alias: `|` needs Python 3.10's types)


@dataclass(frozen=True)
class HeadConfig:
    """Hyper-parameters of the trainable head (docs/method.md: the adapter, the layer weights and variant I; all "ours").

    adapter_dim: bottleneck width of the zero-initialised residual adapter in the joint
        image-text space; 0 disables it.
    learn_layer_weights: learn softmax weights over the chosen layers (initialised uniform,
        so the untrained model averages the layers: Fig. 9 option (c)); False keeps the plain mean.
    metanet_reduction: variant I only; the CoCoOp meta-net maps the image vector (embed_dim)
        through a hidden layer of embed_dim // metanet_reduction units to the text width.
    """

    adapter_dim: int = 64
    learn_layer_weights: bool = True
    metanet_reduction: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.adapter_dim, int) or self.adapter_dim < 0:
            raise ValueError(f"adapter_dim must be an int >= 0 (0 disables the adapter), got {self.adapter_dim!r}")
        if not isinstance(self.metanet_reduction, int) or self.metanet_reduction < 1:
            raise ValueError(f"metanet_reduction must be an int >= 1, got {self.metanet_reduction!r}")


@dataclass(frozen=True)
class TeMuConfig:
    """Everything needed to rebuild a :class:`~temu.TeMuIQA` besides the head's weights.

    backbone: an open_clip model name (``"ViT-L-14"``), the path of an open_clip model-config
        JSON file, or ``"hf-hub:org/repo"``.
    pretrained: an open_clip pretrained tag (``"openai"``), ``"hf-hub:org/repo"``, a local
        checkpoint file, or None for random weights (tests only).
    variant: ``"S"`` (static prompts) or ``"I"`` (CoCoOp instance-conditional prompts).
    layers: the transformer layers whose tokens are aggregated, numbered from 1 as in the paper
        (layer 1 = output of the first block). None = all layers, an int k = the first k layers,
        or an explicit list.
    image_size: inputs are resized to this square size; None keeps each input's own size,
        cropped (centred) down to a multiple of the patch size.
    max_pixels: with ``image_size=None`` only: an input with more pixels is downscaled (aspect
        ratio kept) to at most this many first, with a warning naming it, since attention's cost
        grows with the square of the pixel count. None = no cap. Written to config.json only when
        it differs from :data:`DEFAULT_MAX_PIXELS`.
    prompts: the (positive, negative) antonym prompts.
    mean, std: per-channel normalisation of [0, 1] pixels; None takes the backbone's own
        (open_clip's pretrained config), which is then written here when the model is saved.
    mos_scale: the :class:`~temu.MOSScale` a fine-tuned head was trained on, so predictions in
        [0, 1] can be mapped back to the dataset's units; None for untrained heads. A dict of its
        fields (``{"low", "high", "lower_better"}``, as config.json holds it) is accepted too.
    """

    backbone: str = "ViT-L-14"
    pretrained: str | None = "openai"
    variant: str = "S"
    layers: LayerSpec = None
    image_size: int | None = 448
    prompts: tuple[str, str] = ("Good photo.", "Bad photo.")
    head: HeadConfig = field(default_factory=HeadConfig)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    mos_scale: MOSScale | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 1):
            raise ValueError(f"image_size must be a positive int or None (native size), got {self.image_size!r}")
        if self.max_pixels is not None and (
            not isinstance(self.max_pixels, int) or isinstance(self.max_pixels, bool) or self.max_pixels < 1
        ):
            raise ValueError(f"max_pixels must be a positive int or None (no cap), got {self.max_pixels!r}")
        prompts = tuple(self.prompts)
        if len(prompts) != 2 or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError(
                f"prompts must be two non-empty strings (positive, negative), e.g. ('Good photo.', 'Bad photo.'); "
                f"got {self.prompts!r}"
            )
        object.__setattr__(self, "prompts", prompts)
        if isinstance(self.layers, (list, tuple)):
            object.__setattr__(self, "layers", tuple(self.layers))
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(float(v) for v in value)
                if len(value) != 3:
                    raise ValueError(f"{name} must have 3 values (R, G, B), got {value!r}")
                object.__setattr__(self, name, value)
        if self.std is not None and min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std!r}")
        if isinstance(self.mos_scale, Mapping):
            object.__setattr__(self, "mos_scale", MOSScale.from_dict(self.mos_scale))
        elif self.mos_scale is not None and not isinstance(self.mos_scale, MOSScale):
            raise ValueError(f"mos_scale must be a MOSScale, a dict of its fields or None, got {self.mos_scale!r}")

    def replace(self, **changes: Any) -> TeMuConfig:
        """A copy with some fields changed; ``head`` may be given as a dict of HeadConfig fields."""
        if isinstance(changes.get("head"), dict):
            changes["head"] = dataclasses.replace(self.head, **changes["head"])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists; ``max_pixels`` only when not the default, so
        config.json files stay readable by temu versions without it)."""
        out = dataclasses.asdict(self)
        if self.max_pixels == DEFAULT_MAX_PIXELS:
            del out["max_pixels"]
        out["prompts"] = list(self.prompts)
        if isinstance(self.layers, tuple):
            out["layers"] = list(self.layers)
        for name in ("mean", "std"):
            if out[name] is not None:
                out[name] = list(out[name])
        out["mos_scale"] = self.mos_scale.to_dict() if self.mos_scale is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TeMuConfig:
        """Inverse of :meth:`to_dict`. Unknown keys are an error, not silently dropped."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WeightsError(
                f"{source}: unknown model config keys {unknown}; this temu knows {sorted(known)}. "
                "The file was probably written by a newer temu: upgrade temu (pip install -U temu-iqa)."
            )
        head = data.pop("head", None) or {}
        head_known = {f.name for f in dataclasses.fields(HeadConfig)}
        head_unknown = sorted(set(head) - head_known)
        if head_unknown:
            raise WeightsError(
                f"{source}: unknown head config keys {head_unknown}; this temu knows {sorted(head_known)}."
            )
        try:
            return cls(head=HeadConfig(**head), **data)
        except (TypeError, ValueError) as err:
            raise WeightsError(f"{source}: invalid model config: {err}") from err


def read_config_file(path: str | Path) -> tuple[TeMuConfig, dict[str, Any]]:
    """Read a ``config.json`` written by :meth:`TeMuIQA.save_pretrained`.

    Returns the model config and the file's metadata (``format``, ``temu_version``, ``head_shapes``).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(
            f"{path}: no config.json; a temu head directory holds config.json and model.safetensors"
        ) from None
    except (OSError, ValueError) as err:
        raise WeightsError(f"{path}: not a readable JSON file ({err})") from err
    if not isinstance(raw, dict) or "model" not in raw:
        raise WeightsError(
            f"{path}: expected a temu config with a 'model' section (written by TeMuIQA.save_pretrained), "
            f"found keys {sorted(raw) if isinstance(raw, dict) else type(raw).__name__}"
        )
    fmt = raw.get("format")
    if fmt != CONFIG_FORMAT:
        raise WeightsError(f"{path}: config format {fmt!r} is not supported; this temu reads format {CONFIG_FORMAT}.")
    meta = {k: v for k, v in raw.items() if k != "model"}
    return TeMuConfig.from_dict(raw["model"], source=str(path)), meta


def resolve_layers(layers: None | int | Sequence[int], depth: int) -> list[int]:
    """The chosen layers as sorted 0-based block indices (docs/method.md, "Tokens of every layer").

    ``None`` = all ``depth`` layers; an int k = layers 1..k; a list = those layers, numbered
    from 1 as in the paper (layer 1 is the output of the first transformer block).
    """
    if layers is None:
        return list(range(depth))
    if isinstance(layers, bool):
        raise ValueError(f"layers must be None, an int or a list of ints, got {layers!r}")
    if isinstance(layers, int):
        if not 1 <= layers <= depth:
            raise ValueError(
                f"layers={layers}: the backbone has {depth} layers; pass 1..{depth} (the first k layers) or None for all"
            )
        return list(range(layers))
    chosen = list(layers)
    if not chosen or not all(isinstance(v, int) and not isinstance(v, bool) for v in chosen):
        raise ValueError(f"layers must be a non-empty list of ints numbered 1..{depth}, got {layers!r}")
    bad = [v for v in chosen if not 1 <= v <= depth]
    if bad:
        raise ValueError(
            f"layers {bad} do not exist: the backbone has layers 1..{depth}, numbered from 1 as in the paper "
            "(layer 1 = the output of the first transformer block)"
        )
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"layers lists a layer twice: {layers!r}")
    return sorted(v - 1 for v in chosen)
