"""temu.explain / TeMuIQA.explain: attribute scores and maps, checked against the zero-shot rule itself.

The reference is written from docs/method.md ("Attributes") with open_clip's own APIs (``forward_intermediates``,
``ln_post``, ``proj``, ``encode_text``), not with temu's code, as in test_zero_shot.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from temu_testing import TINY_CONFIG, perturb_head

import temu
from temu import DEFAULT_ATTRIBUTES, TeMuIQA
from temu.errors import BackboneError, InvalidAttributesError

MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073)).reshape(1, 3, 1, 1)
STD = torch.tensor((0.26862954, 0.26130258, 0.27577711)).reshape(1, 3, 1, 1)


def reference_token_scores(clip, x01: torch.Tensor, layers_1based: list[int], pairs) -> torch.Tensor:
    """``[N, T, A]``: per token (the [cls] token first) and prompt pair, softmax(logit_scale.exp() *
    [p.t_pos, p.t_neg])[0] with p = normalize(mean over the layers of ln_post(X_l) @ proj)."""
    import open_clip

    visual = clip.visual
    out = visual.forward_intermediates(
        (x01 - MEAN) / STD,
        indices=[i - 1 for i in layers_1based],
        output_fmt="NLC",
        output_extra_tokens=True,
        intermediates_only=True,
    )
    per_layer = [
        visual.ln_post(torch.cat([cls_tok, patches], dim=1)) @ visual.proj
        for cls_tok, patches in zip(out["image_intermediates_prefix"], out["image_intermediates"])
    ]
    p = F.normalize(torch.stack(per_layer).mean(0), dim=-1)
    tokenizer = open_clip.get_tokenizer("tiny-clip")
    columns = []
    for positive, negative in pairs:
        t = F.normalize(clip.encode_text(tokenizer([positive, negative])), dim=-1)
        columns.append((clip.logit_scale.exp() * p @ t.T).softmax(dim=-1)[..., 0])
    return torch.stack(columns, dim=-1)


@pytest.fixture(scope="module")
def batch(photos) -> torch.Tensor:
    """Four photographs at the tiny backbone's native 32x32 (a 4x4 patch grid)."""
    from PIL import Image

    arrs = [np.asarray(Image.fromarray(a).resize((32, 32), Image.BICUBIC)) for a in photos.values()]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255


