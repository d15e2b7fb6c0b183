"""The fine-tuning loop: loss, Local Distortion Guidance, validation, checkpoints, exact resume.

METHOD.md section 2 (paper): Adam, lr 2e-3, cosine annealing, batch 32, 30 epochs, the epoch
with the best validation SRCC + PLCC kept. Loss (ours, after IQA-PyTorch's CLIP-IQA+ recipe):
``mse_weight * MSE(q, y) + plcc_weight * (1 - PLCC(q, y))`` on the batch. Section 3 (LDG):
each training image also gets a locally distorted copy whose target is ``f * y`` (f = CW-SSIM
fidelity), with loss ``ldg_weight * MSE(q(I~), f * y)``. Originals and distorted copies go
through the backbone together in one forward of ``2N`` images.

Only the head is trained; the frozen backbone runs without autograd (see :class:`TeMuIQA`).
Losses are accumulated on the device and read back once every ``sync_every`` steps and at the
end of each epoch; that is also when a non-finite loss is detected, and the run stops naming
the first bad batch (epoch, step, image paths).

Resume: after every epoch ``checkpoint.pt`` is written atomically. It holds the head, the
optimizer, the scheduler, the gradient scaler, the global RNG states (torch, CUDA, numpy,
random), the epoch counter, the best epoch so far with its head, and the metrics history. The
shuffling order of epoch ``e`` and the LDG generator of epoch ``e`` are pure functions of
``(seed, e, rank)``, so a run resumed after epoch ``e`` draws exactly what the uninterrupted run
would have drawn. On the same hardware the resumed result is identical.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .api import autocast_context
from .data import IQARecord, MOSScale
from .distributed import DistInfo, all_reduce_max, all_reduce_sum, barrier
from .evaluate import (
    build_dataset,
    evaluate_scores,
    make_loader,
    predict,
)
from .files import atomic_write
from .metrics import pearson_torch
from .model import TeMuIQA

__all__ = ["CHECKPOINT_NAME", "CURVES_NAME", "METRICS_NAME", "NonFiniteLossError", "TrainConfig", "TrainResult", "Trainer"]

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
CURVES_NAME = "curves.png"
CHECKPOINT_FORMAT = 1

#: Columns of metrics.csv, in order.
METRIC_COLUMNS = (
    "epoch", "lr", "train_loss", "train_mse", "train_plcc", "train_ldg",
    "val_srcc", "val_plcc", "val_krcc", "val_rmse", "seconds",
)  # fmt: skip


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the batch."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one fine-tuning run. Defaults are the paper's (METHOD.md sections 2-3).

    epochs: passes over the training set (paper: 30; 5 for FLIVE and AVA).
    batch_size: images per optimisation step over all processes (paper: 32). Under torchrun each
        of the W processes takes ``batch_size / W`` (must divide); the PLCC term is computed on
        each process's share.
    lr, weight_decay: Adam's (paper: lr 2e-3; weight decay 0, ours).
    eta_min: floor of the cosine annealing, stepped once per optimisation step over
        ``epochs * steps_per_epoch`` steps (ours).
    mse_weight, plcc_weight: ``mse_weight * MSE + plcc_weight * (1 - PLCC)`` on the originals (ours).
    ldg: Local Distortion Guidance on or off (paper: on).
    ldg_weight: lambda of ``lambda * MSE(q(I~), f * y)`` (ours: 1).
    ldg_ops, ldg_magnitude: RandAugment N and M (of 31 bins) inside the rectangle (paper: 6, 18).
    ldg_size: side range of the rectangle in pixels at ``ldg_reference_size`` (paper: 40-150 at 448);
        scaled proportionally for other input sizes.
    seed: the run's seed (shuffling, LDG draws; the head's initialisation is seeded by the caller).
    precision: autocast for the forward: ``auto`` (bf16 on CUDA, fp32 on CPU), ``fp32``, ``bf16``, ``fp16``.
    workers: DataLoader worker processes per process (decode and resize).
    sync_every: read the losses back (and check them) every this many steps; None = 1 on the
        CPU, 25 on CUDA.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    eta_min: float = 0.0
    mse_weight: float = 1.0
    plcc_weight: float = 1.0
    ldg: bool = True
    ldg_weight: float = 1.0
    ldg_ops: int = 6
    ldg_magnitude: int = 18
    ldg_size: tuple[int, int] = (40, 150)
    ldg_reference_size: int = 448
    seed: int = 0
    precision: str = "auto"
    workers: int = 0
    sync_every: int | None = None

    def __post_init__(self) -> None:
        positive = {
            "epochs": self.epochs, "batch_size": self.batch_size, "ldg_ops": self.ldg_ops,
            "ldg_reference_size": self.ldg_reference_size,
        }  # fmt: skip
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (the PLCC loss needs two images), got {self.batch_size}")
        if not isinstance(self.ldg_magnitude, int) or isinstance(self.ldg_magnitude, bool) or not 0 <= self.ldg_magnitude <= 30:
            raise ValueError(f"ldg_magnitude must be an int in 0..30 (RandAugment's 31 bins), got {self.ldg_magnitude!r}")
        for name in ("lr", "weight_decay", "eta_min", "mse_weight", "plcc_weight", "ldg_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.mse_weight == 0 and self.plcc_weight == 0:
            raise ValueError("mse_weight and plcc_weight are both 0: the original images would not be trained on")
        low, high = self.ldg_size
        if not (1 <= low <= high):
            raise ValueError(f"ldg_size must be (low, high) with 1 <= low <= high, got {self.ldg_size!r}")
        object.__setattr__(self, "ldg_size", (int(low), int(high)))
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.sync_every is not None and self.sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {self.sync_every}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ldg_size"] = list(self.ldg_size)
        return out

    def resume_key(self) -> dict[str, Any]:
        """The fields a resumed run must share with the checkpoint (everything that changes the result)."""
        out = self.to_dict()
        for name in ("workers", "sync_every"):
            out.pop(name)
        return out


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns. ``finished`` is False when it stopped early (``stop_after``)."""

    epochs_done: int
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    finished: bool


