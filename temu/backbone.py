"""The frozen CLIP backbone. This is the only module that imports open_clip.

It builds an open_clip model (weights through the Hugging Face cache, see :mod:`temu.hub`),
runs the image tower block by block and *streams* the layer aggregation of METHOD.md step 9:
after each chosen block it adds the block's layer-normalised tokens to one running sum, so
memory does not grow with the number of layers.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn

from .errors import BackboneError
from .hub import download

_OPENCLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class BackboneSource:
    """What to hand to ``open_clip.create_model`` after names, tags and downloads are resolved."""

    model_name: str
    checkpoint: str | None
    force_quick_gelu: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    label: str
    random_weights: bool = False  # no weights loaded (pretrained=None or load_weights=False): cannot be rebuilt


def _register_config_file(path: Path) -> str:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BackboneError(f"{path}: not a readable open_clip model-config JSON file ({err})") from err
    if not isinstance(cfg, dict) or "vision_cfg" not in cfg or "embed_dim" not in cfg:
        raise BackboneError(f"{path}: an open_clip model config needs 'embed_dim', 'vision_cfg' and 'text_cfg' keys")
    open_clip.add_model_config(path)
    return path.stem


def resolve_backbone(backbone: str, pretrained: str | None, *, load_weights: bool = True) -> BackboneSource:
    """Turn (backbone, pretrained) into an open_clip name, a local checkpoint file and the QuickGELU choice.

    OpenAI's CLIP weights were trained with QuickGELU; for a tag whose weights need it
    (``ViT-L-14`` + ``openai``) QuickGELU is forced, so features are never silently wrong.
    With ``load_weights=False`` nothing is downloaded (the architecture only).
    """
    label = f"{backbone} (pretrained={pretrained!r})"
    if backbone.startswith("hf-hub:"):
        if pretrained not in (None, backbone):
            raise BackboneError(
                f"backbone={backbone!r} already names its weights; pass pretrained=None (or the same hf-hub id), "
                f"not {pretrained!r}."
            )
        repo = backbone[len("hf-hub:") :]
        config = download(repo, ["open_clip_config.json"], what=f"the open_clip config of backbone {backbone}")
        if load_weights:
            download(repo, _OPENCLIP_WEIGHTS, what=f"the CLIP backbone {backbone}")
        preprocess = _read_preprocess(config)
        return BackboneSource(
            f"local-dir:{config.parent}", None, False, *preprocess, label, random_weights=not load_weights
        )

    if backbone.endswith(".json"):
        path = Path(backbone).expanduser()
        if not path.is_file():
            raise BackboneError(f"backbone config file {path} does not exist")
        name = _register_config_file(path)
    else:
        name = backbone.replace("/", "-")
    if name not in open_clip.list_models():
        close = difflib.get_close_matches(name, open_clip.list_models(), n=4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise BackboneError(
            f"unknown open_clip model {backbone!r}.{hint} Use a name from open_clip.list_models(), "
            "the path of an open_clip model-config JSON file, or 'hf-hub:org/repo'."
        )
    model_cfg = open_clip.get_model_config(name) or {}
    mean, std = _OPENAI_MEAN, _OPENAI_STD
    force_quick_gelu = False
    checkpoint: str | None = None

    if pretrained is None:
        warnings.warn(
            f"TeMuIQA backbone {name} has random weights (pretrained=None): its scores mean nothing. "
            "This is for tests; pass pretrained='openai' (or another tag) for real use.",
            UserWarning,
            stacklevel=3,
        )
    elif pretrained.startswith("hf-hub:"):
        repo = pretrained[len("hf-hub:") :]
        if load_weights:
            checkpoint = str(download(repo, _OPENCLIP_WEIGHTS, what=f"the CLIP weights {pretrained} for {name}"))
    elif os.path.isfile(pretrained):
        checkpoint = pretrained
    else:
        tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
        if not tag_cfg:
            tags = open_clip.list_pretrained_tags_by_model(name)
            raise BackboneError(
                f"{pretrained!r} is neither a pretrained tag of {name} nor an existing checkpoint file. "
                f"Tags of {name}: {tags or 'none'}; or pass 'hf-hub:org/repo', a local file, or None for random weights."
            )
        mean = tuple(tag_cfg.get("mean", mean))
        std = tuple(tag_cfg.get("std", std))
        if tag_cfg.get("quick_gelu", False) and not model_cfg.get("quick_gelu", False):
            force_quick_gelu = True  # e.g. ViT-L-14 + openai: build the activation the weights were trained with
        if load_weights:
            checkpoint = _download_tag(name, pretrained, tag_cfg)
    random_weights = pretrained is None or not load_weights
    return BackboneSource(name, checkpoint, force_quick_gelu, mean, std, label, random_weights)  # type: ignore[arg-type]


def _download_tag(name: str, tag: str, tag_cfg: dict) -> str:
    hub_id = tag_cfg.get("hf_hub", "")
    if hub_id:
        # open_clip writes 'org/repo/file.bin', or 'org/repo/' for its default file names
        repo, filename = os.path.split(hub_id)
        names = list(_OPENCLIP_WEIGHTS)
        if filename:
            names = [filename[:-4] + ".safetensors", filename] if filename.endswith((".bin", ".pth")) else [filename]
        return str(download(repo, names, what=f"the CLIP backbone {name} (pretrained={tag!r})"))
    if tag_cfg.get("url"):
        try:
            return str(open_clip.download_pretrained(tag_cfg, prefer_hf_hub=False))
        except Exception as err:  # urllib/hash errors: re-raise with what to do
            raise BackboneError(
                f"could not download the CLIP backbone {name} ({tag}) from {tag_cfg['url']}: {err}"
            ) from err
    raise BackboneError(f"open_clip knows no download location for {name} ({tag})")


def _read_preprocess(config_path: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = json.loads(Path(config_path).read_text(encoding="utf-8")).get("preprocess_cfg", {})
    return tuple(cfg.get("mean", _OPENAI_MEAN)), tuple(cfg.get("std", _OPENAI_STD))


def create_clip(source: BackboneSource) -> nn.Module:
    """Instantiate the open_clip model for a resolved source, weights loaded, on the CPU."""
    return open_clip.create_model(
        source.model_name,
        pretrained=source.checkpoint,
        force_quick_gelu=source.force_quick_gelu,
        device="cpu",
    )


def _check_vision_tower(visual: nn.Module, label: str) -> None:
    if not isinstance(visual, VisionTransformer):
        raise BackboneError(
            f"backbone {label} has a {type(visual).__name__} image tower; TeMu-IQA needs open_clip's "
            "VisionTransformer (a ViT with a [cls] token), e.g. ViT-B-16, ViT-B-32 or ViT-L-14."
        )
    if visual.attn_pool is not None or visual.pool_type != "tok":
        raise BackboneError(
            f"backbone {label} pools its image tokens with {visual.pool_type!r}"
            f"{' and an attentional pooler' if visual.attn_pool is not None else ''}; TeMu-IQA needs "
            "[cls]-token pooling (pool_type 'tok', no attentional pool), as in OpenAI-style CLIP ViTs."
        )
    if visual.proj is None or not isinstance(visual.ln_post, nn.LayerNorm):
        raise BackboneError(f"backbone {label} has no ln_post LayerNorm + proj into the joint space")


class SDPAResidualAttentionBlock(ResidualAttentionBlock):
    """open_clip's ResidualAttentionBlock, computing attention with ``F.scaled_dot_product_attention``.

    The same maths as ``nn.MultiheadAttention`` (one fused in-projection, SDPA, out-projection),
    without its inference "fast path", which is slower on the CPU: one ViT-L/14 block on
    ``[2, 1025, 1024]`` took 771 ms with it and 598 ms through SDPA (benchmarks/bench_attention.py).
    Calls with a mask or cross-attention inputs go to open_clip's own forward. Defined once, at
    module level, so that a model using it pickles and deep-copies.
    """

    def forward(self, q_x, k_x=None, v_x=None, attn_mask=None):  # type: ignore[override]
        if k_x is not None or v_x is not None or attn_mask is not None:
            return super().forward(q_x, k_x, v_x, attn_mask)
        attn = self.attn
        n, length, width = q_x.shape
        qkv = F.linear(self.ln_1(q_x), attn.in_proj_weight, attn.in_proj_bias)
        q, k, v = qkv.view(n, length, 3, attn.num_heads, width // attn.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, width)
        x = q_x + self.ls_1(attn.out_proj(out))
        return x + self.ls_2(self.mlp(self.ln_2(x)))


def _use_sdpa_blocks(visual: nn.Module) -> int:
    """Switch the plain batch-first attention blocks of a tower we own to the SDPA forward; returns how many."""
    if not getattr(visual.transformer, "batch_first", True):
        return 0
    switched = 0
    for block in visual.transformer.resblocks:
        attn = getattr(block, "attn", None)
        if (
            type(block) is ResidualAttentionBlock
            and isinstance(attn, nn.MultiheadAttention)
            and attn.batch_first
            and attn._qkv_same_embed_dim
            and attn.in_proj_weight is not None
            and not hasattr(block, "ln_1_kv")
        ):
            block.__class__ = SDPAResidualAttentionBlock
            switched += 1
    return switched


def is_causal_eot_text(clip: nn.Module) -> bool:
    """Whether ``clip``'s text encoder is CLIP-style: token embeddings, a causal mask, end-of-text pooling."""
    text = getattr(clip, "text", clip)
    pool = getattr(text, "text_pool_type", None) or getattr(text, "pool_type", None)
    return (
        hasattr(text, "token_embedding")
        and getattr(text, "attn_mask", None) is not None
        and pool in ("argmax", "eos")
        and getattr(text, "cls_emb", None) is None
    )


