"""Typed configuration of a TeMu-IQA model, and its JSON form (``config.json`` beside the head weights)."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import ConfigError, WeightsError
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

#: Accepted :attr:`TeMuConfig.image_size` (square side, pixels): beyond 4096 a ViT-L/14 sees 85,000+ tokens.
IMAGE_SIZE_RANGE = (16, 4096)
#: Accepted :attr:`TeMuConfig.max_pixels`: up to 8192 x 8192 (a 48 MP photo fits uncapped).
MAX_PIXELS_RANGE = (16 * 16, 8192 * 8192)
#: Largest :attr:`HeadConfig.adapter_dim` anywhere; with a backbone, at most 4 x its embed_dim.
ADAPTER_DIM_MAX = 16384
ADAPTER_DIM_PER_EMBED_DIM = 4


def _int_field(name: str, value: Any, low: int, high: int | None, expected: str) -> int:
    """``value`` as an int in ``low..high`` (None: no upper bound), else a :class:`ConfigError` naming the field.

    bool is refused although Python counts it as an int (``image_size: true`` in a config.json).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name}={value!r}: expected {expected}")
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{name}={value!r}: expected {expected}")
    return int(value)


def _real_triple(name: str, value: Any, *, positive: bool) -> tuple[float, float, float]:
    """Three finite numbers (R, G, B), positive ones for ``std``; else a :class:`ConfigError`."""
    kind = "positive finite numbers" if positive else "finite numbers"
    error = ConfigError(
        f"{name}={value!r}: expected 3 {kind} (R, G, B) for pixels in [0, 1], or None for the backbone's"
    )
    if isinstance(value, (str, bytes, Mapping)):
        raise error
    try:
        items = tuple(value)
        out = tuple(float(v) for v in items if not isinstance(v, (bool, str, bytes)))
    except (TypeError, ValueError):
        raise error from None
    if len(items) != 3 or len(out) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in out):
        raise error
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class HeadConfig:
    """Hyper-parameters of the trainable head (docs/method.md: the adapter, the layer weights and variant I; all "ours").

    adapter_dim: bottleneck width of the zero-initialised residual adapter in the joint
        image-text space (at most 4 x the backbone's embed_dim); 0 disables it.
    learn_layer_weights: learn softmax weights over the chosen layers (initialised uniform,
        so the untrained model averages the layers: Fig. 9 option (c)); False keeps the plain mean.
    metanet_reduction: variant I only; the CoCoOp meta-net maps the image vector (embed_dim)
        through a hidden layer of embed_dim // metanet_reduction units (so 1..embed_dim) to the text width.
    """

    adapter_dim: int = 64
    learn_layer_weights: bool = True
    metanet_reduction: int = 16

    def __post_init__(self) -> None:
        adapter_dim = _int_field(
            "adapter_dim",
            self.adapter_dim,
            0,
            ADAPTER_DIM_MAX,
            f"an int in 0..{ADAPTER_DIM_MAX} (0 disables the adapter; at most "
            f"{ADAPTER_DIM_PER_EMBED_DIM} x the backbone's embed_dim)",
        )
        object.__setattr__(self, "adapter_dim", adapter_dim)
        if not isinstance(self.learn_layer_weights, bool):
            raise ConfigError(f"learn_layer_weights={self.learn_layer_weights!r}: expected true or false")
        reduction = _int_field(
            "metanet_reduction",
            self.metanet_reduction,
            1,
            None,
            "an int >= 1, at most the backbone's embed_dim (the meta-net's hidden width is embed_dim // it)",
        )
        object.__setattr__(self, "metanet_reduction", reduction)


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
    image_size: inputs are resized to this square size (16..4096, at least the patch size); None
        keeps each input's own size, cropped (centred) down to a multiple of the patch size.
    max_pixels: with ``image_size=None`` only: an input with more pixels is downscaled (aspect
        ratio kept) to at most this many first, with a warning naming it, since attention's cost
        grows with the square of the pixel count. 256..8192x8192, or None = no cap. Written to
        config.json only when it differs from :data:`DEFAULT_MAX_PIXELS`.
    prompts: the (positive, negative) antonym prompts, non-empty strings.
    mean, std: per-channel normalisation of [0, 1] pixels (finite; std positive); None takes the
        backbone's own (open_clip's pretrained config), which is then written here when the model is saved.
    mos_scale: the :class:`~temu.MOSScale` a fine-tuned head was trained on, so predictions in
        [0, 1] can be mapped back to the dataset's units; None for untrained heads. A dict of its
        fields (``{"low", "high", "lower_better"}``, as config.json holds it) is accepted too.

    Every field is checked when the config is made (:class:`~temu.errors.ConfigError` naming the
    field, the value and the range; bool is not an int); the fields whose range depends on the
    backbone (layers, image_size against the patch size, adapter_dim and metanet_reduction against
    embed_dim) when the model is built, before the head (:func:`check_for_backbone`).
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
        for name in ("backbone", "pretrained"):
            value = getattr(self, name)
            if not (isinstance(value, str) and value.strip()) and not (name == "pretrained" and value is None):
                what = "an open_clip model name, a model-config JSON file or 'hf-hub:org/repo'"
                if name == "pretrained":
                    what = "a pretrained tag, 'hf-hub:org/repo', a checkpoint file, or None for random weights"
                raise ConfigError(f"{name}={value!r}: expected {what}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant={self.variant!r}: expected one of {VARIANTS}")
        if self.image_size is not None:
            low, high = IMAGE_SIZE_RANGE
            size = _int_field(
                "image_size",
                self.image_size,
                low,
                high,
                f"an int in {low}..{high} (the square side inputs are resized to), or None for each input's own size",
            )
            object.__setattr__(self, "image_size", size)
        if self.max_pixels is not None:
            low, high = MAX_PIXELS_RANGE
            cap = _int_field(
                "max_pixels",
                self.max_pixels,
                low,
                high,
                f"an int in {low:,}..{high:,} (8192 x 8192), or None for no cap",
            )
            object.__setattr__(self, "max_pixels", cap)
        prompts = tuple(self.prompts) if isinstance(self.prompts, (list, tuple)) else self.prompts
        if (
            not isinstance(prompts, tuple)
            or len(prompts) != 2
            or not all(isinstance(p, str) and p.strip() for p in prompts)
        ):
            raise ConfigError(
                f"prompts={self.prompts!r}: expected two non-empty strings (positive, negative), "
                "e.g. ('Good photo.', 'Bad photo.')"
            )
        object.__setattr__(self, "prompts", prompts)
        object.__setattr__(self, "layers", _check_layers(self.layers))
        if isinstance(self.head, Mapping):
            object.__setattr__(self, "head", _head_config(self.head))
        elif not isinstance(self.head, HeadConfig):
            raise ConfigError(f"head={self.head!r}: expected a HeadConfig or a dict of its fields")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _real_triple(name, value, positive=name == "std"))
        if isinstance(self.mos_scale, Mapping):
            try:
                object.__setattr__(self, "mos_scale", MOSScale.from_dict(self.mos_scale))
            except (TypeError, ValueError) as err:
                raise ConfigError(f"mos_scale={dict(self.mos_scale)!r}: {err}") from err
        elif self.mos_scale is not None and not isinstance(self.mos_scale, MOSScale):
            raise ConfigError(f"mos_scale={self.mos_scale!r}: expected a MOSScale, a dict of its fields or None")

    def replace(self, **changes: Any) -> TeMuConfig:
        """A copy with some fields changed; ``head`` may be given as a dict of the HeadConfig fields to change."""
        if isinstance(changes.get("head"), Mapping):
            changes["head"] = _head_config({**dataclasses.asdict(self.head), **changes["head"]})
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
        if not isinstance(head, Mapping):
            raise WeightsError(f"{source}: invalid model config: head={head!r}: expected an object of head fields")
        head_known = {f.name for f in dataclasses.fields(HeadConfig)}
        head_unknown = sorted(set(head) - head_known)
        if head_unknown:
            raise WeightsError(
                f"{source}: unknown head config keys {head_unknown}; this temu knows {sorted(head_known)}."
            )
        try:
            head_config = HeadConfig(**head)
        except (TypeError, ValueError) as err:
            raise WeightsError(f"{source}: invalid head config: {err}") from err
        try:
            return cls(head=head_config, **data)
        except (TypeError, ValueError) as err:
            raise WeightsError(f"{source}: invalid model config: {err}") from err


