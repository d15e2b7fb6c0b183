"""``temu-finetune``: fine-tune a TeMu-IQA head on a labelled IQA dataset (also ``python -m temu.finetune``).

Example (KonIQ-10k with pyiqa's meta-info CSV and its official split column)::

    temu-finetune --train meta_info_KonIQ10kDataset.csv --format koniq10k \\
        --image-root datasets/koniq10k/512x384 --split-column official_split --output runs/koniq

The data are read and checked before anything is trained; every image path and score is
checked (``--check-images full`` also decodes every image). Unusable rows stop the run with
their list unless ``--skip-bad``. Multi-GPU: ``torchrun --nproc_per_node N -m temu.finetune ...``.

Exit status: 0 done (or stopped by ``--stop-after-epochs``), 1 training failed (non-finite
loss), 2 usage or data error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import (
    BadRow,
    DatasetFormat,
    IQARecord,
    MOSScale,
    apply_split,
    check_records,
    column_split,
    random_split,
    read_records,
    resolve_format,
)

__all__ = ["PreparedData", "build_parser", "main", "parse_layers", "prepare_data"]

PROG = "temu-finetune"
BAD_ROWS_NAME = "bad_rows.txt"
RUN_NAME = "run.json"
_SHOW_BAD = 50


class DataError(ValueError):
    """The dataset cannot be used as given (bad rows, empty splits, conflicting options)."""


# --------------------------------------------------------------------------- arguments


def parse_layers(text: str | None) -> None | int | list[int]:
    """``--layers``: ``all`` / none, ``K`` (the first K layers), ``A-B`` or ``A,B,C`` (numbered from 1)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    text = text.strip()
    try:
        if text.isdigit():
            return int(text)
        chosen: list[int] = []
        for part in text.split(","):
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                chosen.extend(range(a, b + 1))
            else:
                chosen.append(int(part))
        return chosen
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers {text!r}: expected 'all', K (the first K layers), a range 'A-B' or a list 'A,B,C' (layers numbered from 1)"
        ) from None


