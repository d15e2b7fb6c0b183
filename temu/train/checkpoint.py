"""Checkpoints of a fine-tuning run: what makes a resumed run identical to an uninterrupted one.

``checkpoint.pt`` is written atomically after every epoch. Besides the head, optimizer,
scheduler and gradient scaler it holds the global RNG states (torch, CUDA, numpy, random) and a
fingerprint of the run (its settings, model config and data), so ``--resume`` refuses a
checkpoint of another run. Random draws of epoch ``e`` (shuffling, LDG) come from seeds that are
pure functions of ``(seed, e, rank)`` (:func:`epoch_seed`).
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.records import IQARecord
from ..files import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "atomic_torch_save",
    "cpu_state",
    "epoch_seed",
    "records_digest",
    "rng_state",
    "run_differences",
    "set_rng_state",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


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
            diffs.append(f"the {part} set differs (other images, scores, order, split or --skip-bad)")
    return diffs