def records_digest(records: Sequence[IQARecord]) -> str:
    """SHA-1 of the records' paths and scores: a resumed run must train on the same data."""
    h = hashlib.sha1()
    for r in records:
        h.update(f"{r.path}\t{r.mos!r}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class _Scorer(nn.Module):
    """``x -> model(x)`` without input checks; the module DistributedDataParallel wraps."""

    def __init__(self, model: TeMuIQA) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, check_input=False)


def _epoch_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A 63-bit seed for one (run, epoch, process, purpose); independent streams for nearby inputs."""
    digest = hashlib.sha256(f"temu:{seed}:{epoch}:{rank}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _py_rng_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _py_rng_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Trainer:
    """Fine-tunes ``model.head`` on ``train`` records, validating on ``val`` after every epoch.

    model: a :class:`TeMuIQA` (its ``config.mos_scale`` is set to ``scale`` here).
    train, val: records with raw scores; ``scale`` (fitted on ``train``) maps them to [0, 1].
    output: the run folder (checkpoint, best head, metrics.csv, curves.png); written by rank 0 only.
    info: this process's rank and device (:func:`temu.distributed.setup`).
    progress: tqdm bars on rank 0. log: where rank 0's one-line messages go (default stderr).
    """

    def __init__(
        self,
        model: TeMuIQA,
        train: Sequence[IQARecord],
        val: Sequence[IQARecord],
        scale: MOSScale,
        config: TrainConfig,
        output: str | os.PathLike[str],
        *,
        info: DistInfo | None = None,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.info = info or DistInfo()
        self.config = config
        self.output = Path(output)
        self.scale = scale
        self.progress = progress and self.info.is_main
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        device = self.info.device
        if config.batch_size % self.info.world_size:
            raise ValueError(
                f"--batch-size {config.batch_size} must be divisible by the number of processes "
                f"({self.info.world_size}); each process takes an equal share"
            )
        self.local_batch = config.batch_size // self.info.world_size
        if self.local_batch < 2:
            raise ValueError(
                f"--batch-size {config.batch_size} over {self.info.world_size} processes leaves {self.local_batch} "
                "image per process; the PLCC loss needs at least 2. Raise --batch-size"
            )
        if not val:
            raise ValueError("the validation set is empty; give --val, --val-fraction or a split with a val part")
        model.config = model.config.replace(mos_scale=scale.to_dict())
        self.model = model.to(device)
        self.train_records = list(train)
        self.val_records = list(val)
        self.train_set = build_dataset(self.train_records, model, scale)
        self.val_set = build_dataset(self.val_records, model, scale)
        self.val_targets = np.asarray(scale.normalise([r.mos for r in self.val_records]), dtype=np.float64)
        self.train_loader = make_loader(
            self.train_set, batch_size=self.local_batch, shuffle=True, seed=config.seed,
            drop_last=True, num_workers=config.workers, info=self.info,
        )  # fmt: skip
        self.val_loader = make_loader(
            self.val_set, batch_size=self.local_batch, shuffle=False, seed=config.seed,
            drop_last=False, num_workers=config.workers, info=self.info, by_size=True,
        )  # fmt: skip
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training set has {len(self.train_records)} images, fewer than one batch of "
                f"{config.batch_size}; lower --batch-size or add images"
            )
        params = [p for p in model.head.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the head has no trainable parameters (check the head config)")
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=config.epochs * self.steps_per_epoch, eta_min=config.eta_min
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self._uses_fp16())
        self.forward_module: nn.Module = self._wrap(_Scorer(self.model))
        self.sync_every = config.sync_every or (1 if device.type == "cpu" else 25)
        self.epoch = 0  # completed epochs
        self.history: list[dict[str, float]] = []
        self.best_epoch = 0
        self.best_score = -math.inf
        self.best_metrics: dict[str, float] = {}
        self.best_head: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ setup helpers

    def _uses_fp16(self) -> bool:
        if self.info.device.type != "cuda":
            return self.config.precision == "fp16"
        return self.config.precision == "fp16" or (self.config.precision == "auto" and not torch.cuda.is_bf16_supported())

    def _wrap(self, scorer: _Scorer) -> nn.Module:
        """DistributedDataParallel over the head only (the frozen backbone is neither broadcast nor reduced)."""
        if not self.info.distributed:
            return scorer
        from torch.nn.parallel import DistributedDataParallel as DDP

        frozen = [f"model.backbone.{name}" for name, _ in self.model.backbone.named_parameters()]
        frozen += [f"model.backbone.{name}" for name, _ in self.model.backbone.named_buffers()]
        frozen += [f"model.{name}" for name, _ in self.model.named_buffers() if not name.startswith(("backbone.", "head."))]
        DDP._set_params_and_buffers_to_ignore_for_model(scorer, frozen)
        import inspect

        device_ids = [self.info.device.index] if self.info.device.type == "cuda" else None
        # the head's buffers (prompt token ids, masks) are the same on every process: never re-broadcast them
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters else "broadcast_buffers"
        return DDP(scorer, device_ids=device_ids, **{no_sync: False})

    def _resume_meta(self) -> dict[str, Any]:
        return {
            "config": self.config.resume_key(),
            "model": self.model.saved_config().to_dict(),
            "train_digest": records_digest(self.train_records),
            "val_digest": records_digest(self.val_records),
        }

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.output / CHECKPOINT_NAME

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly (plain tensors, dicts, lists, numbers, strings)."""
        from . import __version__

        return {
            "format": CHECKPOINT_FORMAT,
            "temu_version": __version__,
            "epoch": self.epoch,
            "world_size": self.info.world_size,
            "meta": self._resume_meta(),
            "mos_scale": self.scale.to_dict(),
            "head": _cpu_state(self.model.head),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "history": copy.deepcopy(self.history),
            "best": {"epoch": self.best_epoch, "score": self.best_score, "metrics": dict(self.best_metrics), "head": self.best_head},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the run's settings and data must be the checkpoint's."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')!r} is not supported (expected {CHECKPOINT_FORMAT})")
        self._check_same_run(state["meta"])
        if state["world_size"] != self.info.world_size and self.info.is_main:
            self._log(
                f"temu-finetune: warning: the checkpoint was written by {state['world_size']} process(es), this run has "
                f"{self.info.world_size}; training goes on, but not bit-identically to an uninterrupted run"
            )
        self.model.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        best = state["best"]
        self.best_epoch, self.best_score = int(best["epoch"]), float(best["score"])
        self.best_metrics, self.best_head = dict(best["metrics"]), best["head"]

    def _check_same_run(self, saved: dict[str, Any]) -> None:
        current = self._resume_meta()
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
        if diffs:
            raise ValueError(
                f"{self.checkpoint_path} belongs to a different run; --resume needs the original command. "
                "Differences: " + "; ".join(diffs)
            )

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (rank 0), then wait for every process."""
        state = self.state_dict()
        if self.info.is_main:
            _atomic_torch_save(state, self.checkpoint_path)
        barrier(self.info)

    def resume(self) -> None:
        """Load ``checkpoint.pt`` from the output folder (every process reads it)."""
        path = self.checkpoint_path
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no {CHECKPOINT_NAME} in {self.output}; start without --resume")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state)

    # ------------------------------------------------------------------ training

    def fit(self, *, stop_after: int | None = None) -> TrainResult:
        """Train from the current epoch to ``config.epochs`` (or ``stop_after`` more epochs).

        After each epoch: validate, keep the best head, write the checkpoint, ``metrics.csv``,
        ``curves.png`` and (on a new best) the head. At the end the best head is loaded into
        ``model.head`` and saved with :meth:`TeMuIQA.save_pretrained` into the output folder.
        """
        if self.info.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
        barrier(self.info)
        done_here = 0
        while self.epoch < self.config.epochs:
            if stop_after is not None and done_here >= stop_after:
                break
            start = time.perf_counter()
            losses = self._train_epoch(self.epoch)
            metrics = self._validate(self.epoch)
            self.epoch += 1
            done_here += 1
            row = {"epoch": self.epoch, "lr": self.scheduler.get_last_lr()[0], **losses, **{f"val_{k}": v for k, v in metrics.items()}}
            row["seconds"] = time.perf_counter() - start
            self.history.append(row)
            score = metrics["srcc"] + metrics["plcc"]
            if math.isfinite(score) and score > self.best_score:
                self.best_epoch, self.best_score, self.best_metrics = self.epoch, score, dict(metrics)
                self.best_head = _cpu_state(self.model.head)
                self._save_head(self.best_head)
            if self.info.is_main:
                self._write_reports()
                self._log(
                    f"epoch {self.epoch}/{self.config.epochs}: loss {losses['train_loss']:.4f} "
                    f"(mse {losses['train_mse']:.4f}, 1-plcc {losses['train_plcc']:.4f}, ldg {losses['train_ldg']:.4f}) | "
                    f"val srcc {metrics['srcc']:.4f} plcc {metrics['plcc']:.4f} krcc {metrics['krcc']:.4f} "
                    f"rmse {metrics['rmse']:.4f} | best epoch {self.best_epoch} | {row['seconds']:.1f} s"
                )
            self.save_checkpoint()
        finished = self.epoch >= self.config.epochs
        if finished:
            if self.best_head is None:  # every epoch's correlation was undefined: keep the last head
                self.best_epoch, self.best_head = self.epoch, _cpu_state(self.model.head)
            self.model.head.load_state_dict(self.best_head)
            self._save_head(self.best_head)
        return TrainResult(self.epoch, self.best_epoch, dict(self.best_metrics), list(self.history), finished)

    def _save_head(self, state: dict[str, torch.Tensor]) -> None:
        if not self.info.is_main:
            return
        current = _cpu_state(self.model.head)
        self.model.head.load_state_dict(state)
        try:
            self.model.save_pretrained(self.output)
        finally:
            self.model.head.load_state_dict(current)

    def _write_reports(self) -> None:
        from .plots import plot_curves, write_metrics_csv

        write_metrics_csv(self.history, self.output / METRICS_NAME, METRIC_COLUMNS)
        plot_curves(self.history, self.output / CURVES_NAME, best_epoch=self.best_epoch)

    def _validate(self, epoch: int) -> dict[str, float]:
        pred = predict(
            self.model, self.val_loader, size=len(self.val_set), info=self.info,
            precision=self.config.precision, progress=self.progress, desc=f"val {epoch + 1}",
        )  # fmt: skip
        return evaluate_scores(pred, self.val_targets)

    def ldg_generator(self, epoch: int) -> torch.Generator:
        """The LDG random stream of ``epoch`` on this process, on the training device."""
        gen = torch.Generator(device=self.info.device)
        gen.manual_seed(_epoch_seed(self.config.seed, epoch, self.info.rank, 1))
        return gen

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm.auto import tqdm

        cfg, device = self.config, self.info.device
        self.model.train()
        self.train_loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        generator = self.ldg_generator(epoch) if cfg.ldg else None
        sums = torch.zeros(4, device=device)  # total, mse, 1 - plcc, ldg
        first_bad = torch.zeros((), dtype=torch.long, device=device)  # 1-based step of the first non-finite loss
        window: dict[int, torch.Tensor] = {}  # step -> dataset indices, since the last check
        autocast = autocast_context(device, cfg.precision)
        bar = tqdm(
            total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
            leave=False, disable=not self.progress, file=sys.stderr,
        )  # fmt: skip
        try:
            for step, (images, targets, indices) in enumerate(self.train_loader):
                images = images.to(device, non_blocking=True)
                targets = targets.to(device, non_blocking=True)
                window[step] = indices
                parts = self._step(images, targets, generator, autocast)
                sums += parts.detach()
                first_bad = torch.where((first_bad == 0) & ~torch.isfinite(parts[0]), step + 1, first_bad)
                last = step + 1 == self.steps_per_epoch
                if (step + 1) % self.sync_every == 0 or last:
                    self._check_finite(first_bad, window, epoch)
                    window.clear()
                    if self.progress:
                        bar.set_postfix(loss=f"{float(sums[0]) / (step + 1):.4f}", refresh=False)
                bar.update(1)
        finally:
            bar.close()
        totals = all_reduce_sum(self.info, sums) / (self.steps_per_epoch * self.info.world_size)
        total, mse, plcc, ldg = totals.tolist()
        return {"train_loss": total, "train_mse": mse, "train_plcc": plcc, "train_ldg": ldg}

    def _step(
        self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None, autocast: Any
    ) -> torch.Tensor:
        """One optimisation step; returns ``[total, mse, 1 - plcc, ldg_mse]`` (device tensor, not synced)."""
        cfg = self.config
        n = images.shape[0]
        ldg_targets = None
        batch = images
        if cfg.ldg:
            from . import ldg as ldg_ops

            with torch.no_grad():
                distorted, _ = ldg_ops.local_distortion(
                    images, num_ops=cfg.ldg_ops, magnitude=cfg.ldg_magnitude, size_range=cfg.ldg_size,
                    reference_size=cfg.ldg_reference_size, generator=generator,
                )  # fmt: skip
                fidelity = ldg_ops.ldg_fidelity(images, distorted)
                ldg_targets = ldg_ops.ldg_targets(targets, fidelity).float()
            batch = torch.cat([images, distorted])  # one backbone pass over originals and distorted copies
        with autocast:
            scores = self.forward_module(batch)
        scores = scores.float()
        parts = self.loss_parts(scores[:n], targets, scores[n:] if cfg.ldg else None, ldg_targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(parts[0]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return parts

    def loss_parts(
        self, scores: torch.Tensor, targets: torch.Tensor, ldg_scores: torch.Tensor | None, ldg_targets: torch.Tensor | None
    ) -> torch.Tensor:
        """``[total, mse, 1 - plcc, ldg_mse]``: total = mse_w * mse + plcc_w * (1 - plcc) + ldg_w * ldg_mse.

        scores, targets: ``[N]`` predictions and normalised MOS of the originals;
        ldg_scores, ldg_targets: ``[N]`` predictions for the distorted copies and their targets ``f * y``
        (None without LDG: the LDG part is 0).
        """
        cfg = self.config
        mse = F.mse_loss(scores, targets)
        plcc = 1.0 - pearson_torch(scores, targets)
        total = cfg.mse_weight * mse + cfg.plcc_weight * plcc
        if ldg_scores is not None and ldg_targets is not None:
            ldg = F.mse_loss(ldg_scores, ldg_targets)
            total = total + cfg.ldg_weight * ldg
        else:
            ldg = torch.zeros((), device=scores.device)
        return torch.stack([total, mse, plcc, ldg])

    def _check_finite(self, first_bad: torch.Tensor, window: dict[int, torch.Tensor], epoch: int) -> None:
        if int(all_reduce_max(self.info, first_bad)) == 0:  # the one host-device sync of the window
            return
        own = int(first_bad)
        if own == 0:
            raise NonFiniteLossError(f"epoch {epoch + 1}: another process saw a non-finite training loss; see its message")
        step = own - 1
        paths = [str(self.train_records[int(i)].path) for i in window.get(step, torch.zeros(0, dtype=torch.long))]
        raise NonFiniteLossError(
            f"the training loss is NaN or infinite at epoch {epoch + 1}, step {step + 1} of {self.steps_per_epoch} "
            f"(process {self.info.rank}); the batch's images: {paths}. Check those images and their scores; "
            f"a lower --lr or --precision fp32 may help. The last checkpoint (epoch {self.epoch}) is intact: "
            "fix the cause and continue with --resume"
        )
