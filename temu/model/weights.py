"""Which open_clip model and weights a (backbone, pretrained) pair means, and fetching them.

Names, pretrained tags, model-config JSON files and ``hf-hub:`` ids are resolved to an open_clip
model name and a local checkpoint file (downloaded through the Hugging Face cache, see
:mod:`temu.model.hub`). OpenAI's weights get QuickGELU (open_clip alone would only warn).
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import open_clip
from torch import nn

from ..errors import BackboneError
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