def _head_config(fields: Mapping[str, Any]) -> HeadConfig:
    """A :class:`HeadConfig` from a dict of its fields; unknown names are a ConfigError listing the known ones."""
    known = [f.name for f in dataclasses.fields(HeadConfig)]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ConfigError(f"head: unknown fields {unknown}; a HeadConfig has {known}")
    return HeadConfig(**fields)


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


def _check_layers(layers: Any) -> LayerSpec:
    """:attr:`TeMuConfig.layers` checked without a backbone: None, an int >= 1, or distinct ints >= 1 (as a tuple)."""
    expected = "None (all layers), K >= 1 (the first K layers) or a non-empty list of distinct layers numbered from 1"
    if layers is None:
        return None
    if isinstance(layers, Iterable) and not isinstance(layers, (str, bytes, Mapping)):  # list, tuple, range, array
        items = list(layers)
        if not items or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
            raise ConfigError(f"layers={layers!r}: expected {expected}")
        chosen = tuple(int(v) for v in items)
        if min(chosen) < 1 or len(set(chosen)) != len(chosen):
            raise ConfigError(f"layers={list(chosen)!r}: expected {expected}")
        return chosen
    return _int_field("layers", layers, 1, None, expected)


def resolve_layers(layers: LayerSpec, depth: int) -> list[int]:
    """The chosen layers as sorted 0-based block indices (docs/method.md, "Tokens of every layer").

    ``None`` = all ``depth`` layers; an int k = layers 1..k; a list = those layers, numbered
    from 1 as in the paper (layer 1 is the output of the first transformer block).

    ``layers`` is :attr:`TeMuConfig.layers`, already checked without a backbone.

    Raises:
        ConfigError: a layer the backbone does not have.
    """
    if layers is None:
        return list(range(depth))
    if isinstance(layers, int):
        if layers > depth:
            raise ConfigError(
                f"layers={layers}: expected 1..{depth} (the first K of the backbone's {depth} layers), or None for all"
            )
        return list(range(layers))
    bad = [v for v in layers if v > depth]
    if bad:
        raise ConfigError(
            f"layers={list(layers)!r}: layers {bad} do not exist; expected layers numbered 1..{depth} (the backbone "
            f"has {depth}; layer 1 = the output of the first transformer block)"
        )
    return sorted(v - 1 for v in layers)


