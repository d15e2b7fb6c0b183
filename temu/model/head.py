"""The trainable head of TeMu-IQA: every parameter that fine-tuning changes, nothing else.

Initialised so that the untrained model is exactly the zero-shot scorer (docs/method.md, "The zero-shot scorer"):
uniform layer weights, a zero-initialised adapter, and equal patch weights.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import HeadConfig
from .prompts import CoCoOpPrompts
from .text import TextTower


class Adapter(nn.Module):
    """Residual bottleneck in the joint space: ``e + up(gelu(down(e)))``, with ``up`` zero at init."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


class TokenScores(NamedTuple):
    """Per-image score ``[N]`` and per-token scores and weights ``[N, T]`` (token 0 is the [cls] token)."""

    score: torch.Tensor
    token_scores: torch.Tensor
    token_weights: torch.Tensor


class TeMuHead(nn.Module):
    """Layer weights, adapter, patch weighting (MANIQA-style Linear -> sigmoid) and, for variant I, CoCoOp prompts."""

    def __init__(
        self, num_layers: int, embed_dim: int, config: HeadConfig, prompts: CoCoOpPrompts | None = None
    ) -> None:
        super().__init__()
        logits = torch.zeros(num_layers)
        if config.learn_layer_weights:
            self.layer_logits = nn.Parameter(logits)
        else:
            self.register_buffer("layer_logits", logits, persistent=False)
        self.adapter = Adapter(embed_dim, config.adapter_dim) if config.adapter_dim else None
        self.patch_weight = nn.Linear(embed_dim, 1)
        nn.init.zeros_(self.patch_weight.weight)
        nn.init.zeros_(self.patch_weight.bias)
        self.prompts = prompts

    def layer_weights(self) -> torch.Tensor:
        """``[L]`` softmax weights over the chosen layers, uniform at init."""
        return torch.softmax(self.layer_logits.float(), dim=0)

    def forward(
        self,
        tokens: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        tower: TextTower | None = None,
    ) -> TokenScores:
        """Score tokens in the joint space.

        tokens: ``[N, T, E]`` aggregated, projected tokens (unnormalised; [cls] first);
        text_features: ``[2, E]`` normalised static prompt vectors (variant S);
        logit_scale: CLIP's (exponentiated) logit scale, a scalar tensor.
        """
        tokens = tokens.float()
        if self.adapter is not None:
            tokens = self.adapter(tokens)
        p = F.normalize(tokens, dim=-1)
        if self.prompts is not None:
            if tower is None:
                raise ValueError("variant 'I' needs the backbone's text tower")
            text = self.prompts(p[:, 0], tower)  # [N, 2, E], conditioned on the [cls] vector
            direction = text[:, 0] - text[:, 1]  # [N, E]
            logits = torch.einsum("nte,ne->nt", p, direction)
        else:
            direction = (text_features[0] - text_features[1]).float()
            logits = p @ direction
        # softmax(scale * [cos_good, cos_bad])[good] == sigmoid(scale * (cos_good - cos_bad))
        token_scores = torch.sigmoid(logit_scale * logits)
        token_weights = torch.sigmoid(self.patch_weight(p).squeeze(-1))
        score = (token_weights * token_scores).sum(dim=1) / token_weights.sum(dim=1)
        return TokenScores(score, token_scores, token_weights)


def zero_shot_token_scores(tokens: torch.Tensor, text_pairs: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """The zero-shot token score (docs/method.md) for several prompt pairs at once; no trainable parameter involved.

    tokens: ``[N, T, E]`` aggregated, projected tokens (unnormalised); text_pairs: ``[A, 2, E]``
    normalised (positive, negative) text vectors; logit_scale: CLIP's exponentiated scale.
    Returns ``[N, T, A]`` in [0, 1]: ``softmax(logit_scale * [p.t_pos, p.t_neg])[pos]`` per token and pair.
    """
    p = F.normalize(tokens.float(), dim=-1)
    direction = (text_pairs[:, 0] - text_pairs[:, 1]).float()  # [A, E]
    return torch.sigmoid(logit_scale * (p @ direction.T))
