"""Where weights come from: shipped presets, local directories and Hugging Face Hub repos.

``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE``/``HF_HOME`` are read at each call, not once at import:
huggingface_hub reads them only when it is first imported, so an application that sets
``HF_HUB_OFFLINE=1`` later would otherwise spend about 47 s in retries before failing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from .._version import __version__
from ..errors import NotCachedError, WeightsError
from .calibration import CALIBRATION_NAME

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_TRUE = {"1", "on", "yes", "true"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def hub_offline() -> bool:
    """True when downloads are disabled (``HF_HUB_OFFLINE`` read now, or at huggingface_hub's import)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    """The Hugging Face cache folder, from ``HF_HUB_CACHE``, ``HF_HOME`` or the default, read now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def download(repo_id: str, filenames: Iterable[str], *, what: str, revision: str | None = None) -> Path:
    """Fetch the first of ``filenames`` that the repo has.

    Args:
        repo_id: the Hub repo.
        filenames: the files to try, in order.
        what: what the file is, for messages.
        revision: a branch, tag or commit.

    Returns:
        The file's local path (in the Hugging Face cache).

    Raises:
        NotCachedError: offline and not in the cache; the message names the cache folder and the
            command that fetches the file.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    names = list(filenames)
    offline = hub_offline()
    cache = hub_cache_dir()
    misses: list[str] = []
    for name in names:
        try:
            return Path(
                hf_hub_download(
                    repo_id,
                    name,
                    revision=revision,
                    cache_dir=cache,
                    local_files_only=offline,
                    library_name="temu",
                    library_version=__version__,
                )
            )
        except LocalEntryNotFoundError:  # (a subclass of EntryNotFoundError: keep it first)
            misses.append(name)
            if offline:
                continue
            raise NotCachedError(
                f"could not download {what} ({repo_id}/{name}) and it is not in the cache at {cache}. "
                "Check the network connection or the repo name, or copy a cache that has it there "
                "(on machines without network, set HF_HUB_OFFLINE=1 to skip the download retries)."
            ) from None
        except EntryNotFoundError:  # the repo exists online but lacks this file: try the next name
            misses.append(name)
        except RepositoryNotFoundError:
            raise WeightsError(
                f"{what}: the Hugging Face repo {repo_id!r} does not exist or is private "
                "(log in with `hf auth login` for a private repo)."
            ) from None
    if offline:
        raise NotCachedError(
            f"{what} is not in the Hugging Face cache at {cache} (looked for {', '.join(repo_id + '/' + n for n in misses)}), "
            f"and HF_HUB_OFFLINE=1 forbids downloading it. On a machine with internet run "
            f"`hf download {repo_id} {names[0]}` and copy the cache folder here (or point HF_HUB_CACHE at it), "
            "or unset HF_HUB_OFFLINE."
        )
    raise WeightsError(f"{what}: the Hugging Face repo {repo_id!r} has none of the files {names}.")


def download_optional(repo_id: str, filename: str, *, revision: str | None = None) -> Path | None:
    """Fetch ``filename`` if the repo has it, else None (offline: if the cache has it). Other failures
    (no such repo, no network and not cached) are :func:`download`'s errors."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=hub_cache_dir(),
                local_files_only=hub_offline(),
                library_name="temu",
                library_version=__version__,
            )
        )
    except EntryNotFoundError:  # LocalEntryNotFoundError too: offline and not cached, or not in the repo
        return None


# ---------------------------------------------------------------- presets (shipped in weights/)


def preset_root() -> Path:
    """The folder that holds the shipped presets: the ``temu.weights`` package when installed
    (``weights/`` mapped into the package), or ``weights/`` beside ``temu/`` in a source checkout."""
    try:
        return Path(str(resources.files("temu.weights")))
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parents[2] / "weights"
        if (checkout / "__init__.py").is_file():
            return checkout
        raise WeightsError(
            "temu's preset folder (temu.weights) is missing from this installation: "
            "reinstall it (pip install --force-reinstall --no-deps temu-iqa)"
        ) from None


def list_presets() -> list[str]:
    """Names of the presets shipped with temu, e.g. ``['temu-iqa-i', 'temu-iqa-s']``."""
    root = preset_root()
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file())


def local_path_reason(text: str) -> str | None:
    """Why a model name that is neither a preset nor an existing path must be a local path (a typo), or
    None when it may be a Hub repo id. Local: it starts with ``.``, ``/`` or ``~``, holds a backslash or
    more than one ``/``, or its first part exists here (``runs`` of ``runs/koniq``)."""
    if text.startswith((".", "/", "~")):
        return f"it starts with {text[0]!r}"
    if "\\" in text or text.count("/") > 1:
        return "it has more than one path separator"
    first, slash, _ = text.partition("/")
    if slash and first and Path(first).exists():
        return f"{first}{'/' if Path(first).is_dir() else ''} exists here"
    return None


def resolve_head_dir(source: str | os.PathLike[str], *, revision: str | None = None) -> Path:
    """A local directory holding ``config.json`` and ``model.safetensors`` (and ``calibration.json`` if the head has one) for ``source``.

    ``source`` is a preset name (:func:`list_presets`), a local directory, or a Hub repo id
    (``org/name``), tried in that order. A name that must be a local path (:func:`local_path_reason`)
    but does not exist is "no such folder", never a Hub download.
    """
    text = os.fspath(source)
    presets = list_presets()
    if text in presets:
        return preset_root() / text
    path = Path(text).expanduser()
    if path.is_dir():
        for needed in (CONFIG_NAME, WEIGHTS_NAME):
            if not (path / needed).is_file():
                raise WeightsError(
                    f"{path}: directory has no {needed}; a temu head directory holds {CONFIG_NAME} and "
                    f"{WEIGHTS_NAME} as written by TeMuIQA.save_pretrained()."
                )
        return path
    if path.exists():
        raise WeightsError(f"{path}: expected a directory with {CONFIG_NAME} and {WEIGHTS_NAME}, found a file.")
    local = local_path_reason(text)
    if _REPO_ID.match(text) and local is None:
        config = download(text, [CONFIG_NAME], what=f"the temu head config of {text}", revision=revision)
        download(text, [WEIGHTS_NAME], what=f"the temu head weights of {text}", revision=revision)
        download_optional(text, CALIBRATION_NAME, revision=revision)  # a calibrated head's; most have none
        return config.parent
    if local is not None:
        raise WeightsError(
            f"{text}: no such folder ({local}, so it is read as a local path, not as a Hugging Face repo id). "
            f"A temu head folder holds {CONFIG_NAME} and {WEIGHTS_NAME}, as written by TeMuIQA.save_pretrained()."
        )
    raise WeightsError(
        f"{text!r} is not a temu preset (available: {', '.join(presets)}), not an existing directory, "
        "and not a Hugging Face repo id of the form 'org/name'."
    )