def tiny_model(tiny_checkpoint, *, trained: bool, **kwargs) -> TeMuIQA:
    kwargs.setdefault("image_size", 32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TeMuIQA(backbone=str(TINY_CONFIG), pretrained=str(tiny_checkpoint), **kwargs).eval()
    if trained:
        perturb_head(model)  # learned layer weights, adapter and patch weights: attributes must not see them
    return model


@pytest.mark.parametrize("variant, layers, expected", [("S", None, [1, 2, 3]), ("I", [1, 3], [1, 3])])
def test_attributes_are_the_zero_shot_rule_with_their_prompts(
    tiny_clip, tiny_checkpoint, batch, variant, layers, expected
):
    model = tiny_model(tiny_checkpoint, trained=True, variant=variant, layers=layers)
    with torch.no_grad():
        out = model.explain(batch)
        ref = reference_token_scores(tiny_clip, batch, expected, DEFAULT_ATTRIBUTES.values())  # [4, 17, 7]
    assert (
        out.names
        == tuple(DEFAULT_ATTRIBUTES)
        == (
            "sharpness",
            "noise",
            "exposure",
            "brightness",
            "contrast",
            "colourfulness",
            "compression",
        )
    )
    torch.testing.assert_close(out.attributes, ref.mean(dim=1), atol=1e-5, rtol=0)
    assert out.attribute_maps.shape == (4, 7, 4, 4)
    torch.testing.assert_close(out.attribute_maps, ref[:, 1:].permute(0, 2, 1).reshape(4, 7, 4, 4), atol=1e-5, rtol=0)
    # each map's mean is the patch part of its score: score = ([cls] + sum of the patches) / 17
    patch_part = (out.attributes * 17 - ref[:, 0]) / 16
    torch.testing.assert_close(out.attribute_maps.mean(dim=(2, 3)), patch_part, atol=1e-5, rtol=0)
    assert ref.mean(dim=1).std(dim=0).min() > 1e-3  # the images really differ, so the comparison means something
    # the quality outputs are forward's, from the trained head
    maps = model(batch, return_maps=True)
    torch.testing.assert_close(out.score, maps.score, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.score_map, maps.score_map, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.weight_map, maps.weight_map, atol=1e-6, rtol=0)


def test_untrained_quality_score_is_the_good_bad_photo_attribute(tiny_checkpoint, batch):
    good_bad = {"quality prompts": ("Good photo.", "Bad photo.")}
    untrained = tiny_model(tiny_checkpoint, trained=False)
    with torch.no_grad():
        out = untrained.explain(batch, good_bad)
        torch.testing.assert_close(out.attributes[:, 0], out.score, atol=1e-6, rtol=0)
        torch.testing.assert_close(out.attribute_maps[:, 0], out.score_map, atol=1e-6, rtol=0)
        trained = tiny_model(tiny_checkpoint, trained=True)
        moved = trained.explain(batch, good_bad)
    assert (moved.score - moved.attributes[:, 0]).abs().max() > 1e-3  # a trained head's score is its own...
    torch.testing.assert_close(moved.attributes, out.attributes, atol=1e-6, rtol=0)  # ...its attributes are not


@pytest.mark.parametrize("variant", ["S", "I"])
def test_custom_attribute_dict_is_encoded_once_and_cached(tiny_clip, tiny_checkpoint, batch, monkeypatch, variant):
    import temu.model.backbone

    model = tiny_model(tiny_checkpoint, trained=True, variant=variant)
    builds = []
    real_create = temu.model.backbone.create_clip
    monkeypatch.setattr(temu.model.backbone, "create_clip", lambda source: builds.append(source) or real_create(source))
    pairs = {"cat": ("A photo of a cat.", "A photo of a dog."), "sharpness": ("Sharp photo.", "Blurry photo.")}
    with torch.no_grad():
        first = model.explain(batch, pairs)
        again = model.explain(batch[:2], pairs)
        ref = reference_token_scores(tiny_clip, batch, [1, 2, 3], pairs.values())
    assert first.names == ("cat", "sharpness")
    torch.testing.assert_close(first.attributes, ref.mean(dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close(again.attributes, first.attributes[:2], atol=1e-6, rtol=0)
    # variant S keeps no text encoder: one rebuild for the new prompts, then the cache; variant I uses its own
    assert len(builds) == (1 if variant == "S" else 0)
    assert "A photo of a cat." in model.backbone.prompt_features
    assert len(model.attribute_text_cache) == 1


@pytest.mark.parametrize("variant", ["S", "I"])
def test_prompts_are_encoded_in_fp32_even_under_autocast(tiny_clip, tiny_checkpoint, variant):
    """The text vectors are reused for every image: a bf16 autocast around the first call must not round them."""
    import open_clip

    model = tiny_model(tiny_checkpoint, trained=False, variant=variant)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ours = model.backbone.encode(["A photo of a cat.", "Sharp photo."])
    with torch.no_grad():
        expected = F.normalize(
            tiny_clip.encode_text(open_clip.get_tokenizer("tiny-clip")(["A photo of a cat.", "Sharp photo."])), dim=-1
        )
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_new_prompts_on_random_weights_without_text_encoder_are_refused(batch):
    model = TeMuIQA(backbone=str(TINY_CONFIG), pretrained=None, image_size=32)
    with torch.no_grad():
        assert model.explain(batch, ["noise"]).attributes.shape == (4, 1)  # the default set is encoded at build
        with pytest.raises(BackboneError, match="random weights"):
            model.explain(batch, {"cat": ("A photo of a cat.", "A photo of a dog.")})


@pytest.mark.parametrize(
    "attributes, message",
    [
        (["sharpnes"], "Did you mean sharpness.*for other prompts pass a dict"),
        (["noise", "noise"], "listed twice"),
        ("noise", "pass a list of names"),
        ({"quality": ("Good.", "Bad.")}, "reserved"),
        ({"x": ("Only one prompt.",)}, "pair"),
        ({"x": ("Same.", "Same.")}, "the same"),
        ([], "no attributes"),
    ],
)
def test_unusable_attributes_are_refused_before_any_image_is_read(attributes, message, tiny_checkpoint):
    model = tiny_model(tiny_checkpoint, trained=False)
    with pytest.raises(InvalidAttributesError, match=message):
        temu.explain("no/such/file.jpg", model=model, attributes=attributes)


def test_explain_api_matches_score_and_is_batch_invariant(tiny_checkpoint, photo_files):
    model = tiny_model(tiny_checkpoint, trained=True, image_size=64)
    paths = [photo_files[name] for name in ("astronaut", "coffee", "chelsea", "rocket")]
    together = temu.explain(paths, model=model, batch_size=4)
    one_by_one = temu.explain(paths, model=model, batch_size=1)
    single = temu.explain(paths[1], model=model, attributes=["noise", "sharpness"])
    assert isinstance(single, temu.Explanation) and isinstance(together, list) and len(together) == 4
    assert list(single.attributes) == ["noise", "sharpness"]
    assert list(single.maps) == ["quality", "weight", "noise", "sharpness"]
    assert single.name == str(paths[1])
    scores = temu.score(paths, model=model)
    assert [e.score for e in together] == pytest.approx(scores, abs=1e-6)
    for a, b in zip(together, one_by_one):
        assert a.score == pytest.approx(b.score, abs=1e-5)
        assert list(a.attributes) == list(DEFAULT_ATTRIBUTES)
        assert list(a.attributes.values()) == pytest.approx(list(b.attributes.values()), abs=1e-5)
        for name, patch_map in a.maps.items():
            assert patch_map.shape == (8, 8) and patch_map.dtype == np.float32
            np.testing.assert_allclose(patch_map, b.maps[name], atol=1e-5, rtol=0)
    assert single.attributes["noise"] == pytest.approx(together[1].attributes["noise"], abs=1e-5)
    assert temu.explain([], model=model) == []


def test_explain_runs_the_backbone_once(tiny_checkpoint, batch):
    """One pass for the score and every attribute: each block runs once per batch, as for the score alone;
    blocks after the last chosen layer do not run at all."""
    model = tiny_model(tiny_checkpoint, trained=True, layers=[1, 2])
    calls = [0, 0, 0]
    blocks = model.backbone.visual.transformer.resblocks
    for i, block in enumerate(blocks):
        block.register_forward_hook(lambda module, args, out, i=i: calls.__setitem__(i, calls[i] + 1))
    with torch.no_grad():
        model(batch)
        assert calls == [1, 1, 0]
        model.explain(batch)
    assert calls == [2, 2, 0]


def test_moving_the_model_drops_the_per_device_text_cache(tiny_checkpoint, batch):
    """Text vectors live on the model's device: moving it (``.to``, ``.cuda()``) must not leave them behind."""
    model = tiny_model(tiny_checkpoint, trained=False)
    with torch.no_grad():
        before = model.explain(batch, ["brightness"]).attributes
        assert len(model.attribute_text_cache) == 1
        model.to(torch.device("cpu"))
        assert model.attribute_text_cache == {}
        after = model.explain(batch, ["brightness"]).attributes
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    assert "Bright photo." in model.backbone.prompt_features  # device-independent vectors are kept


def test_default_attribute_table_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name, (positive, negative) in DEFAULT_ATTRIBUTES.items():
        assert f'| `{name}` | "{positive}" | "{negative}" |' in readme
