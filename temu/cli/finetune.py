"""``temu-finetune``: fine-tune a TeMu-IQA head on a labelled IQA dataset (also ``python -m temu.cli.finetune``).

Example (KonIQ-10k with pyiqa's meta-info CSV and its official split column)::

    temu-finetune --train meta_info_KonIQ10kDataset.csv --format koniq10k \\
        --image-root datasets/koniq10k/512x384 --split-column official_split --output runs/koniq

The data are read and checked before anything is trained; every image path and score is
checked (``--check-images full`` also reads every image as training will). Unusable rows stop
the run with their list unless ``--skip-bad``. ``--dry-run`` stops after these checks and
refuses what the run would refuse. An ``--output`` that already holds a run or a head is
refused unless ``--resume`` (continue it) or ``--overwrite`` (delete its files, then start
anew). ``--splits N`` runs the paper's protocol (:func:`temu.train.protocol.run_splits`): N
runs on N splits and a summary. Multi-GPU: ``torchrun --nproc_per_node N -m temu.cli.finetune ...``.

The library names its arguments (``batch_size=...``); this command maps its flags to them in
:data:`TRAIN_FLAGS` and :data:`FLAGS`, and writes the library's messages with the flags.

Exit status: 0 done (or stopped by ``--stop-after-epochs``), 1 training failed (non-finite
loss), 2 usage or data error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..precision import AUTO_RULE, PRECISIONS
from .args import (
    DATA_FLAGS,
    HelpFormatter,
    Parser,
    add_data_arguments,
    add_group_arguments,
    add_split_file_arguments,
    data_options,
    flag_message,
    fraction,
    image_size,
    non_negative_int,
    parse_layers,
    positive_int,
    usage_error,
)

__all__ = ["FLAGS", "TRAIN_FLAGS", "build_parser", "main", "run", "train_config"]

PROG = "temu-finetune"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="Fine-tune a TeMu-IQA head (frozen CLIP backbone) on a labelled IQA dataset, with Local Distortion Guidance.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"temu {__version__}")
    g = p.add_argument_group("data")
    add_data_arguments(g, csv_flag="--train")  # type: ignore[arg-type]
    g.add_argument("--val", type=Path, default=None, metavar="CSV", help="validation CSV (same columns as --train)")
    g.add_argument(
        "--val-image-root", type=Path, default=None, metavar="DIR", help="image root of --val (default: --image-root)"
    )
    g.add_argument(
        "--val-fraction",
        type=fraction,
        default=None,
        help="random share of --train held out for validation (default 0.2 when no --val / split is given)",
    )
    add_group_arguments(g, what="the random validation split")
    add_split_file_arguments(g, what="train on its 'train' part, validate on its --val-part")
    g.add_argument(
        "--val-part",
        choices=["val", "test"],
        default="val",
        help="part of --split-file/--split-column used for validation",
    )
    g.add_argument(
        "--splits",
        type=positive_int,
        default=1,
        metavar="N",
        help="the paper's protocol: N runs, one per split, in --output/split-K (K = 1..N): random splits with "
        "seeds --seed..--seed+N-1, or splits --split-index.. of --split-file, or columns K.. of a numbered "
        "--split-column; then --output/summary.csv and summary.md (median, mean, std). 1: one run in --output",
    )

    g = p.add_argument_group("model")
    g.add_argument(
        "--variant",
        type=str.upper,
        choices=["S", "I"],
        default="S",
        help="S: static prompts; I: CoCoOp instance-conditional prompts",
    )
    g.add_argument(
        "--backbone",
        default="ViT-L-14",
        help="open_clip model name, model-config JSON or hf-hub:org/repo (OpenAI weights get QuickGELU)",
    )
    g.add_argument(
        "--pretrained", default="openai", help="open_clip pretrained tag, hf-hub:org/repo or a local checkpoint file"
    )
    g.add_argument(
        "--image-size",
        type=image_size,
        default=448,
        help="square input size, or 'native' (KADID-10k: every image the same size)",
    )
    g.add_argument(
        "--layers",
        type=parse_layers,
        default=None,
        help="'all', K (first K layers; 14 = the dagger variant), 'A-B' or 'A,B,C'",
    )

    g = p.add_argument_group("training (defaults: the paper's)")
    g.add_argument("--epochs", type=positive_int, default=30, help="30 in the paper; 5 for FLIVE and AVA")
    g.add_argument("--batch-size", type=positive_int, default=32, help="images per step, over all processes")
    g.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine-annealed per step")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--eta-min", type=float, default=0.0, help="final learning rate of the cosine schedule")
    g.add_argument("--mse-weight", type=float, default=1.0, help="weight of MSE(q, y) in the loss")
    g.add_argument("--plcc-weight", type=float, default=1.0, help="weight of 1 - PLCC(q, y) in the loss")
    g.add_argument("--ldg", action=argparse.BooleanOptionalAction, default=True, help="Local Distortion Guidance")
    g.add_argument("--ldg-weight", type=float, default=1.0, help="lambda of lambda * MSE(q(I~), f * y)")
    g.add_argument("--ldg-ops", type=int, default=6, help="RandAugment N inside the rectangle")
    g.add_argument("--ldg-magnitude", type=int, default=18, help="RandAugment M (0-30) inside the rectangle")
    g.add_argument(
        "--ldg-size",
        type=int,
        nargs=2,
        default=(40, 150),
        metavar=("MIN", "MAX"),
        help="rectangle side range in px at 448 (scaled with the input size)",
    )
    g.add_argument(
        "--seed", type=int, default=0, help="seed of the head's init, the random validation split, shuffling and LDG"
    )

    g = p.add_argument_group("run")
    g.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="DIR",
        help="run folder: best head (config.json, model.safetensors), metrics.csv, curves.png, checkpoint.pt",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output from its last checkpoint (same command otherwise)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in an --output that holds a run or a head: its run files are deleted once the "
        "data are checked",
    )
    g.add_argument(
        "--stop-after-epochs",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N epochs of this invocation (continue later with --resume)",
    )
    g.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:1 (default: cuda when available); under torchrun each process takes cuda:LOCAL_RANK",
    )
    g.add_argument(
        "--workers",
        type=non_negative_int,
        default=None,
        help="DataLoader workers per process (default: 0 on CPU, up to 8 on GPU)",
    )
    g.add_argument("--precision", choices=PRECISIONS, default="auto", help=f"forward autocast: auto = {AUTO_RULE}")
    g.add_argument(
        "--log-every",
        type=positive_int,
        default=None,
        metavar="N",
        help="read losses back (and check for NaN) every N steps (default: 1 on CPU, 25 on GPU)",
    )
    g.add_argument("--dry-run", action="store_true", help="read and check the data, print the splits, and stop")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return p


#: TrainConfig field -> temu-finetune flag: the one place the two meet (``ldg_reference_size`` has no flag,
#: ``workers`` gets its default from the device). :func:`train_config` builds the config from it.
TRAIN_FLAGS: dict[str, str] = {
    "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "weight_decay": "--weight-decay",
    "eta_min": "--eta-min", "mse_weight": "--mse-weight", "plcc_weight": "--plcc-weight", "ldg": "--ldg",
    "ldg_weight": "--ldg-weight", "ldg_ops": "--ldg-ops", "ldg_magnitude": "--ldg-magnitude",
    "ldg_size": "--ldg-size", "seed": "--seed", "precision": "--precision", "workers": "--workers",
    "sync_every": "--log-every",
}  # fmt: skip

#: Every library field (data, training, run) a message can name -> its flag (:func:`temu.cli.args.flag_message`).
FLAGS: dict[str, str] = {
    **DATA_FLAGS,
    **TRAIN_FLAGS,
    "ldg=False": "--no-ldg",
    "csv": "--train",
    "the training CSV (csv)": "the --train CSV",
    "val_csv": "--val",
    "val_image_root": "--val-image-root",
    "val_part": "--val-part",
    "val_fraction": "--val-fraction",
    "splits": "--splits",
    "output": "--output",
    "resume=True": "--resume",
    "overwrite=True": "--overwrite",
    "stop_after_epochs": "--stop-after-epochs",
    "device": "--device",
    "image_size=None": "--image-size native",
    "image_size": "--image-size",
    # model config fields (temu.errors.ConfigError names them)
    "layers": "--layers",
    "backbone": "--backbone",
    "pretrained": "--pretrained",
    "variant": "--variant",
}


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def train_config(args: argparse.Namespace, workers: int) -> Any:
    """The :class:`~temu.train.TrainConfig` of parsed ``temu-finetune`` arguments (see :data:`TRAIN_FLAGS`)."""
    from ..train.config import TrainConfig

    values = {name: getattr(args, _dest(flag)) for name, flag in TRAIN_FLAGS.items()}
    values["workers"] = workers
    values["ldg_size"] = tuple(values["ldg_size"])
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    """Run ``temu-finetune`` with parsed arguments; returns the exit status."""
    from ..errors import MissingExtraError
    from ..extras import import_extra

    try:
        import_extra("scipy.stats", "train", "temu-finetune")
    except MissingExtraError as err:
        return usage_error(PROG, str(err))
    from ..errors import DataError, NonFiniteLossError, TeMuError
    from ..runtime import default_num_workers
    from ..train.distributed import setup, teardown

    try:
        info = setup(args.device)
    except (ValueError, RuntimeError) as err:  # a --device that is not usable here
        return usage_error(PROG, flag_message(str(err), FLAGS))
    if args.splits > 1 and (args.val is not None or args.val_image_root is not None):
        teardown(info)
        return usage_error(
            PROG,
            "--val gives one fixed validation set; --splits N needs N splits: random ones (--val-fraction) or "
            "those of a --split-file or a numbered --split-column",
        )

    def log(msg: str) -> None:
        if info.is_main:
            print(f"{PROG}: {flag_message(msg, FLAGS)}", file=sys.stderr, flush=True)

    try:
        workers = (
            args.workers if args.workers is not None else default_num_workers(info.device, world_size=info.world_size)
        )
        try:
            config = train_config(args, workers)
        except ValueError as err:
            raise DataError(str(err)) from None
        options = data_options(vars(args))
        if args.splits > 1:
            return _run_splits(args, options, config, info, log)
        return _run_single(args, options, config, info, log)
    except NonFiniteLossError as err:
        log(f"error: {err}")
        return 1
    except (TeMuError, OSError) as err:
        log(f"error: {err}")
        return 2
    finally:
        teardown(info)


def _build_model(args: argparse.Namespace) -> Any:
    from ..model import TeMuIQA

    return TeMuIQA(
        backbone=args.backbone,
        pretrained=args.pretrained,
        variant=args.variant,
        layers=args.layers,
        image_size=args.image_size,
    )


def _run_info(args: argparse.Namespace) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return list(value)
        return value

    return {
        "command": [PROG, *sys.argv[1:]] if sys.argv and sys.argv[0] else None,
        "arguments": {k: plain(v) for k, v in vars(args).items()},
    }


def _run_single(args: argparse.Namespace, options: Any, config: Any, info: Any, log: Any) -> int:
    """One run in ``--output`` (``--splits 1``)."""
    import torch

    from ..data.prepare import prepare_training_data
    from ..train.checkpoint import load_run_checkpoint
    from ..train.runfiles import BAD_ROWS_NAME, RUN_NAME, delete_run_files, old_run_files, write_run_file
    from ..train.trainer import Trainer, steps_per_epoch

    main_process = info.is_main
    output: Path = args.output
    old_files = old_run_files(output, resume=args.resume, overwrite=args.overwrite)
    clear = bool(old_files) and main_process and not args.dry_run
    if clear:  # the data check below writes the new run's list of bad rows
        (output / BAD_ROWS_NAME).unlink(missing_ok=True)
    data = prepare_training_data(
        options,
        val_csv=args.val,
        val_image_root=args.val_image_root,
        val_part=args.val_part,
        val_fraction=args.val_fraction,
        seed=args.seed,
        log=log,
        bad_file=output / BAD_ROWS_NAME if main_process and not args.dry_run else None,
    )
    steps_per_epoch(len(data.train), config.batch_size, info.world_size)
    log(
        f"{len(data.train)} training and {len(data.val)} validation images ({data.split}); "
        f"format {data.format.name} (path {data.format.path_col!r}, score {data.format.mos_col!r}, "
        f"{'lower' if data.format.lower_better else 'higher'} is better); MOS range {data.scale.low:g}..{data.scale.high:g}"
    )
    if args.dry_run:
        if main_process:
            summary = data.summary()
            summary["split"] = flag_message(summary["split"], FLAGS)
            print(json.dumps(summary, indent=2))
        return 0
    if clear:  # only once the data are read and checked: a typo in the command keeps the old run
        delete_run_files(output, [p for p in old_files if p.name != BAD_ROWS_NAME], log=log)
    resume_state = None
    if args.resume:  # read before the model is built: an unusable checkpoint fails at once
        resume_state = load_run_checkpoint(output)
    torch.manual_seed(args.seed)  # the head's initialisation
    model = _build_model(args)
    trainer = Trainer(
        model,
        data.train,
        data.val,
        data.scale,
        config,
        output,
        info=info,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if resume_state is not None:
        trainer.resume(resume_state)
        log(f"resuming {output} after epoch {trainer.epoch} of {config.epochs}")
    if main_process:
        output.mkdir(parents=True, exist_ok=True)
        write_run_file(
            output / RUN_NAME, data=data, config=config, model=model, world_size=info.world_size, extra=_run_info(args)
        )
    log(
        f"{model.config.backbone} variant {model.config.variant}, {model.num_head_parameters:,} trainable parameters; "
        f"{config.epochs} epochs x {trainer.steps_per_epoch} steps of {config.batch_size} images; "
        f"LDG {f'on (weight {config.ldg_weight:g})' if config.ldg else 'off'}; device {info.device}"
        + (f" x {info.world_size} processes" if info.world_size > 1 else "")
    )
    result = trainer.fit(stop_after=args.stop_after_epochs)
    if not result.finished:
        log(
            f"stopped after epoch {result.epochs_done} of {config.epochs}; continue with the same command plus --resume"
        )
        return 0
    from ..evaluation.report import METRIC_LABELS

    best = result.best_metrics
    log(
        f"done. Best epoch {result.best_epoch}: "
        + ", ".join(f"{METRIC_LABELS[k]} {v:.4f}" for k, v in best.items())
        + f" (RMSE on the [0, 1] scale). Head saved in {output}; load it with temu.load({str(output)!r})"
    )
    return 0


def _run_splits(args: argparse.Namespace, options: Any, config: Any, info: Any, log: Any) -> int:
    """``--splits N``: :func:`temu.train.protocol.run_splits` (or, with ``--dry-run``, its data checks)."""
    from ..data.prepare import prepare_split_data
    from ..train.protocol import run_splits
    from ..train.runfiles import old_run_files
    from ..train.trainer import steps_per_epoch

    if args.dry_run:  # refuses what the run would refuse
        old_run_files(args.output, protocol=True, resume=args.resume, overwrite=args.overwrite)
        datas = prepare_split_data(
            options, splits=args.splits, seed=args.seed, val_fraction=args.val_fraction, val_part=args.val_part, log=log
        )
        for k, data in enumerate(datas):
            steps_per_epoch(len(data.train), config.batch_size, info.world_size)
            log(f"split {k + 1}/{args.splits}: {len(data.train)} training and {len(data.val)} validation images")
        if info.is_main:
            summaries = [{**d.summary(), "split": flag_message(d.split, FLAGS)} for d in datas]
            print(json.dumps({"splits": summaries}, indent=2))
        return 0
    result = run_splits(
        options,
        config,
        lambda: _build_model(args),
        args.output,
        splits=args.splits,
        val_fraction=args.val_fraction,
        val_part=args.val_part,
        resume=args.resume,
        overwrite=args.overwrite,
        stop_after_epochs=args.stop_after_epochs,
        info=info,
        progress=not args.quiet and sys.stderr.isatty(),
        log=log,
        run_info=_run_info(args),
    )
    if not result.finished:
        log("continue with the same command plus --resume")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``temu-finetune`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