def _image_size(text: str) -> int | None:
    if text.strip().lower() in ("native", "none", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 1:
        raise argparse.ArgumentTypeError(f"--image-size {text!r}: expected a positive int (e.g. 448) or 'native'")
    return value


class _HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to options whose help does not mention a default and whose default is set."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.option_strings == []:
            return text
        return text + " (default: %(default)s)"


def split_column_arg(text: str) -> str | int:
    return int(text) if text.strip().isdigit() else text


def add_data_arguments(p: argparse.ArgumentParser, *, csv_flag: str) -> None:
    """The dataset options shared by ``temu-finetune`` (``--train``) and ``temu eval`` (``--data``)."""
    p.add_argument(csv_flag, dest="csv", type=Path, required=True, metavar="CSV", help="CSV with an image path column and a score column")
    p.add_argument("--image-root", type=Path, required=True, metavar="DIR", help="folder the CSV's image paths are relative to")
    p.add_argument("--format", default=None, metavar="NAME", help="a known dataset layout (koniq10k, spaq, livec, kadid10k, csiq, live, flive, agiqa3k); see temu.formats")
    p.add_argument("--path-col", default=None, metavar="NAME", help="image path column (default: detected from the header or given by --format)")
    p.add_argument("--mos-col", default=None, metavar="NAME", help="score column (default: detected from the header or given by --format)")
    p.add_argument("--lower-better", action="store_true", default=None, help="the score is a DMOS (lower = better); only for CSVs without --format")
    p.add_argument("--skip-bad", action="store_true", help="leave out unusable rows (missing/unreadable image, bad score) instead of stopping")
    p.add_argument("--check-images", choices=["header", "full"], default="header", help="'header': open every image's header (fast); 'full': decode every image (slow, catches truncated files)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(
        prog=PROG,
        description="Fine-tune a TeMu-IQA head (frozen CLIP backbone) on a labelled IQA dataset, with Local Distortion Guidance.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"temu {__version__}")
    g = p.add_argument_group("data")
    add_data_arguments(g, csv_flag="--train")  # type: ignore[arg-type]
    g.add_argument("--val", type=Path, default=None, metavar="CSV", help="validation CSV (same columns as --train)")
    g.add_argument("--val-image-root", type=Path, default=None, metavar="DIR", help="image root of --val (default: --image-root)")
    g.add_argument("--val-fraction", type=float, default=None, help="random share of --train held out for validation (default 0.2 when no --val / split is given)")
    g.add_argument("--split-file", type=Path, default=None, metavar="F", help="pyiqa split pickle {index: {'train','val','test'}} over the --train CSV's rows")
    g.add_argument("--split-index", default="1", metavar="K", help="split of --split-file to use (pyiqa numbers them from 1)")
    g.add_argument("--split-column", type=split_column_arg, default=None, metavar="NAME|K", help="pyiqa split column of the --train CSV (e.g. official_split; K = ratio802_seed123_split_K)")
    g.add_argument("--val-part", choices=["val", "test"], default="val", help="part of --split-file/--split-column used for validation")

    g = p.add_argument_group("model")
    g.add_argument("--variant", type=str.upper, choices=["S", "I"], default="S", help="S: static prompts; I: CoCoOp instance-conditional prompts")
    g.add_argument("--backbone", default="ViT-L-14", help="open_clip model name, model-config JSON or hf-hub:org/repo (OpenAI weights get QuickGELU)")
    g.add_argument("--pretrained", default="openai", help="open_clip pretrained tag, hf-hub:org/repo or a local checkpoint file")
    g.add_argument("--image-size", type=_image_size, default=448, help="square input size, or 'native' (KADID-10k: every image the same size)")
    g.add_argument("--layers", type=parse_layers, default=None, help="'all', K (first K layers; 14 = the dagger variant), 'A-B' or 'A,B,C'")

    g = p.add_argument_group("training (defaults: the paper's)")
    g.add_argument("--epochs", type=int, default=30, help="30 in the paper; 5 for FLIVE and AVA")
    g.add_argument("--batch-size", type=int, default=32, help="images per step, over all processes")
    g.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine-annealed per step")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--eta-min", type=float, default=0.0, help="final learning rate of the cosine schedule")
    g.add_argument("--mse-weight", type=float, default=1.0, help="weight of MSE(q, y) in the loss")
    g.add_argument("--plcc-weight", type=float, default=1.0, help="weight of 1 - PLCC(q, y) in the loss")
    g.add_argument("--ldg", action=argparse.BooleanOptionalAction, default=True, help="Local Distortion Guidance")
    g.add_argument("--ldg-weight", type=float, default=1.0, help="lambda of lambda * MSE(q(I~), f * y)")
    g.add_argument("--ldg-ops", type=int, default=6, help="RandAugment N inside the rectangle")
    g.add_argument("--ldg-magnitude", type=int, default=18, help="RandAugment M (0-30) inside the rectangle")
    g.add_argument("--ldg-size", type=int, nargs=2, default=(40, 150), metavar=("MIN", "MAX"), help="rectangle side range in px at 448 (scaled with the input size)")
    g.add_argument("--seed", type=int, default=0, help="seed of the head's init, the random validation split, shuffling and LDG")

    g = p.add_argument_group("run")
    g.add_argument("--output", type=Path, required=True, metavar="DIR", help="run folder: best head (config.json, model.safetensors), metrics.csv, curves.png, checkpoint.pt")
    g.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint (same command otherwise)")
    g.add_argument("--overwrite", action="store_true", help="start a new run in an --output that holds one")
    g.add_argument("--stop-after-epochs", type=int, default=None, metavar="N", help="stop after N epochs of this invocation (continue later with --resume)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available); under torchrun each process takes cuda:LOCAL_RANK")
    g.add_argument("--workers", type=int, default=None, help="DataLoader workers per process (default: 0 on CPU, up to 8 on GPU)")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto", help="forward autocast: auto = bf16 on GPU, fp32 on CPU")
    g.add_argument("--log-every", type=int, default=None, metavar="N", help="read losses back (and check for NaN) every N steps (default: 1 on CPU, 25 on GPU)")
    g.add_argument("--dry-run", action="store_true", help="read and check the data, print the splits, and stop")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return p


# --------------------------------------------------------------------------- data


@dataclass
class PreparedData:
    """Train and validation records after splitting and checks, the format and the MOS scale (fitted on train)."""

    train: list[IQARecord]
    val: list[IQARecord]
    format: DatasetFormat
    scale: MOSScale
    split: str
    skipped: list[BadRow] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format.name,
            "path_col": self.format.path_col,
            "mos_col": self.format.mos_col,
            "lower_better": self.format.lower_better,
            "split": self.split,
            "train_images": len(self.train),
            "val_images": len(self.val),
            "skipped_rows": len(self.skipped),
            "mos_scale": self.scale.to_dict(),
        }


