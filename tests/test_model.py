"""TeMuIQA as an nn.Module: shapes, sizes, layers, gradients, freezing, determinism, backbone checks."""

from __future__ import annotations

import inspect

import pytest
import torch
from temu_testing import ASSETS, perturb_head

from temu import HeadConfig, TeMuConfig, TeMuIQA
from temu.errors import BackboneError, ConfigError, InvalidInputError
from temu.images.transforms import InputSize
from temu.model.weights import resolve_backbone


@pytest.fixture(scope="module")
def model(tiny_kwargs) -> TeMuIQA:
    m = TeMuIQA(**tiny_kwargs).eval()
    perturb_head(m)
    return m


def images(n: int, h: int = 48, w: int = 72, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_scores_and_maps_have_documented_shapes_and_ranges(model):
    x = images(3)
    with torch.no_grad():
        scores = model(x)
        out = model(x, return_maps=True)
    assert scores.shape == (3,)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert out.score_map.shape == out.weight_map.shape == (3, 8, 8)  # 64 / 8-pixel patches
    assert ((out.score_map >= 0) & (out.score_map <= 1)).all()
    assert ((out.weight_map > 0) & (out.weight_map < 1)).all()
    torch.testing.assert_close(out.score, scores)


def test_an_image_scores_the_same_alone_and_in_a_batch(model):
    x = images(5)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_input_at_model_size_is_not_resampled():
    size = InputSize(64, (8, 8))
    x = torch.rand(3, 64, 64)
    assert size(x) is x
    assert size(torch.rand(3, 50, 70)).shape == (3, 64, 64)


def test_native_size_crops_to_patch_multiples_and_upsamples_tiny_images():
    size = InputSize(None, (8, 8))
    x = torch.rand(3, 50, 70)
    out = size(x)
    assert out.shape == (3, 48, 64)
    torch.testing.assert_close(out, x[:, 1:49, 3:67])  # centred crop, no resampling
    assert size(torch.rand(3, 5, 3)).shape == (3, 8, 8)  # smaller than one patch: upsampled


def test_native_size_model_scores_kadid_like_inputs(tiny_kwargs):
    model = TeMuIQA(**{**tiny_kwargs, "image_size": None})
    with torch.no_grad():
        out = model(images(2, 384 // 8, 512 // 8), return_maps=True)
    assert out.score_map.shape == (2, 6, 8)


def test_native_size_model_scores_an_odd_margin_input_as_its_centre_crop(tiny_kwargs):
    """51x71 with 8x8 patches: the model scores rows 1:49 and columns 3:67 (tests/test_loading.py has the rule)."""
    model = TeMuIQA(**{**tiny_kwargs, "image_size": None}).eval()
    perturb_head(model)
    pixels = torch.randint(0, 256, (2, 3, 51, 71), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    with torch.no_grad():
        for x in (pixels, pixels.float() / 255):
            out = model(x, return_maps=True)
            crop = model(x[..., 1:49, 3:67], return_maps=True)
            assert out.score_map.shape == (2, 6, 8)
            torch.testing.assert_close(out.score, crop.score, rtol=0, atol=0)
            torch.testing.assert_close(out.score_map, crop.score_map, rtol=0, atol=0)
            shifted = model(x[..., 2:50, 3:67])  # one row off: other pixels, another score
            assert not torch.equal(shifted, out.score)


def test_tiny_images_are_upsampled_and_scored(model):
    with torch.no_grad():
        s = model(torch.rand(1, 3, 2, 3))
    assert s.shape == (1,) and 0 <= float(s) <= 1


@pytest.mark.parametrize("layers", [0, 4, [0, 1], [1, 1], [1, 4], [], "all", True, [True], 2.0, [-1, 999]])
def test_impossible_layer_choices_are_refused(tiny_kwargs, layers):
    with pytest.raises(ConfigError, match=r"^layers=.*: .*expected"):
        TeMuIQA(**tiny_kwargs, layers=layers)


def test_only_the_head_is_trainable_and_the_backbone_stays_in_eval(tiny_kwargs):
    model = TeMuIQA(**tiny_kwargs).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    assert model.head.training and not model.backbone.training
    assert model.num_head_parameters == sum(p.numel() for p in model.head.parameters())


def test_training_step_reaches_head_parameters_only(tiny_kwargs):
    model = TeMuIQA(**tiny_kwargs).train()
    perturb_head(model)  # move off the zero init so every head parameter gets a gradient
    loss = model(images(2)).sum()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    assert all(p.grad is None for p in model.backbone.parameters())


def test_gradients_reach_the_input_image(model):
    x = images(2).requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_head_size_for_both_variants(tiny_kwargs):
    s = TeMuIQA(**tiny_kwargs, variant="S")
    i = TeMuIQA(**tiny_kwargs, variant="I")
    assert i.num_head_parameters > s.num_head_parameters
    no_adapter = TeMuIQA(**tiny_kwargs, head=HeadConfig(adapter_dim=0, learn_layer_weights=False))
    assert no_adapter.num_head_parameters == 32 + 1  # the patch-weight Linear only


def activations(model: TeMuIQA) -> set[type]:
    from open_clip.transformer import QuickGELU

    return {type(m) for m in model.backbone.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))}


def test_default_backbone_is_openai_vit_l14_with_quickgelu():
    """OpenAI weights need QuickGELU: the default must build it, not warn about it."""
    from open_clip.transformer import QuickGELU

    defaults = {
        k: v.default
        for k, v in inspect.signature(TeMuIQA.__init__).parameters.items()
        if k in ("backbone", "pretrained", "variant", "layers", "image_size", "prompts")
    }
    config = TeMuConfig()
    assert defaults == {k: getattr(config, k) for k in defaults}  # TeMuIQA() and TeMuConfig() agree
    model = TeMuIQA.from_config(config, load_weights=False)
    assert activations(model) == {QuickGELU}
    assert model.config.backbone == "ViT-L-14" and model.config.pretrained == "openai"
    assert model.config.image_size == 448 and len(model.layer_ids) == 24
    assert model.num_head_parameters < 1_000_000


@pytest.mark.parametrize(
    "backbone, pretrained, quick",
    [("ViT-B-32-quickgelu", "openai", True), ("ViT-B-32", "laion2b_s34b_b79k", False)],  # GELU-trained weights
)
def test_activation_follows_what_the_weights_were_trained_with(backbone, pretrained, quick):
    from open_clip.transformer import QuickGELU

    model = TeMuIQA.from_config(TeMuConfig(backbone=backbone, pretrained=pretrained), load_weights=False)
    assert activations(model) == ({QuickGELU} if quick else {torch.nn.GELU})


def test_unknown_backbone_name_suggests_close_matches():
    with pytest.raises(BackboneError, match="Did you mean .*ViT-L-14"):
        resolve_backbone("ViT-L-41", "openai", load_weights=False)


def test_unknown_pretrained_tag_lists_the_tags():
    with pytest.raises(BackboneError, match="openai"):
        resolve_backbone("ViT-B-16", "not-a-tag", load_weights=False)


def test_backbone_without_a_vit_image_tower_is_refused(tmp_path):
    config = ASSETS / "tiny-resnet-clip.json"
    with pytest.raises(BackboneError, match="VisionTransformer"):
        TeMuIQA(backbone=str(config), pretrained=None)


def test_variant_i_needs_prompts_sharing_words(tiny_kwargs):
    with pytest.raises(ValueError, match="share"):
        TeMuIQA(**tiny_kwargs, variant="I", prompts=("Sharp", "Blurry"))


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(3, 32, 32), "4 dimensions"),
        (torch.rand(2, 1, 32, 32), "3 \\(RGB\\) channels"),
        (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
        (torch.full((1, 3, 32, 32), 2.0), "\\[0, 1\\]"),
        (torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.int64), "divide by 255"),
    ],
)
def test_model_refuses_bad_tensors(model, bad, message):
    with pytest.raises(InvalidInputError, match=message):
        model(bad)


