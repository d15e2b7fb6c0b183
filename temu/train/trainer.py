"""The fine-tuning loop: loss, Local Distortion Guidance, validation, checkpoints, exact resume.

docs/method.md, "Training" (paper): Adam, lr 2e-3, cosine annealing, batch 32, 30 epochs, the epoch
with the best validation SRCC + PLCC kept. Loss (ours, after IQA-PyTorch's CLIP-IQA+ recipe):
``mse_weight * MSE(q, y) + plcc_weight * (1 - PLCC(q, y))`` on the batch. Section 3 (LDG):
each training image also gets a locally distorted copy whose target is ``f * y`` (f = CW-SSIM
fidelity), with loss ``ldg_weight * MSE(q(I~), f * y)``. Originals and distorted copies go
through the backbone together in one forward of ``2N`` images.

Only the head is trained; the frozen backbone runs without autograd (see :class:`TeMuIQA`).
Losses are accumulated on the device and read back once every ``sync_every`` steps and at the
end of each epoch; that is also when a non-finite loss is detected, and the run stops naming
the first bad batch (epoch, step, image paths).

Resume: after every epoch ``checkpoint.pt`` is written atomically (:mod:`temu.train.checkpoint`).
It holds the head, the optimizer, the scheduler, the gradient scaler, the global RNG states,
the epoch counter, the best epoch so far with its head, and the metrics history. The shuffling
order of epoch ``e`` and the LDG generator of epoch ``e`` are pure functions of ``(seed, e,
rank)``, so a run resumed after epoch ``e`` draws exactly what the uninterrupted run would have
drawn. On the same hardware the resumed result is identical.

Several processes (torchrun): each takes an equal share of every batch; after ``backward`` the
head's gradients are averaged over the processes with one ``all_reduce``
(:func:`temu.train.distributed.average_gradients`). The head is small, so that is all
DistributedDataParallel would do here.

Hook: ``Trainer(..., on_step=fn)`` calls ``fn(StepInfo)`` after every optimisation step, on
every process, with what the step trained on (the batch's files, images and targets, LDG's
distorted copies, fidelities and targets, the forward batch size and the loss parts).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from .._version import __version__
from ..data.dataset import IQADataset, make_loader
from ..data.records import IQARecord
from ..errors import DataError, NonFiniteLossError
from ..evaluation.predict import predict
from ..evaluation.report import evaluate_scores
from ..files import atomic_write
from ..images.decode import pixels_to_float
from ..model import TeMuIQA
from ..model.scale import MOSScale
from ..precision import autocast_context
from . import ldg as ldg_ops
from .checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    atomic_torch_save,
    cpu_state,
    epoch_seed,
    load_run_checkpoint,
    records_digest,
    rng_state,
    run_differences,
    set_rng_state,
)
from .config import TrainConfig
from .distributed import DistInfo, all_reduce_max, all_reduce_sum, average_gradients, barrier, gather_cat
from .loss import loss_parts

__all__ = [
    "CHECKPOINT_NAME",
    "CURVES_NAME",
    "METRICS_NAME",
    "METRIC_COLUMNS",
    "StepInfo",
    "TrainResult",
    "Trainer",
    "steps_per_epoch",
]

METRICS_NAME = "metrics.csv"
CURVES_NAME = "curves.png"

#: Columns of metrics.csv, in order.
METRIC_COLUMNS = (
    "epoch", "lr", "train_loss", "train_mse", "train_plcc", "train_ldg",
    "val_srcc", "val_plcc", "val_fitted_plcc", "val_krcc", "val_rmse", "seconds",
)  # fmt: skip


def write_metrics_csv(
    history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], columns: Sequence[str]
) -> Path:
    """One row per epoch with ``columns`` (floats with 6 significant decimals), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in history:
        writer.writerow([_fmt(row.get(c)) for c in columns])
    path = Path(path)
    atomic_write(path, buffer.getvalue().encode("utf-8"))
    return path


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def steps_per_epoch(train_size: int, batch_size: int, world_size: int = 1) -> int:
    """Optimisation steps in one epoch of ``train_size`` images, in batches of ``batch_size`` over
    ``world_size`` processes (the last incomplete batch is dropped).

    Raises :class:`~temu.DataError` when the run cannot train: ``batch_size`` not divisible by
    ``world_size``, a share under 2 images per process (the PLCC loss needs 2), or fewer images
    than one batch. A dry run can call it to refuse what the run would.
    """
    if batch_size % world_size:
        raise DataError(
            f"batch_size={batch_size} must be divisible by the number of processes "
            f"({world_size}); each process takes an equal share"
        )
    local = batch_size // world_size
    if local < 2:
        raise DataError(
            f"batch_size={batch_size} over {world_size} processes leaves {local} "
            "image per process; the PLCC loss needs at least 2. Raise batch_size"
        )
    steps = math.ceil(train_size / world_size) // local  # DistributedSampler's share, then whole batches
    if steps == 0:
        raise DataError(
            f"the training set has {train_size} images, fewer than one batch of {batch_size}; "
            "lower batch_size or add images"
        )
    return steps


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns. ``finished`` is False when it stopped early (``stop_after``)."""

    epochs_done: int
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    finished: bool


@dataclass(frozen=True)
class StepInfo:
    """What one optimisation step trained on, handed to the ``on_step`` hook of :class:`Trainer`.

    Tensors are this process's share of the batch (``N`` images), detached, on the training
    device; reading their values waits for the device (a host-device sync on GPU).

    epoch, step: 1-based, as in ``metrics.csv`` and the trainer's messages; ``steps_per_epoch`` steps per epoch.
    paths: the ``N`` image files, in batch order.
    images: ``[N, 3, H, W]`` floats in [0, 1], the originals as the model gets them: read, resized
        (8-bit images as uint8, bicubic) and divided by 255.
    targets: ``[N]`` their MOS normalised to [0, 1] (1 = best).
    distorted: ``[N, 3, H, W]`` LDG's locally distorted copies; None without LDG.
    fidelity: ``[N]`` CW-SSIM fidelity f of each copy, in [0, 1]; None without LDG.
    ldg_targets: ``[N]`` the copies' targets ``f * y``; None without LDG.
    forward_batch: images in the step's one forward pass: ``2N`` with LDG (originals and copies), ``N`` without.
    losses: ``[4]``: total, MSE, 1 - PLCC, LDG's MSE (the LDG part is 0 without LDG).
    """

    epoch: int
    step: int
    steps_per_epoch: int
    paths: list[str]
    images: torch.Tensor
    targets: torch.Tensor
    distorted: torch.Tensor | None
    fidelity: torch.Tensor | None
    ldg_targets: torch.Tensor | None
    forward_batch: int
    losses: torch.Tensor


class _StepSeen(NamedTuple):
    forward_batch: int
    distorted: torch.Tensor | None
    fidelity: torch.Tensor | None
    ldg_targets: torch.Tensor | None


class Trainer:
    """Fine-tunes ``model.head`` on ``train`` records, validating on ``val`` after every epoch.

    model: a :class:`TeMuIQA` (its ``config.mos_scale`` is set to ``scale`` here).
    train, val: records with raw scores; ``scale`` (fitted on ``train``) maps them to [0, 1].
    output: the run folder (checkpoint, best head, metrics.csv, curves.png); written by rank 0 only.
    info: this process's rank and device (:func:`temu.train.distributed.setup`).
    progress: tqdm bars on rank 0. log: where rank 0's one-line messages go (default stderr).
    on_step: called with a :class:`StepInfo` after every optimisation step (on every process),
        e.g. to log LDG's targets or look at its distorted images. It runs in the training loop:
        keep it cheap. None (the default) costs nothing.
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
        on_step: Callable[[StepInfo], None] | None = None,
    ) -> None:
        self.info = info or DistInfo()
        self.on_step = on_step
        self.config = config
        self.output = Path(output)
        self.scale = scale
        self.progress = progress and self.info.is_main
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        device = self.info.device
        steps_per_epoch(len(train), config.batch_size, self.info.world_size)
        self.local_batch = config.batch_size // self.info.world_size
        if not val:
            raise DataError("val is empty: give the validation records (at least 2) the best epoch is chosen on")
        model.config = model.config.replace(mos_scale=scale)
        self.model = model.to(device)
        self.train_records = list(train)
        self.val_records = list(val)
        self.train_set = IQADataset.for_model(self.train_records, model.input_size, scale)
        self.val_set = IQADataset.for_model(self.val_records, model.input_size, scale)
        self.val_targets = np.asarray(scale.normalise([r.mos for r in self.val_records]), dtype=np.float64)
        shards = dict(rank=self.info.rank, world_size=self.info.world_size, pin_memory=device.type == "cuda")
        self.train_loader = make_loader(
            self.train_set, batch_size=self.local_batch, shuffle=True, seed=config.seed,
            drop_last=True, num_workers=config.workers, **shards,
        )  # fmt: skip
        self.val_loader = make_loader(
            self.val_set, batch_size=self.local_batch, shuffle=False, seed=config.seed,
            drop_last=False, num_workers=config.workers, by_size=True, **shards,
        )  # fmt: skip
        self.steps_per_epoch = len(self.train_loader)
        params = [p for p in model.head.parameters() if p.requires_grad]
        self.params = params
        if not params:
            raise DataError("the head has no trainable parameters (check the head config)")
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=config.epochs * self.steps_per_epoch, eta_min=config.eta_min
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self._uses_fp16())
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
        return self.config.precision == "fp16" or (
            self.config.precision == "auto" and not torch.cuda.is_bf16_supported()
        )

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
        return {
            "format": CHECKPOINT_FORMAT,
            "temu_version": __version__,
            "epoch": self.epoch,
            "world_size": self.info.world_size,
            "meta": self._resume_meta(),
            "mos_scale": self.scale.to_dict(),
            "head": cpu_state(self.model.head),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "history": copy.deepcopy(self.history),
            "best": {
                "epoch": self.best_epoch,
                "score": self.best_score,
                "metrics": dict(self.best_metrics),
                "head": self.best_head,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the run's settings and data must be the checkpoint's.

        A state that does not fit (another run, or damaged contents) raises :class:`~temu.DataError`.
        """
        if state.get("format") != CHECKPOINT_FORMAT:
            raise DataError(
                f"checkpoint format {state.get('format')!r} is not supported (expected {CHECKPOINT_FORMAT})"
            )
        try:
            self._check_same_run(state["meta"])
            if state["world_size"] != self.info.world_size and self.info.is_main:
                self._log(
                    f"warning: the checkpoint was written by {state['world_size']} process(es), this "
                    f"run has {self.info.world_size}; training goes on, but not bit-identically to an uninterrupted run"
                )
            self.model.head.load_state_dict(state["head"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            self.epoch = int(state["epoch"])
            self.history = list(state["history"])
            best = state["best"]
            self.best_epoch, self.best_score = int(best["epoch"]), float(best["score"])
            self.best_metrics, self.best_head = dict(best["metrics"]), best["head"]
        except DataError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise DataError(
                f"{self.checkpoint_path} does not fit this run ({type(err).__name__}: {first[:200]}); the file "
                "is damaged or was edited. Start the run anew (overwrite=True), or put back an intact copy"
            ) from None

    def _check_same_run(self, saved: dict[str, Any]) -> None:
        diffs = run_differences(saved, self._resume_meta())
        if diffs:
            raise DataError(
                f"{self.checkpoint_path} belongs to a different run; resuming needs the original settings and data. "
                "Differences: " + "; ".join(diffs)
            )

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (rank 0), then wait for every process."""
        state = self.state_dict()
        if self.info.is_main:
            atomic_torch_save(state, self.checkpoint_path)
        barrier(self.info)

    def resume(self, state: dict[str, Any] | None = None) -> None:
        """Continue from ``state`` (:func:`~temu.train.checkpoint.load_checkpoint` of ``checkpoint.pt``), by
        default read here from the output folder (every process reads it)."""
        self.load_state_dict(state if state is not None else load_run_checkpoint(self.output))

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
            row = {
                "epoch": self.epoch,
                "lr": self.scheduler.get_last_lr()[0],
                **losses,
                **{f"val_{k}": v for k, v in metrics.items()},
            }
            row["seconds"] = time.perf_counter() - start
            self.history.append(row)
            score = metrics["srcc"] + metrics["plcc"]
            if math.isfinite(score) and score > self.best_score:
                self.best_epoch, self.best_score, self.best_metrics = self.epoch, score, dict(metrics)
                self.best_head = cpu_state(self.model.head)
                self._save_head(self.best_head)
            if self.info.is_main:
                self._write_reports()
                self._log(
                    f"epoch {self.epoch}/{self.config.epochs}: loss {losses['train_loss']:.4f} "
                    f"(mse {losses['train_mse']:.4f}, 1-plcc {losses['train_plcc']:.4f}, ldg {losses['train_ldg']:.4f}) | "
                    f"val srcc {metrics['srcc']:.4f} plcc {metrics['plcc']:.4f} (fitted {metrics['fitted_plcc']:.4f}) "
                    f"krcc {metrics['krcc']:.4f} "
                    f"rmse {metrics['rmse']:.4f} | best epoch {self.best_epoch} | {row['seconds']:.1f} s"
                )
            self.save_checkpoint()
        finished = self.epoch >= self.config.epochs
        if finished:
            if self.best_head is None:  # every epoch's correlation was undefined: keep the last head
                self.best_epoch, self.best_head = self.epoch, cpu_state(self.model.head)
            self.model.head.load_state_dict(self.best_head)
            self._save_head(self.best_head)
        return TrainResult(self.epoch, self.best_epoch, dict(self.best_metrics), list(self.history), finished)

    def _save_head(self, state: dict[str, torch.Tensor]) -> None:
        if not self.info.is_main:
            return
        current = cpu_state(self.model.head)
        self.model.head.load_state_dict(state)
        try:
            self.model.save_pretrained(self.output)
        finally:
            self.model.head.load_state_dict(current)

    def _write_reports(self) -> None:
        from ..plots import plot_curves  # matplotlib only when a report is written

        write_metrics_csv(self.history, self.output / METRICS_NAME, METRIC_COLUMNS)
        plot_curves(self.history, self.output / CURVES_NAME, best_epoch=self.best_epoch)

    def _validate(self, epoch: int) -> dict[str, float]:
        gather = partial(gather_cat, self.info) if self.info.world_size > 1 else None
        pred = predict(
            self.model, self.val_loader, size=len(self.val_set), device=self.info.device,
            precision=self.config.precision, gather=gather, progress=self.progress, desc=f"val {epoch + 1}",
        )  # fmt: skip
        return evaluate_scores(pred, self.val_targets)

    def ldg_generator(self, epoch: int) -> torch.Generator:
        """The LDG random stream of ``epoch`` on this process, on the training device."""
        gen = torch.Generator(device=self.info.device)
        gen.manual_seed(epoch_seed(self.config.seed, epoch, self.info.rank, 1))
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
                images = pixels_to_float(images.to(device, non_blocking=True))  # uint8 from the loader
                targets = targets.to(device, non_blocking=True)
                window[step] = indices
                parts, seen = self._step(images, targets, generator, autocast)
                if self.on_step is not None:
                    self.on_step(self._step_info(epoch, step, indices, images, targets, parts, seen))
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

    def _step_info(
        self,
        epoch: int,
        step: int,
        indices: torch.Tensor,
        images: torch.Tensor,
        targets: torch.Tensor,
        parts: torch.Tensor,
        seen: _StepSeen,
    ) -> StepInfo:
        return StepInfo(
            epoch=epoch + 1, step=step + 1, steps_per_epoch=self.steps_per_epoch,
            paths=[str(self.train_records[int(i)].path) for i in indices],
            images=images, targets=targets, distorted=seen.distorted, fidelity=seen.fidelity,
            ldg_targets=seen.ldg_targets, forward_batch=seen.forward_batch, losses=parts.detach(),
        )  # fmt: skip

    def _step(
        self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None, autocast: Any
    ) -> tuple[torch.Tensor, _StepSeen]:
        """One optimisation step; returns ``[total, mse, 1 - plcc, ldg_mse]`` (device tensor, not synced) and
        what the forward pass was given (for :class:`StepInfo`)."""
        cfg = self.config
        n = images.shape[0]
        distorted = fidelity = ldg_targets = None
        batch = images
        if cfg.ldg:
            with torch.no_grad():
                distorted, _ = ldg_ops.local_distortion(
                    images, num_ops=cfg.ldg_ops, magnitude=cfg.ldg_magnitude, size_range=cfg.ldg_size,
                    reference_size=cfg.ldg_reference_size, generator=generator,
                )  # fmt: skip
                fidelity = ldg_ops.ldg_fidelity(images, distorted)
                ldg_targets = ldg_ops.ldg_targets(targets, fidelity).float()
            batch = torch.cat([images, distorted])  # one backbone pass over originals and distorted copies
        with autocast:
            scores = self.model(batch, check_input=False)
        scores = scores.float()
        parts = loss_parts(
            scores[:n], targets, scores[n:] if cfg.ldg else None, ldg_targets,
            mse_weight=cfg.mse_weight, plcc_weight=cfg.plcc_weight, ldg_weight=cfg.ldg_weight,
        )  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(parts[0]).backward()
        average_gradients(self.info, self.params)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return parts, _StepSeen(batch.shape[0], distorted, fidelity, ldg_targets)

    def _check_finite(self, first_bad: torch.Tensor, window: dict[int, torch.Tensor], epoch: int) -> None:
        if int(all_reduce_max(self.info, first_bad)) == 0:  # the one host-device sync of the window
            return
        own = int(first_bad)
        if own == 0:
            raise NonFiniteLossError(
                f"epoch {epoch + 1}: another process saw a non-finite training loss; see its message"
            )
        step = own - 1
        paths = [str(self.train_records[int(i)].path) for i in window.get(step, torch.zeros(0, dtype=torch.long))]
        raise NonFiniteLossError(
            f"the training loss is NaN or infinite at epoch {epoch + 1}, step {step + 1} of {self.steps_per_epoch} "
            f"(process {self.info.rank}); the batch's images: {paths}. Check those images and their scores; "
            f"a lower lr (now lr={self.config.lr:g}) or precision='fp32' may help. The last checkpoint (epoch "
            f"{self.epoch}) is intact: fix the cause and continue from it (resume=True)"
        )