def check_for_backbone(config: TeMuConfig, *, depth: int, embed_dim: int, patch_size: Sequence[int]) -> list[int]:
    """Check the fields whose range depends on the backbone, before the head is built; returns the layer indices.

    Args:
        config: the model config.
        depth, embed_dim, patch_size: the backbone's number of blocks, joint-space width and patch (h, w).

    Returns:
        The chosen layers as sorted 0-based block indices (:func:`resolve_layers`).

    Raises:
        ConfigError: naming the field, its value and the range this backbone allows.
    """
    layer_ids = resolve_layers(config.layers, depth)
    patch = max(patch_size)
    if config.image_size is not None and config.image_size < patch:
        raise ConfigError(
            f"image_size={config.image_size}: expected at least the backbone's patch size ({patch}) and at most "
            f"{IMAGE_SIZE_RANGE[1]}"
        )
    most = min(ADAPTER_DIM_MAX, ADAPTER_DIM_PER_EMBED_DIM * embed_dim)
    if config.head.adapter_dim > most:
        raise ConfigError(
            f"head.adapter_dim={config.head.adapter_dim}: expected 0..{most} ({ADAPTER_DIM_PER_EMBED_DIM} x the "
            f"backbone's embed_dim {embed_dim}; 0 disables the adapter)"
        )
    if config.variant == "I" and config.head.metanet_reduction > embed_dim:
        raise ConfigError(
            f"head.metanet_reduction={config.head.metanet_reduction}: expected 1..{embed_dim} (the backbone's "
            "embed_dim; the meta-net's hidden width is embed_dim // metanet_reduction)"
        )
    return layer_ids