@pytest.mark.slow
def test_compiled_backbone_scores_like_eager(tiny_kwargs):
    model = TeMuIQA(**tiny_kwargs).eval()
    keys = list(model.state_dict())
    x = images(2)
    with torch.inference_mode():
        eager = model(x)
        compiled = model.compile_backbone(dynamic=False)(x)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)
    assert list(model.state_dict()) == keys  # saving and loading heads is unaffected


def test_layer_aggregation_is_streamed(tmp_path):
    """Tensors of token size alive at the last block do not grow with the number of layers aggregated."""
    import gc
    import json

    config = json.loads((ASSETS / "tiny-clip.json").read_text())
    config["vision_cfg"]["layers"] = 8
    (tmp_path / "deep-tiny.json").write_text(json.dumps(config))
    x = images(2, 64, 64)
    live = {}
    for k in (2, 8):
        model = TeMuIQA(
            backbone=str(tmp_path / "deep-tiny.json"), pretrained=None, image_size=64, layers=list(range(9 - k, 9))
        ).eval()
        counts = []

        def count(module, inputs, output, counts=counts):
            counts.append(sum(1 for o in gc.get_objects() if type(o) is torch.Tensor and tuple(o.shape) == (2, 65, 64)))

        model.backbone.visual.transformer.resblocks[-1].register_forward_hook(count)
        with torch.inference_mode():
            model(x)
        live[k] = counts[0]
    assert live[8] == live[2] and live[8] <= 5, live  # holding every layer would keep >= 8 alive