def read_labelled(
    csv_path: Path, image_root: Path, *, format: str | None, path_col: str | None, mos_col: str | None, lower_better: bool | None
) -> tuple[list[IQARecord], DatasetFormat]:
    """Records of a CSV and the resolved format (columns and score direction)."""
    if lower_better is not None and format is not None:
        raise DataError("--lower-better is for CSVs without --format; a --format already knows its score direction")
    fmt = resolve_format(csv_path, format=format, path_col=path_col, mos_col=mos_col, lower_better=lower_better)
    return read_records(csv_path, image_root, format=fmt), fmt


def _reference_groups(csv_path: Path, fmt: DatasetFormat, records: Sequence[IQARecord]) -> list[str] | None:
    """Reference image of each record for full-reference datasets (KADID-10k, CSIQ, LIVE), else None."""
    if not fmt.ref_col:
        return None
    from .data import _read_table

    header, rows = _read_table(csv_path)
    if fmt.ref_col not in header:
        return None
    col = header.index(fmt.ref_col)
    by_line = {line: (cells[col].strip() if col < len(cells) else "") for line, cells in rows}
    return [by_line.get(r.row, "") for r in records]


def handle_bad_rows(
    bad: list[BadRow], *, skip: bool, what: str, log: Callable[[str], None], bad_file: Path | None
) -> None:
    """Stop with the list of bad rows (DataError), or with ``skip`` log them and go on."""
    if not bad:
        return
    lines = [str(b) for b in bad]
    if bad_file is not None:
        bad_file.parent.mkdir(parents=True, exist_ok=True)
        bad_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    shown = "\n  ".join(lines[:_SHOW_BAD])
    more = f"\n  ... and {len(lines) - _SHOW_BAD} more" if len(lines) > _SHOW_BAD else ""
    saved = f" (all listed in {bad_file})" if bad_file is not None else ""
    if skip:
        log(f"{PROG}: --skip-bad: leaving out {len(bad)} unusable row(s) of {what}{saved}:\n  {shown}{more}")
        return
    raise DataError(
        f"{len(bad)} row(s) of {what} cannot be used{saved}:\n  {shown}{more}\n"
        "Fix or remove these rows, or pass --skip-bad to train without them."
    )


def prepare_data(args: argparse.Namespace, *, log: Callable[[str], None], bad_file: Path | None = None) -> PreparedData:
    """Read ``--train`` (and ``--val``), split, check every used row, fit the MOS scale on train."""
    records, fmt = read_labelled(
        args.csv, args.image_root, format=args.format, path_col=args.path_col, mos_col=args.mos_col, lower_better=args.lower_better
    )
    sources = [name for name, given in (("--val", args.val), ("--split-file", args.split_file), ("--split-column", args.split_column)) if given is not None]
    if len(sources) > 1 or (sources and args.val_fraction is not None):
        given = sources + (["--val-fraction"] if args.val_fraction is not None else [])
        raise DataError(f"choose one way to get the validation set, got {', '.join(given)}")
    if args.val is not None:
        val, _ = read_labelled(
            args.val, args.val_image_root or args.image_root, format=fmt.name if fmt.name != "generic" else None,
            path_col=fmt.path_col, mos_col=fmt.mos_col, lower_better=None if fmt.name != "generic" else fmt.lower_better,
        )  # fmt: skip
        train, split = records, f"--val {args.val}"
    elif args.split_file is not None or args.split_column is not None:
        if args.split_file is not None:
            parts = apply_split(records, args.split_file, args.split_index)
            split = f"--split-file {args.split_file} (split {args.split_index})"
        else:
            parts = column_split(args.csv, records, args.split_column)
            split = f"--split-column {args.split_column}"
        train, val = parts["train"], parts[args.val_part]
        if not val:
            other = "test" if args.val_part == "val" else "val"
            hint = f"; it has {len(parts[other])} '{other}' items: pass --val-part {other}" if parts[other] else ""
            raise DataError(f"{split} has no '{args.val_part}' items{hint}")
        split += f", validating on its '{args.val_part}' part"
    else:
        fraction = 0.2 if args.val_fraction is None else args.val_fraction
        groups = _reference_groups(args.csv, fmt, records)
        if groups is not None:
            by_record = dict(zip(records, groups))
            train, val = random_split(records, fraction, args.seed, group_key=by_record.__getitem__)
            split = f"random {fraction:g} of the reference images (seed {args.seed})"
        else:
            train, val = random_split(records, fraction, args.seed)
            split = f"random {fraction:g} (seed {args.seed})"
    if not train:
        raise DataError(f"the training set is empty ({split})")
    bad = check_records(list(train) + list(val), full=args.check_images == "full")
    handle_bad_rows(bad, skip=args.skip_bad, what=f"{args.csv}" + (f" / {args.val}" if args.val else ""), log=log, bad_file=bad_file)
    bad_ids = {(b.row, b.path) for b in bad}
    train = [r for r in train if (r.row, r.path) not in bad_ids]
    val = [r for r in val if (r.row, r.path) not in bad_ids]
    if len(train) < 2 or not val:
        raise DataError(f"after leaving out bad rows, {len(train)} training and {len(val)} validation images remain; need >= 2 and >= 1")
    try:
        scale = MOSScale.fit(train, lower_better=fmt.lower_better)
    except ValueError as err:
        raise DataError(f"cannot normalise the training scores: {err}") from None
    return PreparedData(list(train), list(val), fmt, scale, split, bad)


