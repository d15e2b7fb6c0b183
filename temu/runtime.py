"""Where work runs: the device, this process's place among several, and the CPU cores it may use.

One home for rules that every entry point shares: ``temu.score``, the corpus engines,
``temu eval`` and ``temu-finetune`` pick devices, detect torchrun or a Slurm array and size their
worker pools here. torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import DeviceError

if TYPE_CHECKING:
    import torch

#: Most DataLoader workers a default picks (more rarely helps one GPU and costs memory).
MAX_DEFAULT_WORKERS = 8


@dataclass(frozen=True)
class Launch:
    """This process's place in a run of several: ``rank`` of ``world_size``, its ``local_rank`` on the node,
    and where that came from (``origin``: ``"RANK/WORLD_SIZE"`` under torchrun, or ``"the Slurm array index"``)."""

    rank: int
    world_size: int
    local_rank: int | None
    origin: str

    @property
    def torchrun(self) -> bool:
        return self.origin == TORCHRUN


TORCHRUN = "RANK/WORLD_SIZE"
SLURM_ARRAY = "the Slurm array index"


def launch_from_environment(env: Mapping[str, str] | None = None) -> Launch | None:
    """The :class:`Launch` torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) or a Slurm array
    (``SLURM_ARRAY_TASK_*``) describes in ``env`` (default ``os.environ``), else None.

    Raises :class:`DeviceError` for values that are not integers, a rank outside the world, or a
    Slurm array whose task ids are not evenly spaced.
    """
    env = os.environ if env is None else env
    try:
        if "RANK" in env and "WORLD_SIZE" in env:
            local = env.get("LOCAL_RANK")
            launch = Launch(int(env["RANK"]), int(env["WORLD_SIZE"]), int(local) if local else None, TORCHRUN)
        elif "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
            low = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            high = int(env.get("SLURM_ARRAY_TASK_MAX", str(low + count - 1)))
            step = int(env.get("SLURM_ARRAY_TASK_STEP", "1"))
            if step < 1 or (high - low) // step + 1 != count or (task - low) % step:
                raise DeviceError(
                    f"the Slurm array ({count} tasks, ids {low}..{high}) is not evenly spaced; give the shard explicitly"
                )
            launch = Launch((task - low) // step, count, None, SLURM_ARRAY)
        else:
            return None
    except ValueError as err:
        if isinstance(err, DeviceError):
            raise
        raise DeviceError(f"the launcher's environment variables are not integers ({err})") from None
    if not 0 <= launch.rank < launch.world_size:
        raise DeviceError(f"rank {launch.rank} of {launch.world_size} from {launch.origin} is out of range")
    return launch


def resolve_device(device: str | torch.device | None = None, *, local_rank: int | None = None) -> torch.device:
    """The device to run on, with its index filled in.

    ``None``: CUDA when available, else the CPU. ``"cuda"`` without an index: ``cuda:local_rank``
    when given (torchrun's ``LOCAL_RANK``), else the current CUDA device. Raises
    :class:`DeviceError` for a name torch does not know, or CUDA where none is available.
    """
    import torch

    try:
        dev = torch.device(device) if device is not None else None
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"device={device!r} is not a device name torch knows ({err}); e.g. 'cpu', 'cuda:0'") from None
    if dev is None:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device={str(dev)!r}: CUDA is not available on this machine; use device='cpu'")
        if dev.index is None:
            dev = torch.device("cuda", local_rank if local_rank is not None else torch.cuda.current_device())
        if dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device={str(dev)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def available_cpus() -> int:
    """CPU cores this process may run on: its affinity mask (as ``taskset``, Slurm or a container
    set it) where the system has one, else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def default_num_workers(device: torch.device, *, world_size: int = 1) -> int:
    """DataLoader workers per process when the user gives none: 0 on the CPU (decoding competes with
    the model for the same cores, and decoding 8-bit images is cheap next to the model:
    ``benchmarks/bench_score_files.py``), else the CPU cores (:func:`available_cpus`) shared out over
    the ``world_size`` processes, less one for each process itself, at least 1 and at most
    :data:`MAX_DEFAULT_WORKERS`."""
    if device.type != "cuda":
        return 0
    return max(1, min(MAX_DEFAULT_WORKERS, available_cpus() // max(1, world_size) - 1))


def default_decode_threads() -> int:
    """Decoding threads of a corpus engine when the user gives none: the CPU cores, at most 8."""
    return min(MAX_DEFAULT_WORKERS, available_cpus())