def test_model_pickles_and_deep_copies_with_identical_scores(tiny_kwargs):
    import copy
    import pickle

    model = TeMuIQA(**tiny_kwargs, variant="I").eval()
    perturb_head(model)
    x = images(2, 64, 64)
    with torch.inference_mode():
        expected = model(x)
        for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert other is not model
            torch.testing.assert_close(other(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_any_float_dtype_scores_like_its_float32_value_at_every_size(model, dtype):
    for size in ((64, 64), (48, 72)):  # the model's own size (not resampled) and another
        x = images(2, *size).to(dtype)
        with torch.no_grad():
            torch.testing.assert_close(model(x), model(x.float()), atol=0, rtol=0)


def test_native_size_inputs_above_max_pixels_are_downscaled_with_a_warning(tiny_kwargs):
    import torch.nn.functional as F

    from temu.errors import TeMuWarning

    model = TeMuIQA(**{**tiny_kwargs, "image_size": None, "max_pixels": 64 * 48}).eval()
    assert model.config.max_pixels == 3072
    x = images(1, 128, 96)
    with pytest.warns(TeMuWarning, match=r"input: 96x128 pixels exceed max_pixels=3,072; scored downscaled to 48x64"):
        with torch.no_grad():
            out = model(x, return_maps=True)
    assert out.score_map.shape == (1, 8, 6)
    small = F.interpolate(x, size=(64, 48), mode="bicubic", align_corners=False, antialias=True)
    with torch.no_grad():
        torch.testing.assert_close(out.score, model(small, check_input=False), atol=1e-6, rtol=0)
    assert InputSize(None, (8, 8), 10**6).capped(4000, 3000) == (1154, 866)  # 999,364 pixels, aspect kept
    assert InputSize(448, (14, 14), 100).target(4000, 3000) == (448, 448)  # a fixed size is never capped
    with pytest.raises(ConfigError, match="max_pixels=0: expected an int in 256..67,108,864"):
        TeMuConfig(max_pixels=0)


@pytest.fixture
def twin_backbones(tmp_path):
    """Two backbone configs both named tiny.json (different widths and depths), each with its own checkpoint."""
    import json

    import open_clip
    from safetensors.torch import save_file

    base = json.loads((ASSETS / "tiny-clip.json").read_text())
    wide = json.loads(json.dumps(base))
    wide["vision_cfg"].update(width=96, head_width=48, layers=2)
    wide["text_cfg"]["layers"] = 1
    out = {}
    for folder, cfg, seed in (("a", base, 1), ("b", wide, 2)):
        (tmp_path / folder).mkdir()
        config = tmp_path / folder / "tiny.json"
        config.write_text(json.dumps(cfg))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            clip = open_clip.CLIP(**cfg).eval()
        checkpoint = tmp_path / folder / "open_clip_model.safetensors"
        save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(checkpoint))
        out[folder] = (str(config), str(checkpoint), clip)
    return out


def _twin_scores(config: str, checkpoint: str, x: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TeMuIQA(backbone=config, pretrained=checkpoint, image_size=64).eval()
    with torch.inference_mode():
        # variant S keeps no text tower: new prompts rebuild it from (model name, checkpoint)
        attributes = model.explain(x, {"crisp": ("A crisp photo.", "A smeared photo.")}).attributes
        return model.backbone.width, model(x), attributes


def test_backbone_configs_with_one_file_name_load_side_by_side(twin_backbones):
    """open_clip registers a config by its file stem: a/tiny.json and b/tiny.json must not replace each other."""
    from concurrent.futures import ThreadPoolExecutor

    import open_clip

    from temu.model.head import zero_shot_token_scores
    from temu.model.text import encode_prompts

    x = images(2, 64, 64)
    first = {k: _twin_scores(cfg, ckpt, x) for k, (cfg, ckpt, _) in twin_backbones.items()}
    assert first["a"][0] == 64 and first["b"][0] == 96
    again = _twin_scores(*twin_backbones["a"][:2], x)  # a after b was registered
    torch.testing.assert_close(again[1], first["a"][1], rtol=0, atol=0)
    torch.testing.assert_close(again[2], first["a"][2], rtol=0, atol=0)
    for key, (_, _, clip) in twin_backbones.items():  # the custom prompts were encoded by each config's own text tower
        model = TeMuIQA(backbone=twin_backbones[key][0], pretrained=twin_backbones[key][1], image_size=64)
        text = encode_prompts(clip, open_clip.tokenize, ["A crisp photo.", "A smeared photo."])
        torch.testing.assert_close(model.backbone.encode(["A crisp photo.", "A smeared photo."]), text)
        with torch.inference_mode():
            plain = torch.full((len(model.layer_ids),), 1.0 / len(model.layer_ids))
            tokens, _ = model._joint_tokens(x, plain, True)
            expected = zero_shot_token_scores(tokens, text.reshape(1, 2, -1), model.backbone.logit_scale).mean(1)
        torch.testing.assert_close(first[key][2], expected, rtol=0, atol=1e-6)
    with ThreadPoolExecutor(4) as pool:  # concurrent first builds: each gets its own architecture and weights
        jobs = [(k, pool.submit(_twin_scores, *twin_backbones[k][:2], x)) for k in ("a", "b", "b", "a")]
        for key, job in jobs:
            width, scores, attributes = job.result()
            assert width == first[key][0]
            torch.testing.assert_close(scores, first[key][1], rtol=0, atol=0)
            torch.testing.assert_close(attributes, first[key][2], rtol=0, atol=0)


def test_a_backbone_config_named_like_a_builtin_does_not_replace_it(tmp_path):
    import open_clip

    builtin = open_clip.get_model_config("ViT-B-32")
    (tmp_path / "ViT-B-32.json").write_text((ASSETS / "tiny-clip.json").read_text())
    model = TeMuIQA(backbone=str(tmp_path / "ViT-B-32.json"), pretrained=None, image_size=64)
    assert model.backbone.width == 64
    assert open_clip.get_model_config("ViT-B-32") == builtin
    assert model.saved_config().backbone == str(tmp_path / "ViT-B-32.json")  # config.json keeps the user's path


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"image_size": 100_000}, r"image_size=100000: expected an int in 16\.\.4096"),
        ({"image_size": True}, r"image_size=True: expected an int in 16\.\.4096"),
        ({"image_size": 448.0}, r"image_size=448\.0: expected an int"),
        ({"image_size": 8}, r"image_size=8: expected an int in 16\.\.4096"),
        ({"max_pixels": 10**12}, r"max_pixels=1000000000000: expected an int in 256\.\.67,108,864"),
        ({"max_pixels": False}, r"max_pixels=False: expected an int"),
        ({"layers": [-1, 999]}, r"layers=\[-1, 999\]: expected .* numbered from 1"),
        ({"variant": "s"}, r"variant='s': expected one of \('S', 'I'\)"),
        ({"backbone": ""}, r"backbone='': expected an open_clip model name"),
        ({"pretrained": 5}, r"pretrained=5: expected a pretrained tag"),
        ({"prompts": ("", "Bad photo.")}, r"prompts=\('', 'Bad photo\.'\): expected two non-empty strings"),
        ({"prompts": "Good photo."}, r"prompts='Good photo\.': expected two non-empty strings"),
        ({"mean": (float("nan"), 0.5, 0.5)}, r"mean=\(nan, 0\.5, 0\.5\): expected 3 finite numbers"),
        ({"mean": ("0.5", 0.5, 0.5)}, r"mean=.*: expected 3 finite numbers"),
        ({"mean": (0.5, 0.5)}, r"mean=\(0\.5, 0\.5\): expected 3 finite numbers"),
        ({"std": (float("inf"), 1, 1)}, r"std=\(inf, 1, 1\): expected 3 positive finite numbers"),
        ({"std": (0, 1, 1)}, r"std=\(0, 1, 1\): expected 3 positive finite numbers"),
        ({"mos_scale": {"low": 1, "high": 1, "lower_better": False}}, r"mos_scale=.*high must be greater than low"),
        ({"head": {"adapter_dim": 10**9}}, r"adapter_dim=1000000000: expected an int in 0\.\.16384"),
        ({"head": {"adapter_dim": True}}, r"adapter_dim=True: expected an int in 0\.\.16384"),
        ({"head": {"adapter_dim": -1}}, r"adapter_dim=-1: expected an int in 0\.\.16384"),
        ({"head": {"metanet_reduction": 0}}, r"metanet_reduction=0: expected an int >= 1"),
        ({"head": {"learn_layer_weights": "yes"}}, r"learn_layer_weights='yes': expected true or false"),
        ({"head": {"adapter_dims": 8}}, r"head: unknown fields \['adapter_dims'\]; a HeadConfig has \['adapter_dim', "),
        ({"head": 5}, r"head=5: expected a HeadConfig or a dict of its fields"),
    ],
)
def test_every_config_field_is_checked_when_the_config_is_made(fields, message):
    """Types and ranges that need no backbone: refused before anything is built or downloaded."""
    with pytest.raises(ConfigError, match=message) as info:
        TeMuConfig().replace(**fields)
    assert "\n" not in str(info.value)


