"""A trained-like head, at patch grids other than the backbone's, computes README's "How it scores".

The reference is built here from open_clip and the README's equations, not from temu's code:

* the open_clip model is created at the input's size (``force_image_size``), so open_clip's own
  checkpoint loader resizes the positional embeddings (bicubic on the 2-D grid, [cls] position
  kept: docs/method.md, "Other resolutions");
* ``forward_intermediates`` gives each chosen block's tokens; ``ln_post`` and ``proj`` take them
  into the joint space;
* the head's equations are written out with the head's weights as saved in ``model.safetensors``;
  variant I's prompt context goes into open_clip's own ``encode_text``, which runs the full
  77-token sequence (temu's text tower stops after the end-of-text token).

Every head parameter is perturbed (seeded), so no part of the head sits at its neutral init.
"""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from temu_testing import TINY_CONFIG, perturb_head
from torch import nn

from temu import TeMuIQA

MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073)).reshape(1, 3, 1, 1)
STD = torch.tensor((0.26862954, 0.26130258, 0.27577711)).reshape(1, 3, 1, 1)
PROMPTS = ("Good photo.", "Bad photo.")
# the tiny backbone's own grid is 4x4 (32 px, 8-px patches): 6x9 is larger and not square, 3x2 smaller
SIZES = [(48, 72), (24, 16)]
CASES = [("S", None, [1, 2, 3]), ("I", [1, 3], [1, 3])]  # variant, layers, the layers that means


@pytest.fixture(scope="module")
def heads(tiny_kwargs, tmp_path_factory) -> dict[str, TeMuIQA]:
    """Variant S (all layers) and I (layers 1 and 3) with every head parameter moved off its init."""
    out = {}
    for k, (variant, layers, _) in enumerate(CASES):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(k)
            model = TeMuIQA(**{**tiny_kwargs, "image_size": None}, variant=variant, layers=layers).eval()
        perturb_head(model, seed=10 + k, scale=0.5)
        out[variant] = model
    return out


def clip_at(size: tuple[int, int], checkpoint: str) -> nn.Module:
    """The tiny open_clip model built for ``size`` inputs: open_clip resizes the positional embeddings."""
    open_clip.add_model_config(TINY_CONFIG)
    return open_clip.create_model("tiny-clip", pretrained=checkpoint, force_image_size=size).eval()


def photo_batch(photos, size: tuple[int, int]) -> torch.Tensor:
    from PIL import Image

    h, w = size
    arrs = [np.asarray(Image.fromarray(a).resize((w, h), Image.BICUBIC)) for a in photos.values()]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255


def cocoop_text(clip: nn.Module, head: dict[str, torch.Tensor], image_vectors: torch.Tensor) -> torch.Tensor:
    """README: each context vector (the prompts' shared words "photo .") is CLIP's word embedding plus the
    learned offset plus meta-net(p of the [cls] token); meta-net = Linear -> ReLU -> Linear. -> [N, 2, E]."""
    n = image_vectors.shape[0]
    ids = open_clip.get_tokenizer("tiny-clip")(list(PROMPTS))  # [2, 77]
    eot = ids.argmax(dim=-1)  # CLIP's end-of-text token has the largest id
    hidden = F.relu(F.linear(image_vectors, head["prompts.meta_net.0.weight"], head["prompts.meta_net.0.bias"]))
    meta = F.linear(hidden, head["prompts.meta_net.2.weight"], head["prompts.meta_net.2.bias"])  # [N, W]
    context = head["prompts.ctx_delta"].unsqueeze(0) + meta.unsqueeze(1)  # [N, 2 words, W]
    words = clip.token_embedding(ids).unsqueeze(0).repeat(n, 1, 1, 1)  # [N, 2 prompts, 77, W]
    for k in range(2):
        words[:, k, eot[k] - 2 : eot[k]] += context

    class Given(nn.Module):  # open_clip's encode_text, fed these embeddings instead of its lookup
        def forward(self, _ids: torch.Tensor) -> torch.Tensor:
            return words.flatten(0, 1)

    clip.token_embedding = Given()
    text = clip.encode_text(ids.repeat(n, 1))
    return F.normalize(text, dim=-1).reshape(n, 2, -1)