class TextTower(nn.Module):
    """The frozen CLIP text encoder, run on given token *embeddings* (for learned prompts).

    Sequences are truncated after their end-of-text token: with a causal mask the features
    at that token do not depend on later positions, so the result is CLIP's own.
    """

    def __init__(self, clip: nn.Module, label: str) -> None:
        super().__init__()
        text = getattr(clip, "text", clip)
        pool = getattr(text, "text_pool_type", None) or getattr(text, "pool_type", None)
        mask = getattr(text, "attn_mask", None)
        if not is_causal_eot_text(clip):
            raise BackboneError(
                f"variant 'I' needs a CLIP-style causal text encoder with end-of-text pooling; backbone {label} "
                "has a different text tower. Use variant='S' with this backbone."
            )
        self.token_embedding = text.token_embedding
        self.positional_embedding = text.positional_embedding
        self.transformer = text.transformer
        self.ln_final = text.ln_final
        self.text_projection = text.text_projection
        self.register_buffer("attn_mask", cast(torch.Tensor, mask).clone(), persistent=False)
        self.pool = pool
        self.eos_id = getattr(text, "text_eos_id", None) or getattr(text, "eos_id", None)

    def eot_index(self, ids: torch.Tensor) -> torch.Tensor:
        """Position of the pooled (end-of-text) token of each tokenised prompt, ``[K]``."""
        if self.pool == "argmax":
            return ids.argmax(dim=-1)
        return (ids == self.eos_id).int().argmax(dim=-1)

    def forward(self, embeddings: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """``[B, L, W]`` token embeddings and ``[B]`` end-of-text positions -> ``[B, E]`` text vectors."""
        length = embeddings.shape[1]
        x = embeddings + self.positional_embedding[:length].to(embeddings.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection if self.text_projection is not None else x


class CLIPBackbone(nn.Module):
    """Frozen CLIP image tower (+ text tower for variant I) with streamed multi-level features.

    It keeps an internal cache of positional-embedding tables resized to other patch grids
    (METHOD.md step 2), keyed by grid, device and dtype; moving the module clears it.
    ``prompt_features`` caches the text vectors of further prompts (quality attributes), encoded
    at build (``extra_prompts``) or on first use (:meth:`encode`).
    """

    def __init__(
        self,
        clip: nn.Module,
        source: BackboneSource,
        *,
        keep_text: bool,
        prompts: Sequence[str],
        extra_prompts: Sequence[str] = (),
    ) -> None:
        super().__init__()
        visual = clip.visual
        _check_vision_tower(visual, source.label)
        self.source = source
        self.visual = visual
        _use_sdpa_blocks(visual)
        self.patch_size: tuple[int, int] = tuple(visual.patch_size)  # type: ignore[assignment]
        self.native_grid: tuple[int, int] = tuple(visual.grid_size)  # type: ignore[assignment]
        self.width = int(visual.conv1.out_channels)
        self.depth = len(visual.transformer.resblocks)
        self.embed_dim = int(visual.proj.shape[1])
        self.register_buffer(
            "logit_scale", clip.logit_scale.detach().exp().reshape(()).clone().float(), persistent=False
        )

        ids = open_clip.get_tokenizer(source.model_name)(list(prompts))
        extra = [p for p in dict.fromkeys(extra_prompts) if p not in prompts]
        vectors = encode_prompts(clip, source.model_name, [*prompts, *extra])  # one text pass for all
        self.register_buffer("text_features", vectors[: len(prompts)].clone(), persistent=False)  # [K, E]
        #: prompt -> normalised CLIP text vector ``[E]`` (float32, CPU): every prompt encoded so far.
        self.prompt_features: dict[str, torch.Tensor] = dict(zip([*prompts, *extra], vectors.cpu()))
        self.text: TextTower | None = TextTower(clip, source.label) if keep_text else None
        if self.text is not None:
            self.register_buffer("prompt_ids", ids, persistent=False)
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self.requires_grad_(False)
        self.eval()

    # frozen: never leaves eval mode
    def train(self, mode: bool = True) -> CLIPBackbone:
        return super().train(False)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        self._pos_cache.clear()
        return super()._apply(fn, recurse)

    @property
    def text_width(self) -> int:
        if self.text is None:
            raise BackboneError("this backbone was built without its text tower (variant 'S')")
        return int(self.text.token_embedding.weight.shape[1])

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """``[K, E]`` normalised CLIP text vectors (float32, CPU) of ``prompts``, cached in :attr:`prompt_features`.

        Prompts not in the cache go through CLIP's text encoder: the one this backbone keeps
        (variant I), else a copy built again from the same weights and dropped after use (variant S
        keeps no text encoder; this costs one model load, once per new prompt).
        """
        missing = [p for p in dict.fromkeys(prompts) if p not in self.prompt_features]
        if missing:
            if self.text is not None:
                device = self.text.token_embedding.weight.device
                # in fp32 even when called under autocast: these vectors are reused for every image
                with torch.inference_mode(False), torch.no_grad(), torch.autocast(device.type, enabled=False):
                    ids = open_clip.get_tokenizer(self.source.model_name)(missing).to(device)
                    vectors = F.normalize(_run_tower(self.text, ids).float(), dim=-1)
            elif self.source.random_weights:
                raise BackboneError(
                    f"backbone {self.source.label} was built with random weights and without its text encoder "
                    f"(variant 'S'), so new prompts {missing} cannot be encoded with the same weights. Use "
                    "the default attributes, or build the model from a checkpoint (pretrained=...) or as variant 'I'."
                )
            else:
                with torch.inference_mode(False), torch.autocast("cpu", enabled=False):
                    vectors = encode_prompts(create_clip(self.source), self.source.model_name, missing)
            self.prompt_features.update(zip(missing, vectors.cpu()))
        return torch.stack([self.prompt_features[p] for p in prompts])

    def positional_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """``[1 + h*w, width]`` positional embeddings for a patch grid; resized (bicubic) and cached."""
        table = self.visual.positional_embedding
        if tuple(grid) == self.native_grid:
            return table
        key = (tuple(grid), table.device, table.dtype)
        cached = self._pos_cache.get(key)
        if cached is None:
            with torch.inference_mode(False), torch.no_grad():
                gh0, gw0 = self.native_grid
                patch = table[1:].float().reshape(1, gh0, gw0, -1).permute(0, 3, 1, 2)
                patch = F.interpolate(patch, size=tuple(grid), mode="bicubic", align_corners=False, antialias=True)
                patch = patch.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
                cached = torch.cat([table[:1].float(), patch]).to(table.dtype)
            self._pos_cache[key] = cached
        return cached

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels ``[N, 3, H, W]`` (H, W multiples of the patch) -> tokens ``[N, 1 + h*w, width]``."""
        v = self.visual
        x = v.conv1(pixels)
        n, c, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).reshape(1, 1, c).expand(n, 1, c)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding((gh, gw)).to(x.dtype)
        return v.ln_pre(x)

    def aggregate(
        self, pixels: torch.Tensor, layer_ids: Sequence[int], weights: torch.Tensor, *, grad_backbone: bool = False
    ) -> torch.Tensor:
        """Weighted sum over layers of ``ln_post`` applied to every token, streamed.

        pixels: ``[N, 3, H, W]`` normalised; layer_ids: sorted 0-based block indices;
        weights: ``[L]`` with L = ``len(layer_ids)``, or ``[K, L]`` for K weightings of the same
        pass (summed side by side in one loop). Returns ``[N, 1 + h*w, width]`` (``[K, N, 1 + h*w, width]``)
        float32, the [cls] token first.
        Blocks after the last chosen layer are not run. ``grad_backbone`` lets gradients flow
        to the pixels (``as_loss``); otherwise the blocks run without autograd and only
        ``weights`` can receive gradients.
        """
        visual = self.visual
        blocks = visual.transformer.resblocks
        batch_first = getattr(visual.transformer, "batch_first", True)
        ln = visual.ln_post
        no_grad = contextlib.nullcontext() if grad_backbone else torch.no_grad()
        differentiable = torch.is_grad_enabled() and (grad_backbone or weights.requires_grad)
        slot = {layer: k for k, layer in enumerate(layer_ids)}
        lead = (*weights.shape[:-1], 1, 1, 1)  # one weight per (weighting, layer), broadcast over tokens
        with no_grad:
            x = self.embed(pixels)
            if not batch_first:
                x = x.transpose(0, 1)
        acc: torch.Tensor | None = None
        for i in range(layer_ids[-1] + 1):
            with no_grad:
                x = blocks[i](x)
                if i in slot:
                    tokens = x if batch_first else x.transpose(0, 1)
                    normed = F.layer_norm(tokens.float(), (self.width,), eps=ln.eps)
            if i in slot:
                w = weights[..., slot[i]].reshape(lead)
                if acc is None:
                    acc = normed * w
                elif differentiable:
                    acc = acc + normed * w
                else:
                    acc.addcmul_(normed, w)
        acc = cast(torch.Tensor, acc)  # layer_ids is never empty (resolve_layers)
        if ln.weight is not None:
            acc = acc * ln.weight.float()
        if ln.bias is not None:
            acc = acc + ln.bias.float() * weights.sum(-1).reshape(lead)
        return acc

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[N, T, width]`` -> ``[N, T, embed_dim]``: CLIP's ``proj`` into the joint image-text space."""
        return tokens @ self.visual.proj.to(tokens.dtype)


def build_backbone(
    backbone: str,
    pretrained: str | None,
    *,
    keep_text: bool,
    prompts: Sequence[str],
    extra_prompts: Sequence[str] = (),
    load_weights: bool = True,
) -> CLIPBackbone:
    """Resolve, download (through the Hugging Face cache) and build a frozen :class:`CLIPBackbone`.

    ``extra_prompts`` are encoded with ``prompts`` in one text pass and cached (:attr:`CLIPBackbone.prompt_features`).
    """
    source = resolve_backbone(backbone, pretrained, load_weights=load_weights)
    clip = create_clip(source)
    return CLIPBackbone(clip, source, keep_text=keep_text, prompts=prompts, extra_prompts=extra_prompts)


def encode_prompts(clip: nn.Module, model_name: str, prompts: Sequence[str]) -> torch.Tensor:
    """``[K, E]`` normalised text vectors (float32) of ``prompts``: CLIP's ``encode_text``.

    With a CLIP-style causal text encoder the token sequences are cut after the longest
    end-of-text token: the pooled features do not depend on later positions, so the result is
    ``encode_text``'s (to float rounding) for a fraction of the work (about 7 of 77 positions).
    """
    ids = open_clip.get_tokenizer(model_name)(list(prompts))
    with torch.no_grad():
        if is_causal_eot_text(clip):
            text = _run_tower(TextTower(clip, ""), ids)
        else:
            text = clip.encode_text(ids)
    return F.normalize(text.float(), dim=-1)


def _run_tower(tower: TextTower, ids: torch.Tensor) -> torch.Tensor:
    """Tokenised prompts ``[K, context]`` through a :class:`TextTower`, cut after the last end-of-text token."""
    eot = tower.eot_index(ids)
    cut = ids[:, : int(eot.max()) + 1]
    return tower(tower.token_embedding(cut), eot)


def resolve_layers(layers: None | int | Sequence[int], depth: int) -> list[int]:
    """METHOD.md step 3: the chosen layers as sorted 0-based block indices.

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