def test_a_head_given_as_a_dict_is_its_fields():
    assert TeMuConfig(head={"adapter_dim": 8}).head == HeadConfig(adapter_dim=8)
    assert TeMuConfig(head=HeadConfig(adapter_dim=8)).replace(head={"learn_layer_weights": False}).head == HeadConfig(
        adapter_dim=8, learn_layer_weights=False
    )


def test_config_values_are_normalised_to_plain_types():
    import numpy as np

    config = TeMuConfig(image_size=np.int64(224), layers=[np.int64(2), 1], mean=np.array([0.5, 0.5, 0.5]))
    assert type(config.image_size) is int and config.layers == (2, 1) and type(config.layers[0]) is int
    assert TeMuConfig(layers=np.array([3, 1])).layers == (3, 1) and TeMuConfig(layers=range(1, 3)).layers == (1, 2)
    assert config.mean == (0.5, 0.5, 0.5) and TeMuConfig(prompts=["a b", "c b"]).prompts == ("a b", "c b")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"layers": [1, 999]}, r"layers=\[1, 999\]: layers \[999\] do not exist; expected layers numbered 1\.\.3"),
        ({"layers": 4}, r"layers=4: expected 1\.\.3"),
        ({"head": {"adapter_dim": 129}}, r"head\.adapter_dim=129: expected 0\.\.128 \(4 x the backbone's embed_dim 32"),
        (
            {"variant": "I", "head": {"metanet_reduction": 33}},
            r"head\.metanet_reduction=33: expected 1\.\.32 \(the backbone's embed_dim",
        ),
        ({"variant": "I", "prompts": ("Sharp", "Blurry")}, r"prompts=\['Sharp', 'Blurry'\]: variant 'I' .* share"),
    ],
)
def test_fields_whose_range_depends_on_the_backbone_are_checked_before_the_head_is_built(
    tiny_kwargs, monkeypatch, fields, message
):
    import temu.model.temuiqa as temuiqa

    built = []
    monkeypatch.setattr(temuiqa, "TeMuHead", lambda *a, **k: built.append(a))
    with pytest.raises(ConfigError, match=message):
        TeMuIQA(**tiny_kwargs, **fields)
    assert built == []


def test_image_size_below_the_patch_size_is_refused(tmp_path):
    import json

    config = json.loads((ASSETS / "tiny-clip.json").read_text())
    config["vision_cfg"].update(patch_size=32, image_size=64)
    (tmp_path / "patch32.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"image_size=16: expected at least the backbone's patch size \(32\)"):
        TeMuIQA(backbone=str(tmp_path / "patch32.json"), pretrained=None, image_size=16)
    assert TeMuIQA(backbone=str(tmp_path / "patch32.json"), pretrained=None, image_size=32).patch_size == (32, 32)


def test_a_config_the_backbone_cannot_have_is_refused_before_its_weights_are_fetched(hub_cache):
    """Offline with an empty cache, ViT-B-32's weights cannot be had: the layer error must come first."""
    with pytest.raises(
        ConfigError, match=r"layers=\[30\]: layers \[30\] do not exist; expected layers numbered 1\.\.12"
    ):
        TeMuIQA(backbone="ViT-B-32", pretrained="openai", layers=[30])
    with pytest.raises(ConfigError, match=r"head\.adapter_dim=5000: expected 0\.\.2048"):
        TeMuIQA(backbone="ViT-B-32", pretrained="openai", head=HeadConfig(adapter_dim=5000))
