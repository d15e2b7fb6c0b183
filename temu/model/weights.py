"""Which open_clip model and weights a (backbone, pretrained) pair means, and fetching them.

Names, pretrained tags, model-config JSON files and ``hf-hub:`` ids are resolved to an open_clip
model name and a local checkpoint file (downloaded through the Hugging Face cache, see
:mod:`temu.model.hub`). OpenAI's weights get QuickGELU (open_clip alone would only warn).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import open_clip
import open_clip.factory as open_clip_factory
import torch
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
    #: the model-config JSON (canonical text) registered as ``model_name``, for a backbone given as a JSON file
    config_json: str | None = None

    def register(self) -> None:
        """Make sure open_clip knows :attr:`model_name` (a backbone given as a JSON file); a no-op otherwise."""
        if self.config_json is not None:
            _register(self.model_name, self.config_json)

    def tokenizer(self) -> Callable[[list[str]], torch.Tensor]:
        """open_clip's tokenizer of this model: prompts -> token ids ``[K, context_length]``."""
        self.register()
        return open_clip.get_tokenizer(self.model_name)


_REGISTRY_LOCK = threading.Lock()


def _config_name(path: Path) -> tuple[str, str]:
    """Read an open_clip model-config JSON file: its registry name (unique to its content) and canonical JSON."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BackboneError(f"{path}: not a readable open_clip model-config JSON file ({err})") from err
    if not isinstance(cfg, dict) or not all(key in cfg for key in ("embed_dim", "vision_cfg", "text_cfg")):
        raise BackboneError(f"{path}: an open_clip model config needs 'embed_dim', 'vision_cfg' and 'text_cfg' keys")
    text = json.dumps(cfg, sort_keys=True)
    return f"{path.stem}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}", text


def _register(name: str, config_json: str) -> None:
    """Make ``name`` mean ``config_json`` in open_clip's registry (idempotent, thread-safe).

    open_clip's ``add_model_config`` registers a file by its stem, so two files named ``tiny.json``
    (or a file named like a built-in, ``ViT-B-32.json``) would replace each other for every later
    lookup by name: the model, its tokenizer, the text tower built again for new prompts. Names
    made by :func:`_config_name` end with a hash of the content, so one name means one architecture
    and registering never changes what another name means. Called again before each use, so an
    entry lost to a concurrent ``add_model_config`` elsewhere (it rebuilds the registry) comes back.
    """
    with _REGISTRY_LOCK:
        registry = open_clip_factory._MODEL_CONFIGS  # no public way to register a config under a given name
        if name not in registry:
            registry[name] = json.loads(config_json)
    if open_clip.get_model_config(name) != json.loads(config_json):
        raise BackboneError(
            f"could not register the model config {name} with open_clip {open_clip.__version__} "
            "(its config registry has changed); please report this to temu"
        )


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

    config_json: str | None = None
    if backbone.endswith(".json"):
        path = Path(backbone).expanduser()
        if not path.is_file():
            raise BackboneError(f"backbone config file {path} does not exist")
        name, config_json = _config_name(path)
        _register(name, config_json)
        tag_name = path.stem  # pretrained tags are looked up by the name the file was given (ViT-B-32.json + openai)
    else:
        name = tag_name = backbone.replace("/", "-")
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
            f"TeMuIQA backbone {tag_name} has random weights (pretrained=None): its scores mean nothing. "
            "This is for tests; pass pretrained='openai' (or another tag) for real use.",
            UserWarning,
            stacklevel=3,
        )
    elif pretrained.startswith("hf-hub:"):
        repo = pretrained[len("hf-hub:") :]
        if load_weights:
            checkpoint = str(download(repo, _OPENCLIP_WEIGHTS, what=f"the CLIP weights {pretrained} for {tag_name}"))
    elif os.path.isfile(pretrained):
        checkpoint = pretrained
    else:
        tag_cfg = open_clip.get_pretrained_cfg(tag_name, pretrained)
        if not tag_cfg:
            tags = open_clip.list_pretrained_tags_by_model(tag_name)
            raise BackboneError(
                f"{pretrained!r} is neither a pretrained tag of {tag_name} nor an existing checkpoint file. "
                f"Tags of {tag_name}: {tags or 'none'}; or pass 'hf-hub:org/repo', a local file, or None for random weights."
            )
        mean = tuple(tag_cfg.get("mean", mean))
        std = tuple(tag_cfg.get("std", std))
        if tag_cfg.get("quick_gelu", False) and not model_cfg.get("quick_gelu", False):
            force_quick_gelu = True  # e.g. ViT-L-14 + openai: build the activation the weights were trained with
        if load_weights:
            checkpoint = _download_tag(tag_name, pretrained, tag_cfg)
    random_weights = pretrained is None or not load_weights
    return BackboneSource(
        name,
        checkpoint,
        force_quick_gelu,
        mean,
        std,
        label,
        random_weights,
        config_json,  # type: ignore[arg-type]
    )


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


def vision_shape(backbone: str, pretrained: str | None) -> tuple[int, int, tuple[int, int]] | None:
    """``(depth, embed_dim, patch_size)`` of a backbone's vision tower, read from its open_clip config
    without loading (or downloading) weights; None when that cannot be told without building it.

    Lets a model config be checked against the backbone before its weights are fetched; the checks
    after the build stay the authority.
    """
    from ..errors import TeMuError

    try:
        source = resolve_backbone(backbone, pretrained, load_weights=False)
        source.register()
        config = open_clip.get_model_config(source.model_name)
        vision = config["vision_cfg"]
        depth, embed_dim, patch = vision["layers"], config["embed_dim"], vision["patch_size"]
    except (TeMuError, OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(patch, int):
        patch = (patch, patch)
    if not (isinstance(depth, int) and isinstance(embed_dim, int) and len(patch) == 2):
        return None
    return depth, embed_dim, (int(patch[0]), int(patch[1]))


def create_clip(source: BackboneSource) -> nn.Module:
    """Instantiate the open_clip model for a resolved source, weights loaded, on the CPU.

    Raises:
        BackboneError: the checkpoint file is empty, not a checkpoint, or does not fit the architecture
            (open_clip's loader raises assorted exceptions for these; each is named here with the file).
    """
    source.register()
    checkpoint = source.checkpoint
    if checkpoint is not None and _file_size(checkpoint) == 0:
        raise BackboneError(f"pretrained={checkpoint!r}: {_expected_checkpoint(source)}; found an empty file (0 bytes)")
    try:
        return open_clip.create_model(
            source.model_name,
            pretrained=checkpoint,
            force_quick_gelu=source.force_quick_gelu,
            device="cpu",
        )
    except MemoryError:  # the machine, not the file
        raise
    except Exception as err:  # open_clip's loader: EOFError, UnpicklingError, SafetensorError, RuntimeError, ...
        if checkpoint is None:
            raise
        raise BackboneError(
            f"pretrained={checkpoint!r}: {_expected_checkpoint(source)}; found {_load_failure(err)}"
        ) from err


def _file_size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _expected_checkpoint(source: BackboneSource) -> str:
    backbone = source.label.rsplit(" (pretrained=", 1)[0]  # the label is "<backbone> (pretrained=<value>)"
    return f"expected an open_clip or OpenAI CLIP checkpoint (.safetensors, .pt or .bin) of the backbone {backbone}"


def _load_failure(err: Exception) -> str:
    """What a checkpoint that open_clip could not load turned out to be, in one short line."""
    import pickle
    import zipfile

    from safetensors import SafetensorError

    text = " ".join(str(err).split())
    if isinstance(err, RuntimeError) and text.startswith("Error(s) in loading state_dict"):
        detail = text.split(":", 1)[-1].strip()
        return f"tensors that do not fit it ({detail[:200]}{'...' if len(detail) > 200 else ''})"
    if isinstance(err, SafetensorError):
        return f"a damaged safetensors file ({text})"
    if isinstance(err, (EOFError, pickle.UnpicklingError, zipfile.BadZipFile)):
        return "a file that is not a checkpoint (torch.load could not read it: truncated, or another kind of file)"
    if isinstance(err, (AttributeError, KeyError, TypeError)):
        return f"a file that holds no state dict of tensors ({type(err).__name__}: {text[:200]})"
    return f"{type(err).__name__}: {text[:200]}"
