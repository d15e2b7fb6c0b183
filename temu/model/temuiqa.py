"""TeMuIQA: a frozen CLIP backbone plus a small trainable head; forward, save and load."""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast, overload

import torch
from torch import nn

from .._version import __version__
from ..errors import ConfigError, TeMuWarning, WeightsError
from ..files import atomic_write
from ..images.decode import pixels_to_float
from ..images.sources import check_batch
from ..images.transforms import InputSize
from .attributes import DEFAULT_ATTRIBUTES, AttributeSpec, resolve_attributes
from .backbone import CLIPBackbone, build_backbone
from .calibration import CALIBRATION_NAME, Calibration, head_digest, read_calibration
from .card import model_card, with_calibration_section
from .config import (
    CONFIG_FORMAT,
    DEFAULT_MAX_PIXELS,
    HeadConfig,
    LayerSpec,
    TeMuConfig,
    check_for_backbone,
    read_config_file,
)
from .head import TeMuHead, zero_shot_token_scores
from .hub import CONFIG_NAME, WEIGHTS_NAME, list_presets, resolve_head_dir
from .presets import PRESET_SEED, PRESETS
from .prompts import CoCoOpPrompts
from .scale import MOSScale
from .text import TextTower
from .weights import vision_shape

#: dtypes a head's safetensors file may hold (loaded into float32 parameters).
_WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

#: Config fields that change the head's shapes or meaning (see :meth:`TeMuIQA.from_pretrained`).
_ARCHITECTURE_FIELDS = frozenset({"backbone", "variant", "layers", "prompts", "head"})
#: Config fields that change a head's scores without changing its weights, recorded with a calibration.
SCORING_FIELDS = ("image_size", "max_pixels", "mean", "std")


class QualityMaps(NamedTuple):
    """``score`` ``[N]`` in [0, 1]; ``score_map`` and ``weight_map`` ``[N, h, w]`` over the patch grid.

    ``score_map`` holds each patch's quality in [0, 1] (higher is better); ``weight_map`` the
    patch's weight in (0, 1) in the final average (the [cls] token takes part too, not shown).
    """

    score: torch.Tensor
    score_map: torch.Tensor
    weight_map: torch.Tensor


class AttributeMaps(NamedTuple):
    """:meth:`TeMuIQA.explain` on a batch: the quality outputs of ``return_maps=True`` plus the attributes.

    ``score`` ``[N]``, ``score_map`` and ``weight_map`` ``[N, h, w]`` as in :class:`QualityMaps`;
    ``attributes`` ``[N, A]`` in [0, 1] (higher = more of the positive prompt), ``attribute_maps``
    ``[N, A, h, w]`` (each patch's attribute score) and ``names``, the A attribute names in order.
    """

    score: torch.Tensor
    score_map: torch.Tensor
    weight_map: torch.Tensor
    attributes: torch.Tensor
    attribute_maps: torch.Tensor
    names: tuple[str, ...]


