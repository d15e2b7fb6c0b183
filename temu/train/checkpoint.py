"""Checkpoints of a fine-tuning run: what makes a resumed run identical to an uninterrupted one.

``checkpoint.pt`` is written atomically after every epoch. Besides the head, optimizer,
scheduler and gradient scaler it holds the global RNG states (torch, CUDA, numpy, random) and a
fingerprint of the run (its settings, model config and data), so resuming refuses a
checkpoint of another run. Random draws of epoch ``e`` (shuffling, LDG) come from seeds that are
pure functions of ``(seed, e, rank)`` (:func:`epoch_seed`).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.records import IQARecord
from ..errors import DataError, os_reason
from ..files import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "atomic_torch_save",
    "cpu_state",
    "epoch_seed",
    "load_checkpoint",
    "records_digest",
    "rng_state",
    "run_differences",
    "set_rng_state",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1

#: The top-level keys of every checkpoint (``Trainer.state_dict``).
CHECKPOINT_KEYS = (
    "format", "temu_version", "epoch", "world_size", "meta", "mos_scale", "head",
    "optimizer", "scheduler", "scaler", "rng", "history", "best",
)  # fmt: skip


def records_digest(records: Sequence[IQARecord]) -> str:
    """SHA-1 of the records' paths and scores: a resumed run must train on the same data."""
    h = hashlib.sha1()
    for r in records:
        h.update(f"{r.path}\t{r.mos!r}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def epoch_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A 63-bit seed for one (run, epoch, process, purpose); independent streams for nearby inputs."""
    digest = hashlib.sha256(f"temu:{seed}:{epoch}:{rank}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary name, then rename: a reader never sees half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def load_run_checkpoint(output: Path) -> dict[str, Any]:
    """The state of the run in folder ``output`` (its :data:`CHECKPOINT_NAME`, read by :func:`load_checkpoint`);
    :class:`~temu.DataError` if the folder has none."""
    path = Path(output) / CHECKPOINT_NAME
    if not path.is_file():
        raise DataError(f"no {CHECKPOINT_NAME} in {output} to resume from; start the run without resume=True")
    return load_checkpoint(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state in ``path``, read with ``torch.load(weights_only=True)`` (tensors and plain containers only).

    A file that is empty, truncated, not a torch file, holds other Python objects, or is a torch
    file without a checkpoint's keys raises :class:`~temu.DataError`: one line naming the file,
    what is wrong and what to do (never torch's advice to load it with ``weights_only=False``).
    """

    def unusable(why: str) -> DataError:
        return DataError(
            f"{path} is not a usable checkpoint: {why}. It cannot be continued: start the run anew "
            "with overwrite=True (that deletes the run's files), or put back an intact copy of the file"
        )

    try:
        size = path.stat().st_size
    except OSError as err:
        raise unusable(f"it cannot be read ({os_reason(err)})") from None
    if size == 0:
        raise unusable("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")  # torch's note on plain pickles
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise unusable(
            "it holds Python objects that a temu-finetune checkpoint never holds, so it was not written by "
            "temu-finetune and is not loaded (loading it could run code)"
        ) from None
    except EOFError:
        raise unusable(f"it ends early ({size} bytes): the file is truncated") from None
    except OSError as err:
        raise unusable(f"it cannot be read ({os_reason(err)})") from None
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, KeyError, ... for damaged files
        kind = "truncated or corrupt" if isinstance(err, RuntimeError) else "not a torch checkpoint file"
        raise unusable(f"it is {kind} ({type(err).__name__} from torch.load)") from None
    if not isinstance(state, dict):
        raise unusable(f"it holds a {type(state).__name__}, not a temu-finetune checkpoint")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if "format" in state and state["format"] != CHECKPOINT_FORMAT:
        raise unusable(
            f"it is checkpoint format {state['format']!r} (temu {state.get('temu_version', '?')}), this temu "
            f"reads format {CHECKPOINT_FORMAT}; resume with the temu version that wrote it"
        )
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise unusable(f"it is a torch file without a checkpoint's keys ({shown}); another program wrote it")
    return state


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state dict on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch, numpy, random, and CUDA when in use), as plain tensors and lists."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": _py_rng_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _py_rng_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def run_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two run fingerprints (``config``, ``model``, ``train_digest``, ``val_digest``)."""
    diffs = []
    for key, value in saved["config"].items():
        if current["config"].get(key) != value:
            diffs.append(f"{key}: checkpoint {value!r}, now {current['config'].get(key)!r}")
    for key in sorted(set(current["model"]) | set(saved["model"])):
        if key != "mos_scale" and current["model"].get(key) != saved["model"].get(key):
            diffs.append(f"model {key}: checkpoint {saved['model'].get(key)!r}, now {current['model'].get(key)!r}")
    for part in ("train", "val"):
        if current[f"{part}_digest"] != saved[f"{part}_digest"]:
            diffs.append(f"the {part} set differs (other images, scores, order, split or skip_bad)")
    return diffs
