"""``temu-finetune``: fine-tune a TeMu-IQA head on a labelled IQA dataset (also ``python -m temu.cli.finetune``).

Example (KonIQ-10k with pyiqa's meta-info CSV and its official split column)::

    temu-finetune --train meta_info_KonIQ10kDataset.csv --format koniq10k \\
        --image-root datasets/koniq10k/512x384 --split-column official_split --output runs/koniq

The data are read and checked before anything is trained; every image path and score is
checked (``--check-images full`` also reads every image as training will). Unusable rows stop
the run with their list unless ``--skip-bad``. ``--dry-run`` stops after these checks and
refuses what the run would refuse. An ``--output`` that already holds a run or a head is
refused unless ``--resume`` (continue it) or ``--overwrite`` (delete its files, then start
anew). Multi-GPU: ``torchrun --nproc_per_node N -m temu.cli.finetune ...``.

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
    HelpFormatter,
    Parser,
    add_data_arguments,
    add_group_arguments,
    add_split_file_arguments,
    fraction,
    image_size,
    non_negative_int,
    parse_layers,
    positive_int,
    usage_error,
)

__all__ = ["build_parser", "main", "run"]

PROG = "temu-finetune"
BAD_ROWS_NAME = "bad_rows.txt"
RUN_NAME = "run.json"
CARD_NAME = "README.md"


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


def _train_config(config_class: Any, args: argparse.Namespace, workers: int) -> Any:
    return config_class(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, eta_min=args.eta_min,
        mse_weight=args.mse_weight, plcc_weight=args.plcc_weight, ldg=args.ldg, ldg_weight=args.ldg_weight,
        ldg_ops=args.ldg_ops, ldg_magnitude=args.ldg_magnitude, ldg_size=tuple(args.ldg_size), seed=args.seed,
        precision=args.precision, workers=workers, sync_every=args.log_every,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run ``temu-finetune`` with parsed arguments; returns the exit status."""
    from ..errors import MissingExtraError
    from ..extras import import_extra

    try:
        import_extra("scipy.stats", "train", "temu-finetune")
    except MissingExtraError as err:
        return usage_error(PROG, str(err))
    import torch

    from ..data.prepare import DataOptions, prepare_training_data
    from ..errors import DataError, NonFiniteLossError, TeMuError
    from ..model import TeMuIQA
    from ..runtime import default_num_workers
    from ..train.checkpoint import load_run_checkpoint
    from ..train.config import TrainConfig
    from ..train.distributed import setup, teardown
    from ..train.trainer import Trainer, steps_per_epoch

    try:
        info = setup(args.device)
    except (ValueError, RuntimeError) as err:  # a --device that is not usable here
        return usage_error(PROG, str(err))
    main_process = info.is_main

    def log(msg: str) -> None:
        if main_process:
            print(msg, file=sys.stderr, flush=True)

    try:
        output: Path = args.output
        old_files = _old_run_files(output, resume=args.resume, overwrite=args.overwrite)
        clear = bool(old_files) and main_process and not args.dry_run
        if clear:  # the data check below writes the new run's list of bad rows
            (output / BAD_ROWS_NAME).unlink(missing_ok=True)
        workers = (
            args.workers if args.workers is not None else default_num_workers(info.device, world_size=info.world_size)
        )
        try:
            config = _train_config(TrainConfig, args, workers)
        except ValueError as err:
            raise DataError(str(err)) from None
        data = prepare_training_data(
            DataOptions.from_namespace(args),
            val_csv=args.val,
            val_image_root=args.val_image_root,
            val_part=args.val_part,
            val_fraction=args.val_fraction,
            seed=args.seed,
            log=lambda msg: log(f"{PROG}: {msg}"),
            bad_file=output / BAD_ROWS_NAME if main_process and not args.dry_run else None,
        )
        steps_per_epoch(len(data.train), config.batch_size, info.world_size)
        log(
            f"{PROG}: {len(data.train)} training and {len(data.val)} validation images ({data.split}); "
            f"format {data.format.name} (path {data.format.path_col!r}, score {data.format.mos_col!r}, "
            f"{'lower' if data.format.lower_better else 'higher'} is better); MOS range {data.scale.low:g}..{data.scale.high:g}"
        )
        if args.dry_run:
            if main_process:
                print(json.dumps(data.summary(), indent=2))
            return 0
        if clear:  # only once the data are read and checked: a typo in the command keeps the old run
            for path in old_files:
                if path.name != BAD_ROWS_NAME:
                    path.unlink(missing_ok=True)
            log(f"{PROG}: --overwrite: deleted {', '.join(p.name for p in old_files)} of the old run in {output}")
        resume_state = None
        if args.resume:  # read before the model is built: an unusable checkpoint fails at once
            resume_state = load_run_checkpoint(output)
        torch.manual_seed(args.seed)  # the head's initialisation
        model = TeMuIQA(
            backbone=args.backbone,
            pretrained=args.pretrained,
            variant=args.variant,
            layers=args.layers,
            image_size=args.image_size,
        )
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
            log(f"{PROG}: resuming {output} after epoch {trainer.epoch} of {config.epochs}")
        if main_process:
            output.mkdir(parents=True, exist_ok=True)
            _write_run_file(output / RUN_NAME, args, data, config, model, info.world_size)
        log(
            f"{PROG}: {model.config.backbone} variant {model.config.variant}, {model.num_head_parameters:,} trainable parameters; "
            f"{config.epochs} epochs x {trainer.steps_per_epoch} steps of {config.batch_size} images; "
            f"LDG {f'on (weight {config.ldg_weight:g})' if config.ldg else 'off'}; device {info.device}"
            + (f" x {info.world_size} processes" if info.world_size > 1 else "")
        )
        result = trainer.fit(stop_after=args.stop_after_epochs)
    except NonFiniteLossError as err:
        log(f"{PROG}: error: {err}")
        return 1
    except (TeMuError, OSError) as err:
        log(f"{PROG}: error: {err}")
        return 2
    finally:
        teardown(info)
    if not result.finished:
        log(
            f"{PROG}: stopped after epoch {result.epochs_done} of {config.epochs}; continue with the same command plus --resume"
        )
        return 0
    best = result.best_metrics
    log(
        f"{PROG}: done. Best epoch {result.best_epoch}: "
        + ", ".join(f"{k.upper()} {v:.4f}" for k, v in best.items())
        + f" (RMSE on the [0, 1] scale). Head saved in {output}; load it with temu.load({str(output)!r})"
    )
    return 0


