"""The frozen CLIP image tower with streamed multi-level features (see docs/method.md, "Inference").

It runs the image tower block by block and *streams* the layer aggregation: after each chosen
block it adds the block's layer-normalised tokens to one running sum, so memory does not grow
with the number of layers. Which weights to build is :mod:`temu.model.weights`' job; the text
encoder is :mod:`temu.model.text`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn

from ..errors import BackboneError
from .blocks import use_sdpa_blocks
from .text import TextTower, encode_prompts, run_tower
from .weights import BackboneSource, create_clip, resolve_backbone


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


class CLIPBackbone(nn.Module):
    """Frozen CLIP image tower (+ text tower for variant I) with streamed multi-level features.

    It keeps an internal cache of positional-embedding tables resized to other patch grids
    (docs/method.md, "Other resolutions"), keyed by grid, device and dtype; moving the module clears it.
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
        use_sdpa_blocks(visual)
        self.patch_size: tuple[int, int] = tuple(visual.patch_size)  # type: ignore[assignment]
        self.native_grid: tuple[int, int] = tuple(visual.grid_size)  # type: ignore[assignment]
        self.width = int(visual.conv1.out_channels)
        self.depth = len(visual.transformer.resblocks)
        self.embed_dim = int(visual.proj.shape[1])
        self.register_buffer(
            "logit_scale", clip.logit_scale.detach().exp().reshape(()).clone().float(), persistent=False
        )

        tokenizer = source.tokenizer()
        ids = tokenizer(list(prompts))
        extra = [p for p in dict.fromkeys(extra_prompts) if p not in prompts]
        vectors = encode_prompts(clip, tokenizer, [*prompts, *extra])  # one text pass for all
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
                    ids = self.source.tokenizer()(missing).to(device)
                    vectors = F.normalize(run_tower(self.text, ids).float(), dim=-1)
            elif self.source.random_weights:
                raise BackboneError(
                    f"backbone {self.source.label} was built with random weights and without its text encoder "
                    f"(variant 'S'), so new prompts {missing} cannot be encoded with the same weights. Use "
                    "the default attributes, or build the model from a checkpoint (pretrained=...) or as variant 'I'."
                )
            else:
                with torch.inference_mode(False), torch.autocast("cpu", enabled=False):
                    vectors = encode_prompts(create_clip(self.source), self.source.tokenizer(), missing)
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

    Args:
        backbone, pretrained: the architecture and its weights, as
            :func:`~temu.model.weights.resolve_backbone` reads them.
        keep_text: keep the text tower (variant I re-encodes prompts).
        prompts: the quality prompts, encoded once.
        extra_prompts: encoded with ``prompts`` in the same text pass and cached
            (:attr:`CLIPBackbone.prompt_features`).
        load_weights: False builds the architecture only (the weights come later).
    """
    source = resolve_backbone(backbone, pretrained, load_weights=load_weights)
    clip = create_clip(source)
    return CLIPBackbone(clip, source, keep_text=keep_text, prompts=prompts, extra_prompts=extra_prompts)
