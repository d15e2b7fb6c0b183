"""A faster attention block for the frozen image tower: open_clip's block computed through SDPA."""

from __future__ import annotations

import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn


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


def use_sdpa_blocks(visual: nn.Module) -> int:
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
