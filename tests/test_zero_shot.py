"""The untrained model is exactly the zero-shot rule of docs/method.md ("The zero-shot scorer").

The reference below is written from the rule itself, with open_clip's own APIs
(``forward_intermediates``, ``ln_post``, ``proj``, ``encode_text``). It does not use temu's code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from temu import TeMuIQA

TINY = str(Path(__file__).parent / "assets" / "tiny-clip.json")

MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073)).reshape(1, 3, 1, 1)
STD = torch.tensor((0.26862954, 0.26130258, 0.27577711)).reshape(1, 3, 1, 1)


def zero_shot_reference(
    clip, x01: torch.Tensor, layers_1based: list[int], prompts=("Good photo.", "Bad photo.")
) -> torch.Tensor:
    """docs/method.md, "The zero-shot scorer", literally: e_l = ln_post(X_l) @ proj per layer and token; p = normalize(mean_l e_l);
    s = softmax(logit_scale.exp() * [p.t_good, p.t_bad])[0]; score = plain mean of s over [cls] + patches."""
    import open_clip

    visual = clip.visual
    x = (x01 - MEAN) / STD
    out = visual.forward_intermediates(
        x, indices=[i - 1 for i in layers_1based], output_fmt="NLC", output_extra_tokens=True, intermediates_only=True
    )
    per_layer = []
    for cls_tok, patches in zip(out["image_intermediates_prefix"], out["image_intermediates"]):
        tokens = torch.cat([cls_tok, patches], dim=1)  # [N, 1 + h*w, width]
        per_layer.append(visual.ln_post(tokens) @ visual.proj)
    p = F.normalize(torch.stack(per_layer).mean(0), dim=-1)
    ids = open_clip.get_tokenizer("tiny-clip")(list(prompts))
    t = F.normalize(clip.encode_text(ids), dim=-1)  # [2, E]
    logits = clip.logit_scale.exp() * p @ t.T  # [N, T, 2]
    s = logits.softmax(dim=-1)[..., 0]
    return s.mean(dim=1)


@pytest.fixture(scope="module")
def batch(photos) -> torch.Tensor:
    """Four photographs at the tiny backbone's native 32x32 (no positional-embedding resize involved)."""
    from PIL import Image

    arrs = [np.asarray(Image.fromarray(a).resize((32, 32), Image.BICUBIC)) for a in photos.values()]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("variant", ["S", "I"])
@pytest.mark.parametrize("layers, expected", [(None, [1, 2, 3]), (2, [1, 2]), ([1, 3], [1, 3]), ([3], [3])])
def test_untrained_model_is_the_zero_shot_rule(tiny_clip, tiny_checkpoint, batch, variant, layers, expected):
    model = TeMuIQA(
        backbone=TINY, pretrained=str(tiny_checkpoint), variant=variant, layers=layers, image_size=32
    ).eval()
    with torch.no_grad():
        ours = model(batch)
        ref = zero_shot_reference(tiny_clip, batch, expected)
    assert [i + 1 for i in model.layer_ids] == expected
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert ref.std() > 1e-3  # the images really score differently, so the comparison means something


def test_zero_shot_rule_differs_from_last_layer_clip_iqa(tiny_clip, tiny_checkpoint, batch):
    """Guard against a reference that cannot fail: averaging layers is not the last layer alone."""
    model = TeMuIQA(backbone=TINY, pretrained=str(tiny_checkpoint), image_size=32)
    with torch.no_grad():
        ours = model(batch)
        last_only = zero_shot_reference(tiny_clip, batch, [3])
    assert (ours - last_only).abs().max() > 1e-3


def test_resized_positional_embeddings_are_cached_per_grid(tiny_checkpoint):
    """docs/method.md ("Other resolutions") keeps one resized table per grid (their values: tests/test_head_reference.py)."""
    model = TeMuIQA(backbone=TINY, pretrained=str(tiny_checkpoint), image_size=64)
    table = model.backbone.positional_embedding((8, 8))
    assert table.shape == (1 + 8 * 8, 64)
    assert model.backbone.positional_embedding((8, 8)) is table
    assert model.backbone.positional_embedding((6, 9)) is not table