def reference(clip: nn.Module, head: dict[str, torch.Tensor], x01: torch.Tensor, layers: list[int], variant: str):
    """README "How it scores" with open_clip's features: (score [N], token scores [N, T], token weights [N, T])."""
    visual = clip.visual
    out = visual.forward_intermediates(
        (x01 - MEAN) / STD, indices=[i - 1 for i in layers], output_fmt="NLC", output_extra_tokens=True,
        intermediates_only=True,
    )  # fmt: skip
    a = torch.softmax(head["layer_logits"], dim=0)  # layer weights
    e = sum(
        a[k] * (visual.ln_post(torch.cat([cls, patches], dim=1)) @ visual.proj)
        for k, (cls, patches) in enumerate(zip(out["image_intermediates_prefix"], out["image_intermediates"]))
    )
    e = e + F.linear(  # residual adapter: e + up(gelu(down(e)))
        F.gelu(F.linear(e, head["adapter.down.weight"], head["adapter.down.bias"])),
        head["adapter.up.weight"],
        head["adapter.up.bias"],
    )
    p = F.normalize(e, dim=-1)  # [N, T, E], token 0 is [cls]
    if variant == "S":
        t = F.normalize(clip.encode_text(open_clip.get_tokenizer("tiny-clip")(list(PROMPTS))), dim=-1)
        cos = p @ t.T  # [N, T, 2]
    else:
        cos = torch.einsum("nte,nke->ntk", p, cocoop_text(clip, head, p[:, 0]))
    s = (clip.logit_scale.exp() * cos).softmax(dim=-1)[..., 0]
    w = torch.sigmoid(F.linear(p, head["patch_weight.weight"], head["patch_weight.bias"]))[..., 0]
    return (w * s).sum(dim=1) / w.sum(dim=1), s, w


@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
@pytest.mark.parametrize("variant, layers", [(v, expected) for v, _, expected in CASES], ids=["S", "I"])
def test_trained_like_head_at_another_grid_matches_the_readme_equations(
    heads, tiny_checkpoint, photos, tmp_path, size, variant, layers
):
    model = heads[variant]
    head = load_file(model.save_pretrained(tmp_path / "head") / "model.safetensors")  # the head as saved
    x = photo_batch(photos, size)
    grid = (size[0] // 8, size[1] // 8)
    with torch.no_grad():
        ref_score, ref_s, ref_w = reference(clip_at(size, str(tiny_checkpoint)), head, x, layers, variant)
        ours = model(x, return_maps=True)
    torch.testing.assert_close(ours.score, ref_score, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.score_map, ref_s[:, 1:].reshape(-1, *grid), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.weight_map, ref_w[:, 1:].reshape(-1, *grid), atol=1e-5, rtol=0)
    # with autograd on (as_loss: gradients reach the image) the blocks take another path: same scores
    xg = x.clone().requires_grad_(True)
    torch.testing.assert_close(model(xg).detach(), ref_score, atol=1e-5, rtol=0)
    assert ref_score.std() > 1e-3  # the photographs score differently, so the comparison means something


def test_the_reference_can_tell_the_parts_apart(heads, tiny_checkpoint, photos, tmp_path):
    """Guards against a comparison that cannot fail: the parts under test each move the score by far more
    than the tolerance (1e-5) above."""
    model = heads["I"]
    head = load_file(model.save_pretrained(tmp_path / "head") / "model.safetensors")
    size, layers = SIZES[0], CASES[1][2]
    x = photo_batch(photos, size)
    with torch.no_grad():
        ours = model(x)
        # positional embeddings resized bilinearly instead of bicubic
        bilinear = clip_at(size, str(tiny_checkpoint))
        native = clip_at((32, 32), str(tiny_checkpoint)).visual.positional_embedding
        grid = native[1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(6, 9), mode="bilinear", align_corners=False, antialias=True)
        bilinear.visual.positional_embedding.copy_(torch.cat([native[:1], grid.permute(0, 2, 3, 1).reshape(54, -1)]))
        changed = {"bilinear positional embeddings": reference(bilinear, head, x, layers, "I")[0]}
        for key, label in (
            ("prompts.meta_net.2.weight", "no meta-net"),
            ("adapter.up.weight", "no adapter"),
            ("patch_weight.weight", "equal patch weights"),
            ("layer_logits", "uniform layer weights"),
        ):
            zeroed = {**head, key: torch.zeros_like(head[key])}
            changed[label] = reference(clip_at(size, str(tiny_checkpoint)), zeroed, x, layers, "I")[0]
    for label, score in changed.items():
        assert (score - ours).abs().max() > 1e-3, label
