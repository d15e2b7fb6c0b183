"""CLIP's frozen text encoder: prompt vectors, and the tower run on token embeddings (for learned prompts)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BackboneError


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


def encode_prompts(
    clip: nn.Module, tokenizer: Callable[[list[str]], torch.Tensor], prompts: Sequence[str]
) -> torch.Tensor:
    """``[K, E]`` normalised text vectors (float32) of ``prompts``: CLIP's ``encode_text``.

    ``tokenizer`` is the model's own (:meth:`BackboneSource.tokenizer`, or ``open_clip.get_tokenizer(name)``).

    With a CLIP-style causal text encoder the token sequences are cut after the longest
    end-of-text token: the pooled features do not depend on later positions, so the result is
    ``encode_text``'s (to float rounding) for a fraction of the work (about 7 of 77 positions).
    """
    ids = tokenizer(list(prompts))
    with torch.no_grad():
        if is_causal_eot_text(clip):
            text = run_tower(TextTower(clip, ""), ids)
        else:
            text = clip.encode_text(ids)
    return F.normalize(text.float(), dim=-1)


def run_tower(tower: TextTower, ids: torch.Tensor) -> torch.Tensor:
    """Tokenised prompts ``[K, context]`` through a :class:`TextTower`, cut after the last end-of-text token."""
    eot = tower.eot_index(ids)
    cut = ids[:, : int(eot.max()) + 1]
    return tower(tower.token_embedding(cut), eot)
