"""Process-group plumbing for ``torchrun``: who am I, which device, gather, reduce.

A run started by ``torchrun --nproc_per_node N`` has ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
in its environment; :func:`setup` then joins the process group (NCCL on CUDA, gloo on CPU) and
picks ``cuda:LOCAL_RANK``. A plain ``python``/``temu-finetune`` run is a world of one process
and never touches ``torch.distributed``. Every helper below is a no-op for a world of one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_reduce_max",
    "all_reduce_sum",
    "average_gradients",
    "barrier",
    "gather_cat",
    "setup",
    "teardown",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: ``rank`` in ``0..world_size-1``, and its ``device``.

    ``owns_group`` is True when :func:`setup` created the process group (and :func:`teardown`
    should destroy it); False when the caller had already initialised it.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is in use (also for a torchrun world of one)."""
        return dist.is_available() and dist.is_initialized()


def _launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (or when one is initialised already).

    device: ``None`` = CUDA when available, else CPU. Under torchrun with CUDA each process
    takes ``cuda:LOCAL_RANK`` (a ``device="cuda:K"`` is then an error, since torchrun assigns
    the devices); ``device="cpu"`` runs every process on the CPU with the gloo backend.
    """
    wanted = torch.device(device) if device is not None else None
    if not (dist.is_available() and (dist.is_initialized() or _launched_by_torchrun())):
        if wanted is None:
            wanted = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        _check_device(wanted)
        return DistInfo(device=wanted)

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (wanted is None or wanted.type == "cuda")
    if use_cuda and wanted is not None and wanted.index is not None:
        raise ValueError(
            f"device='{wanted}' under torchrun: each process uses cuda:LOCAL_RANK; pass device='cuda' "
            "(or None) and choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns)


def _check_device(device: torch.device) -> None:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device='{device}': CUDA is not available here; use device='cpu'")


def teardown(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op for one process)."""
    if info.distributed:
        dist.barrier()


def all_reduce_sum(info: DistInfo, tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over all processes (a new tensor; the input is untouched)."""
    out = tensor.clone()
    if info.distributed and info.world_size > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_max(info: DistInfo, tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``tensor`` over all processes."""
    out = tensor.clone()
    if info.distributed and info.world_size > 1:
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def gather_cat(info: DistInfo, tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate along dim 0 the equally shaped ``tensor`` of every process, in rank order."""
    if not (info.distributed and info.world_size > 1):
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(info.world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def average_gradients(info: DistInfo, params: Sequence[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over all processes, with one ``all_reduce``.

    What DistributedDataParallel does after ``backward``, without its private API: the head is
    small enough for one flat buffer. A parameter without a gradient counts as a zero gradient.
    No-op for one process.
    """
    if not (info.distributed and info.world_size > 1) or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()