# --------------------------------------------------------------------------- main


def _train_config(args: argparse.Namespace, workers: int):
    from .trainer import TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, eta_min=args.eta_min,
        mse_weight=args.mse_weight, plcc_weight=args.plcc_weight, ldg=args.ldg, ldg_weight=args.ldg_weight,
        ldg_ops=args.ldg_ops, ldg_magnitude=args.ldg_magnitude, ldg_size=tuple(args.ldg_size), seed=args.seed,
        precision=args.precision, workers=workers, sync_every=args.log_every,
    )  # fmt: skip


def _default_workers(device_type: str, world_size: int) -> int:
    if device_type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 1) // max(1, world_size)))


def run(args: argparse.Namespace) -> int:
    """Run ``temu-finetune`` with parsed arguments; returns the exit status."""
    import torch

    from .distributed import setup, teardown
    from .errors import TeMuError
    from .model import TeMuIQA
    from .trainer import CHECKPOINT_NAME, NonFiniteLossError, Trainer

    try:
        info = setup(args.device)
    except (ValueError, RuntimeError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    main_process = info.is_main

    def log(msg: str) -> None:
        if main_process:
            print(msg, file=sys.stderr, flush=True)

    try:
        output: Path = args.output
        if not args.dry_run and not args.resume and not args.overwrite and (output / CHECKPOINT_NAME).exists():
            raise DataError(f"{output} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue it or --overwrite to start anew")
        try:
            config = _train_config(args, args.workers if args.workers is not None else _default_workers(info.device.type, info.world_size))
        except ValueError as err:
            raise DataError(str(err)) from None
        data = prepare_data(args, log=log, bad_file=output / BAD_ROWS_NAME if main_process and not args.dry_run else None)
        log(
            f"{PROG}: {len(data.train)} training and {len(data.val)} validation images ({data.split}); "
            f"format {data.format.name} (path {data.format.path_col!r}, score {data.format.mos_col!r}, "
            f"{'lower' if data.format.lower_better else 'higher'} is better); MOS range {data.scale.low:g}..{data.scale.high:g}"
        )
        if args.dry_run:
            if main_process:
                print(json.dumps(data.summary(), indent=2))
            return 0
        torch.manual_seed(args.seed)  # the head's initialisation
        model = TeMuIQA(backbone=args.backbone, pretrained=args.pretrained, variant=args.variant, layers=args.layers, image_size=args.image_size)
        trainer = Trainer(model, data.train, data.val, data.scale, config, output, info=info, progress=not args.quiet and sys.stderr.isatty())
        if args.resume:
            trainer.resume()
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
    except (DataError, TeMuError, ValueError, FileNotFoundError) as err:
        log(f"{PROG}: error: {err}")
        return 2
    finally:
        teardown(info)
    if not result.finished:
        log(f"{PROG}: stopped after epoch {result.epochs_done} of {config.epochs}; continue with the same command plus --resume")
        return 0
    best = result.best_metrics
    log(
        f"{PROG}: done. Best epoch {result.best_epoch}: "
        + ", ".join(f"{k.upper()} {v:.4f}" for k, v in best.items())
        + f" (RMSE on the [0, 1] scale). Head saved in {output}; load it with temu.load({str(output)!r})"
    )
    return 0


def _write_run_file(path: Path, args: argparse.Namespace, data: PreparedData, config: Any, model: Any, world_size: int) -> None:
    from . import __version__

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
