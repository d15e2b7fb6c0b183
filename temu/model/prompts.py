"""Prompts for text-guided patch scoring (docs/method.md, "Text-guided patch scoring" and "Variants").

Variant S uses static prompts: their text vectors are computed once by the backbone
(:attr:`CLIPBackbone.text_features`). Variant I learns them per image with CoCoOp:

* The two prompts are tokenised. Their longest common run of trailing words (``photo .`` for
  "Good photo." / "Bad photo.") becomes the shared *context*. The words that differ
  (``good`` / ``bad``) stay fixed class tokens, as class names do in CoCoOp.
* Each context vector is CLIP's embedding of its word, plus a learned offset ``ctx_delta``
  (zero at init), plus ``meta_net(image vector)``. The meta-net's last layer starts at zero.
  This is CoOp's "ctx_init from words", so the untrained variant I gives exactly variant S's
  text vectors. That makes it the same zero-shot scorer, with no change at init.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .text import TextTower


def shared_suffix_length(ids: torch.Tensor, eot: torch.Tensor) -> int:
    """Number of trailing words (before end-of-text) that every tokenised prompt shares."""
    words = [ids[k, 1 : int(eot[k])].tolist() for k in range(ids.shape[0])]
    n = 0
    while all(len(w) > n for w in words) and len({w[len(w) - 1 - n] for w in words}) == 1:
        n += 1
    return n


class CoCoOpPrompts(nn.Module):
    """Instance-conditional prompt learner; trainable: ``ctx_delta`` and ``meta_net``.

    forward(image_vectors ``[N, E]``, text tower) -> normalised text vectors ``[N, K, E]``.
    """

    def __init__(
        self, prompts: Sequence[str], prompt_ids: torch.Tensor, tower: TextTower, embed_dim: int, reduction: int
    ) -> None:
        super().__init__()
        eot = tower.eot_index(prompt_ids)
        n_ctx = shared_suffix_length(prompt_ids, eot)
        if n_ctx == 0:
            raise ConfigError(
                f"prompts={list(prompts)!r}: variant 'I' learns the words the two prompts share at their end "
                "(CoCoOp context), and these share none; expected prompts such as ('Good photo.', 'Bad photo.')"
            )
        length = int(eot.max()) + 1
        ids = prompt_ids[:, :length]
        width = tower.token_embedding.weight.shape[1]
        # place[k, pos, j] = 1 where context word j sits in prompt k
        place = torch.zeros(ids.shape[0], length, n_ctx)
        for k in range(ids.shape[0]):
            for j in range(n_ctx):
                place[k, int(eot[k]) - n_ctx + j, j] = 1.0
        self.register_buffer("token_ids", ids, persistent=False)
        self.register_buffer("eot", eot, persistent=False)
        self.register_buffer("place", place, persistent=False)
        self.n_ctx = n_ctx
        self.ctx_delta = nn.Parameter(torch.zeros(n_ctx, width))
        hidden = max(1, embed_dim // reduction)
        self.meta_net = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, width))
        nn.init.zeros_(self.meta_net[2].weight)
        nn.init.zeros_(self.meta_net[2].bias)

    def forward(self, image_vectors: torch.Tensor, tower: TextTower) -> torch.Tensor:
        n, k = image_vectors.shape[0], self.token_ids.shape[0]
        base = tower.token_embedding(self.token_ids)  # [K, L, W], frozen word embeddings
        ctx = self.ctx_delta.unsqueeze(0) + self.meta_net(image_vectors).unsqueeze(1)  # [N, n_ctx, W]
        offsets = torch.einsum("klc,ncw->nklw", self.place.to(ctx.dtype), ctx)  # [N, K, L, W]
        embeddings = (base.unsqueeze(0) + offsets).flatten(0, 1)  # [N*K, L, W]
        text = tower(embeddings, self.eot.repeat(n))
        return nn.functional.normalize(text.float(), dim=-1).reshape(n, k, -1)