def _old_run_files(output: Path, *, resume: bool, overwrite: bool) -> list[Path]:
    """The files of an earlier run (or a saved head) in ``output`` that ``--overwrite`` deletes.

    Raises :class:`~temu.DataError` when ``output`` is a file, when both ``--resume`` and
    ``--overwrite`` are given, or when it holds such files and neither is given. Other files
    in the folder are never touched. With ``--resume`` nothing is deleted.
    """
    from ..errors import DataError
    from ..model.hub import CONFIG_NAME, WEIGHTS_NAME
    from ..train.trainer import CHECKPOINT_NAME, CURVES_NAME, METRICS_NAME

    if output.exists() and not output.is_dir():
        raise DataError(f"--output {output} is a file; give a folder for the run")
    if resume and overwrite:
        raise DataError("--resume continues the run in --output and --overwrite deletes it; give one of them")
    if resume:
        return []
    names = (CHECKPOINT_NAME, CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, METRICS_NAME, CURVES_NAME, RUN_NAME, BAD_ROWS_NAME)
    found = [output / name for name in names if (output / name).is_file() or (output / name).is_symlink()]
    if found and not overwrite:
        what = "a run" if (output / CHECKPOINT_NAME).exists() else "a head or a run's files"
        raise DataError(
            f"{output} already holds {what} ({', '.join(p.name for p in found)}); pass --resume to continue "
            "the run, --overwrite to delete those files and start anew, or choose another --output"
        )
    return found


def _write_run_file(path: Path, args: argparse.Namespace, data: Any, config: Any, model: Any, world_size: int) -> None:
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return list(value)
        return value

    info = {
        "temu_version": __version__,
        "command": [PROG, *sys.argv[1:]] if sys.argv and sys.argv[0] else None,
        "arguments": {k: plain(v) for k, v in vars(args).items()},
        "data": data.summary(),
        "train": config.to_dict(),
        "model": model.saved_config().to_dict(),
        "head_parameters": model.num_head_parameters,
        "world_size": world_size,
    }
    path.write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``temu-finetune`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