class TeMuIQA(nn.Module):
    """TeMu-IQA no-reference quality model: ``model(x)`` maps ``[N, 3, H, W]`` images to ``[N]`` scores in [0, 1].

    Images are floats in [0, 1] or uint8 pixels (0-255); higher scores are better.

    Args:
        backbone: open_clip model name, path of an open_clip model-config JSON, or ``"hf-hub:org/repo"``.
        pretrained: open_clip tag (``"openai"``), ``"hf-hub:org/repo"``, a local checkpoint, or None (random).
        variant: ``"S"`` (static prompts) or ``"I"`` (CoCoOp instance-conditional prompts).
        layers: None (all), k (the first k layers) or a list of layers numbered from 1.
        image_size: square input size (bicubic, antialiased) or None for each input's own size.
        prompts: (positive, negative) prompts.
        head: :class:`HeadConfig` (or a dict of its fields) for the trainable head.
        mean, std: pixel normalisation; None takes the backbone's.
        max_pixels: with ``image_size=None``, larger inputs are downscaled to at most this many
            pixels first (with a warning); None = no cap. See :attr:`TeMuConfig.max_pixels`.

    The backbone is frozen and always in eval mode; :attr:`head` holds every trainable
    parameter. Untrained, the model is the zero-shot scorer of docs/method.md.
    """

    config: TeMuConfig
    backbone: CLIPBackbone
    head: TeMuHead
    #: The head's calibration (``calibration.json``: MOS map, reference percentiles), or None; see
    #: :mod:`temu.model.calibration`. Loaded and saved with the head.
    calibration: Calibration | None = None
    #: What :meth:`from_pretrained` loaded this model from (a preset, folder or Hub repo id), or None.
    name_or_path: str | None = None

    def __init__(
        self,
        backbone: str = "ViT-L-14",
        pretrained: str | None = "openai",
        variant: str = "S",
        layers: LayerSpec = None,
        image_size: int | None = 448,
        prompts: Sequence[str] = ("Good photo.", "Bad photo."),
        *,
        head: HeadConfig | dict[str, Any] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__()
        head_cfg = HeadConfig(**head) if isinstance(head, dict) else (head or HeadConfig())
        config = TeMuConfig(
            backbone=backbone,
            pretrained=pretrained,
            variant=str(variant).upper(),
            layers=layers,
            image_size=image_size,
            prompts=prompts,  # type: ignore[arg-type]
            head=head_cfg,
            mean=mean,  # type: ignore[arg-type]
            std=std,  # type: ignore[arg-type]
            max_pixels=max_pixels,
        )
        self._build(config, load_weights=True)

    @classmethod
    def from_config(cls, config: TeMuConfig, *, load_weights: bool = True) -> TeMuIQA:
        """Build from a :class:`TeMuConfig`. ``load_weights=False`` builds the backbone architecture
        without downloading its weights (random values; for inspecting shapes and activations)."""
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self._build(config, load_weights=load_weights)
        return self

    def _build(self, config: TeMuConfig, *, load_weights: bool) -> None:
        shape = vision_shape(config.backbone, config.pretrained)  # checked before any weights are downloaded
        if shape is not None:
            check_for_backbone(config, depth=shape[0], embed_dim=shape[1], patch_size=shape[2])
        backbone = build_backbone(
            config.backbone,
            config.pretrained,
            keep_text=config.variant == "I",
            prompts=config.prompts,
            extra_prompts=[p for pair in DEFAULT_ATTRIBUTES.values() for p in pair],
            load_weights=load_weights,
        )
        self.layer_ids = check_for_backbone(
            config, depth=backbone.depth, embed_dim=backbone.embed_dim, patch_size=backbone.patch_size
        )
        self.config = config.replace(mean=config.mean or backbone.source.mean, std=config.std or backbone.source.std)
        prompts = None
        if config.variant == "I":
            tower = cast(TextTower, backbone.text)  # built because keep_text=True above
            prompts = CoCoOpPrompts(
                config.prompts, backbone.prompt_ids, tower, backbone.embed_dim, config.head.metanet_reduction
            )
        self.backbone = backbone
        self.head = TeMuHead(len(self.layer_ids), backbone.embed_dim, config.head, prompts)
        self.input_size = InputSize(config.image_size, backbone.patch_size, config.max_pixels)
        self.register_buffer("pixel_mean", torch.tensor(self.config.mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.config.std).reshape(1, 3, 1, 1), persistent=False)
        #: (attribute prompts, device) -> their ``[A, 2, E]`` text vectors there; see :meth:`attribute_text_features`.
        self.attribute_text_cache: dict[tuple, torch.Tensor] = {}
        self.calibration = None
        self.name_or_path = None

    # ------------------------------------------------------------------ properties

    @property
    def num_head_parameters(self) -> int:
        """Number of trainable parameters (all in :attr:`head`)."""
        return sum(p.numel() for p in self.head.parameters())

    def head_digest(self) -> str:
        """sha256 of the head's weights (:func:`temu.model.calibration.head_digest`): what a calibration is tied to."""
        return head_digest({k: v.detach().to("cpu", torch.float32).numpy() for k, v in self.head.state_dict().items()})

    @property
    def patch_size(self) -> tuple[int, int]:
        return self.backbone.patch_size

    def compile_backbone(self, **compile_kwargs: Any) -> TeMuIQA:
        """Compile each transformer block with ``torch.compile`` (in place; state_dict keys unchanged).

        Worth it for long GPU runs at a fixed batch shape; the first call pays the compile time
        (tens of seconds), and each new input shape compiles again. Calling it twice is harmless.
        """
        if not getattr(self, "_compiled", False):
            for block in self.backbone.visual.transformer.resblocks:
                block.compile(**compile_kwargs)
            self._compiled = True
        return self

    @property
    def mos_scale(self) -> MOSScale | None:
        """The MOS range the head was fine-tuned on (:class:`~temu.MOSScale`); None for an untrained head."""
        return self.config.mos_scale

    def to_mos(self, scores: Any) -> Any:
        """Map scores in [0, 1] back to the MOS scale of the training set (float, array or tensor).

        ``low + score * (high - low)``; for a DMOS dataset (lower is better) the direction is
        flipped back, ``high - score * (high - low)``. Raises ValueError for a head that was not
        fine-tuned (it has no MOS range; its scores are only in [0, 1]). A map fitted to a
        dataset's MOS is a calibration (``temu calibrate``; ``temu.score(..., scale="mos")``).
        """
        scale = self.mos_scale
        if scale is None:
            raise ValueError(
                f"this head ({self.config.backbone}, variant {self.config.variant}) has no MOS range: it was not "
                "fine-tuned with temu-finetune, so its scores exist only on the [0, 1] scale"
            )
        return scale.denormalise(scores)

    def train(self, mode: bool = True) -> TeMuIQA:
        """Set the head's training mode; the backbone stays in eval mode."""
        super().train(mode)
        self.backbone.train(False)
        return self

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        self.attribute_text_cache.clear()  # vectors on the old device / dtype
        return super()._apply(fn, recurse)

    # ------------------------------------------------------------------ forward

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` pixels (uint8 0-255, or floats in [0, 1]) -> normalised pixels at the model's
        input size, in the model's dtype (float32 unless the model was converted). uint8 pixels are
        resized as uint8 and converted once, here; fp16, bf16 and fp64 inputs score as their float32 value."""
        x = pixels_to_float(self.input_size(x)).to(self.pixel_mean.dtype)
        return (x - self.pixel_mean) / self.pixel_std

    @overload
    def forward(
        self, x: torch.Tensor, return_maps: Literal[False] = ..., *, check_input: bool = ...
    ) -> torch.Tensor: ...

    @overload
    def forward(self, x: torch.Tensor, return_maps: Literal[True], *, check_input: bool = ...) -> QualityMaps: ...

    def forward(
        self, x: torch.Tensor, return_maps: bool = False, *, check_input: bool = True
    ) -> torch.Tensor | QualityMaps:
        """Score a batch.

        x: ``[N, 3, H, W]`` floats in [0, 1] of any float dtype, or uint8 pixels (0-255, scored as
        ``x / 255``); any H, W (see ``image_size``).
        Returns ``[N]`` scores in [0, 1] (higher is better), or with ``return_maps=True`` a
        :class:`QualityMaps` with the patch-score and patch-weight maps ``[N, h, w]``.
        Gradients flow to ``x`` when it requires grad; the backbone's weights never change.
        ``check_input=False`` skips the value checks (one host-device sync) for trusted inputs.
        """
        tokens, grid = self._joint_tokens(x, self.head.layer_weights(), check_input)
        quality = self._head_maps(tokens, grid)
        return quality if return_maps else quality.score

    def _head_maps(self, tokens: torch.Tensor, grid: tuple[int, int]) -> QualityMaps:
        """The head on joint-space tokens ``[N, 1 + h*w, E]``: the scores and their ``[N, h, w]`` maps.

        The head runs in fp32 even under autocast: CLIP's logit scale (100) multiplies the rounding
        of bf16 cosine similarities (measured: 10x larger score errors with the head in bf16).
        """
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            out = self.head(tokens.float(), self.backbone.text_features, self.backbone.logit_scale, self.backbone.text)
        n = tokens.shape[0]
        return QualityMaps(
            out.score, out.token_scores[:, 1:].reshape(n, *grid), out.token_weights[:, 1:].reshape(n, *grid)
        )

    def _joint_tokens(
        self, x: torch.Tensor, weights: torch.Tensor, check_input: bool
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """One backbone pass: tokens in the joint space ``[(K,) N, 1 + h*w, E]`` for layer weights ``[(K,) L]``, and the grid."""
        if check_input:
            check_batch(x)
        pixels = self.prepare(x)
        grid = (pixels.shape[-2] // self.patch_size[0], pixels.shape[-1] // self.patch_size[1])
        grad_backbone = torch.is_grad_enabled() and x.requires_grad
        tokens = self.backbone.aggregate(pixels, self.layer_ids, weights, grad_backbone=grad_backbone)
        return self.backbone.project(tokens), grid

    def explain(self, x: torch.Tensor, attributes: AttributeSpec = None, *, check_input: bool = True) -> AttributeMaps:
        """Score a batch and judge quality attributes on every patch, in one backbone pass.

        x: ``[N, 3, H, W]`` floats in [0, 1]. attributes: None (the default set,
        :data:`temu.DEFAULT_ATTRIBUTES`), a list of its names, or a dict name -> (positive prompt,
        negative prompt). The score and maps are :meth:`forward`'s with ``return_maps=True``. Each
        attribute is the zero-shot rule (docs/method.md, "Attributes") with its prompts: the token's softmax over
        the pair with CLIP's logit scale, on the plain mean over the chosen layers (not the head's
        learned layer weights, adapter or patch weights), averaged over the [cls] and patch tokens.
        Both layer averages are summed in the same pass over the blocks.
        """
        pairs = resolve_attributes(attributes)
        text = self.attribute_text_features(pairs)
        weights = self.head.layer_weights()
        plain = torch.full_like(weights, 1.0 / weights.numel())
        tokens, grid = self._joint_tokens(x, torch.stack([weights, plain.detach()]), check_input)
        quality = self._head_maps(tokens[0], grid)
        with torch.autocast(device_type=tokens.device.type, enabled=False):  # fp32, as the head
            per_token = zero_shot_token_scores(tokens[1], text, self.backbone.logit_scale)  # [N, T, A]
        n = x.shape[0]
        return AttributeMaps(
            *quality,
            per_token.mean(dim=1),
            per_token[:, 1:].transpose(1, 2).reshape(n, len(pairs), *grid),
            tuple(pairs),
        )

    def attribute_text_features(self, attributes: AttributeSpec = None) -> torch.Tensor:
        """``[A, 2, E]`` normalised CLIP text vectors of each attribute's (positive, negative) prompts.

        Computed once per model and device and kept in :attr:`attribute_text_cache` (the default
        set's prompts are encoded when the model is built; see :meth:`CLIPBackbone.encode`).
        """
        pairs = resolve_attributes(attributes)
        prompts = tuple(p for pair in pairs.values() for p in pair)
        device = self.backbone.logit_scale.device
        key = (prompts, device)
        cached = self.attribute_text_cache.get(key)
        if cached is None:
            with torch.inference_mode(False), torch.no_grad():
                vectors = self.backbone.encode(prompts)  # [2A, E]
                cached = vectors.reshape(len(pairs), 2, -1).to(device)
            self.attribute_text_cache[key] = cached
        return cached

    # ------------------------------------------------------------------ save / load

    def saved_config(self) -> TeMuConfig:
        """The config as written by :meth:`save_pretrained`: layers as an explicit list, normalisation filled in."""
        return self.config.replace(layers=[i + 1 for i in self.layer_ids])

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (the head only), ``calibration.json`` when the model
        has a :attr:`calibration`, and, if missing, a ``README.md`` model card.

        A calibration is written only while the head still has the weights it was fitted for: a head
        changed since (trained further) is saved without it, with a :class:`~temu.errors.TeMuWarning`.
        A ``calibration.json`` already in the directory that is not this model's is removed. Files
        are written atomically (to a temporary name, then renamed). Returns the directory.
        """
        from safetensors.torch import save

        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.head.state_dict().items()}
        meta = {
            "format": CONFIG_FORMAT,
            "temu_version": __version__,
            "head_parameters": self.num_head_parameters,
            "head_shapes": {k: list(v.shape) for k, v in state.items()},
            "model": self.saved_config().to_dict(),
        }
        atomic_write(directory / CONFIG_NAME, (_compact_json(meta) + "\n").encode("utf-8"))
        atomic_write(directory / WEIGHTS_NAME, save(state, metadata={"format": "pt", "temu_version": __version__}))
        calibration = self.calibration
        if calibration is not None and calibration.head != head_digest({k: v.numpy() for k, v in state.items()}):
            warnings.warn(
                f"the head changed since it was calibrated ({calibration.head[:12]}...): {directory} is saved "
                "without calibration.json; run temu calibrate on it again",
                TeMuWarning,
                stacklevel=2,
            )
            calibration = None
        write_calibration(directory, calibration)
        card = directory / "README.md"
        if not card.exists():
            text = model_card(self.saved_config(), self.num_head_parameters, calibration)
            card.write_text(text, encoding="utf-8")
        return directory

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike[str], *, revision: str | None = None, **overrides: Any
    ) -> TeMuIQA:
        """Load a model from a preset name, a directory written by :meth:`save_pretrained`, or a Hub repo id.

        ``overrides`` replace config fields (``pretrained=`` a local checkpoint for offline use,
        ``image_size=``, ...). The head's weights must fit the resulting model exactly. The
        presets are untrained heads: a preset with another ``backbone``, ``variant``, ``layers``,
        ``prompts`` or ``head`` config gives the untrained head of that architecture.
        """
        directory = resolve_head_dir(source, revision=revision)
        config, _ = read_config_file(directory / CONFIG_NAME)
        preset = os.fspath(source) in list_presets()
        if overrides:
            unknown = sorted(set(overrides) - set(TeMuConfig.__dataclass_fields__))
            if unknown:
                raise TypeError(
                    f"unknown overrides {unknown}; TeMuIQA.from_pretrained accepts {sorted(TeMuConfig.__dataclass_fields__)}"
                )
            config = config.replace(**overrides)
        if preset and _ARCHITECTURE_FIELDS & set(overrides):
            # A preset is an untrained head. On another architecture its counterpart is that
            # architecture's initial head, made as the presets are made (same seed), from the
            # preset's defining config (layers=None: all layers of the new backbone).
            return untrained_model(PRESETS[os.fspath(source)].replace(**overrides))
        try:
            model = cls.from_config(config)
        except ConfigError as err:  # a field out of the range this backbone allows: say which file holds it
            given = f" with overrides {sorted(overrides)}" if overrides else ""
            raise WeightsError(f"{directory / CONFIG_NAME}{given}: invalid model config: {err}") from err
        model.load_head(directory / WEIGHTS_NAME)
        model.name_or_path = os.fspath(source)
        model.calibration = model._checked_calibration(directory / CALIBRATION_NAME)
        return model

    def _checked_calibration(self, path: Path) -> Calibration | None:
        """The calibration in ``path`` if there is one; it must be this head's (WeightsError otherwise).
        Warns when the model scores with other settings (``image_size``, ...) than it was fitted with."""
        calibration = read_calibration(path)
        if calibration is None:
            return None
        if calibration.head != self.head_digest():
            raise WeightsError(
                f"{path} was fitted for other head weights than {path.parent / WEIGHTS_NAME} (the head was "
                "retrained or replaced since): run temu calibrate on this head again, or delete the file"
            )
        now = scoring_settings(self.saved_config())
        changed = [
            f"{name}={calibration.scoring[name]!r} then, {now[name]!r} now"
            for name in SCORING_FIELDS
            if name in calibration.scoring and _plain(calibration.scoring[name]) != now[name]
        ]
        if changed:
            warnings.warn(
                f"{path} was fitted on scores made with other settings ({'; '.join(changed)}): mos and percentile "
                "values may not hold for this model",
                TeMuWarning,
                stacklevel=3,
            )
        return calibration

    def scoring_settings(self) -> dict[str, Any]:
        """The config fields that change scores without changing the head (:data:`SCORING_FIELDS`), as JSON values."""
        return scoring_settings(self.saved_config())

    def load_head(self, path: str | os.PathLike[str]) -> None:
        """Load head weights from a safetensors file; keys and shapes must match exactly, values be finite."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        try:
            state = load_file(str(path))
        except FileNotFoundError:
            raise WeightsError(f"{path}: no such weights file") from None
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"{path}: not a readable safetensors file ({err})") from err
        odd = [
            f"{k} ({str(v.dtype).removeprefix('torch.')})"
            for k, v in sorted(state.items())
            if v.dtype not in _WEIGHT_DTYPES
        ]
        if odd:
            raise WeightsError(
                f"{path}: tensor {', '.join(odd)}: expected float32, float16 or bfloat16 (a temu head is saved in "
                "float32); convert the file (load it, save float32 tensors) or use another head"
            )
        expected = self.head.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mismatched = [
            f"{k}: expected {tuple(expected[k].shape)}, found {tuple(state[k].shape)}"
            for k in sorted(set(state) & set(expected))
            if expected[k].shape != state[k].shape
        ]
        if missing or unexpected or mismatched:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            if mismatched:
                parts.append("shape mismatches " + "; ".join(mismatched))
            raise WeightsError(
                f"{path} does not fit this model ({self.config.backbone}, variant {self.config.variant}, "
                f"{len(self.layer_ids)} layers): {', '.join(parts)}. The head was saved for another backbone, "
                "variant, layer set or head config: load it with TeMuIQA.from_pretrained(its directory)."
            )
        corrupt = [
            f"{k} ({int((~torch.isfinite(v)).sum())} of {v.numel()} values)"
            for k, v in sorted(state.items())
            if v.is_floating_point() and not bool(torch.isfinite(v).all())
        ]
        if corrupt:
            raise WeightsError(
                f"{path}: non-finite weights (NaN or Inf) in tensor {', '.join(corrupt)}; the scores would be "
                "NaN or meaningless. The file is corrupt or was saved from a diverged training run: retrain, "
                "or use another head."
            )
        self.head.load_state_dict(state, strict=True)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str = "Upload TeMu-IQA head",
        revision: str | None = None,
    ) -> str:
        """Upload the head (config.json, model.safetensors, README.md, calibration.json if any) to a Hub model repo.

        Args:
            repo_id: the model repo (created if missing).
            private: create it private.
            token: a Hub token; None: the logged-in user's.
            commit_message: the commit's message.
            revision: the branch to commit to.

        Returns:
            The commit's URL.
        """
        from huggingface_hub import HfApi

        api = HfApi(token=token, library_name="temu", library_version=__version__)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message, revision=revision)
        return str(getattr(info, "commit_url", info))


def untrained_model(config: TeMuConfig, *, load_weights: bool = True) -> TeMuIQA:
    """A model with the initial (untrained) head for ``config``, drawn as the presets are (fixed seed).

    The caller's random state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PRESET_SEED)
        return TeMuIQA.from_config(config, load_weights=load_weights)


def write_calibration(directory: str | os.PathLike[str], calibration: Calibration | None) -> None:
    """Write ``calibration.json`` into a head ``directory`` (atomically), or remove it for None; keep the
    calibration section of the model card (README.md), if there is a card, in step."""
    directory = Path(directory)
    path = directory / CALIBRATION_NAME
    if calibration is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write(path, calibration.to_json().encode("utf-8"))
    card = directory / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        updated = with_calibration_section(text, calibration)
        if updated != text:
            atomic_write(card, updated.encode("utf-8"))


def scoring_settings(config: TeMuConfig) -> dict[str, Any]:
    """``config``'s fields that change scores without changing the head (:data:`SCORING_FIELDS`), as JSON values."""
    return {name: _plain(getattr(config, name)) for name in SCORING_FIELDS}


def _plain(value: Any) -> Any:
    """A config value as JSON reads it back (tuples as lists), for comparisons."""
    return json.loads(json.dumps(value))


def _compact_json(obj: Any) -> str:
    """JSON with 2-space indents but short lists (shapes, layers, mean) kept on one line."""
    text = json.dumps(obj, indent=2)
    return re.sub(
        r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text
    )
