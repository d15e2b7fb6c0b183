"""``temu eval``: SRCC, PLCC, KRCC and RMSE of a model on a labelled dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import TeMuError
from ..files import atomic_write
from ..model.attributes import DEFAULT_ATTRIBUTES
from .args import (
    add_data_arguments,
    add_group_arguments,
    add_model_argument,
    add_runtime_arguments,
    add_split_file_arguments,
    fraction,
    positive_int,
    usage_error,
)
from .writers import file_in_the_way

PROG = "temu eval"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="SRCC, PLCC, KRCC and RMSE of a model on a labelled dataset",
        description=(
            "Score every image of a labelled CSV and compare with its MOS. RMSE is computed on the [0, 1] scale: "
            "MOS normalised with --mos-range. --splits K also reports mean ± std over K random subsets "
            "(each --split-fraction of the rows, seeds --seed..--seed+K-1): the test parts of K random "
            "train/test splits, for a model that is not retrained per split. --attribute NAME compares one "
            "zero-shot attribute instead of the quality score, e.g. against a column of human sharpness ratings "
            "(--mos-column Sharpness)."
        ),
    )
    add_data_arguments(p, csv_flag="--data")
    add_model_argument(p)
    p.add_argument(
        "--attribute",
        choices=list(DEFAULT_ATTRIBUTES),
        default=None,
        metavar="NAME",
        help=f"evaluate this attribute's score instead of quality ({', '.join(DEFAULT_ATTRIBUTES)}); "
        "pick the rating column with --mos-column; --mos-range auto then means the data's range",
    )
    add_split_file_arguments(p, what="evaluate its --part")
    p.add_argument(
        "--part",
        choices=["train", "val", "test"],
        default="test",
        help="part of --split-file/--split-column to evaluate (default: test)",
    )
    p.add_argument(
        "--mos-range",
        default="auto",
        metavar="auto|model|data|LOW,HIGH",
        help="how MOS is normalised to [0, 1] for RMSE: auto = the head's fine-tuning range if it has one, else the data's min..max",
    )
    p.add_argument(
        "--splits", type=positive_int, default=None, metavar="K", help="also report mean ± std over K random subsets"
    )
    p.add_argument("--split-fraction", type=fraction, default=0.2, help="share of the rows in each --splits subset")
    p.add_argument("--seed", type=int, default=0, help="seed of the first --splits subset")
    add_group_arguments(p, what="each --splits subset")
    add_runtime_arguments(p)
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="write the metrics (and split statistics) as JSON",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="write a scatter plot of predicted score against normalised MOS",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``temu eval`` with parsed arguments; returns the exit status."""
    from ..errors import MissingExtraError
    from ..extras import import_extra

    try:
        import_extra("scipy.stats", "train", "temu eval")
    except MissingExtraError as err:
        return usage_error(PROG, str(err))
    import torch

    from ..cache import load
    from ..data.prepare import DataOptions, prepare_eval_records, reference_groups
    from ..evaluation.predict import evaluate_model
    from ..evaluation.report import EvalReport, format_report, split_metrics, split_subsets, target_scale
    from ..runtime import default_num_workers, resolve_device

    def log(msg: str) -> None:
        print(f"{PROG}: {msg}", file=sys.stderr, flush=True)

    problem = _check_arguments(args)
    if problem is not None:
        return usage_error(PROG, problem)
    mos_range = args.mos_range
    if args.attribute is not None:
        if mos_range.strip().lower() == "model":
            return usage_error(PROG, "--mos-range model is the quality MOS range of a head; with --attribute use data")
        if mos_range.strip().lower() == "auto":
            mos_range = "data"  # a head's fine-tuning range is the quality MOS's, not an attribute rating's
    try:
        options = DataOptions.from_namespace(args)
        records, fmt, bad = prepare_eval_records(options, part=args.part, log=log)
        grouped = reference_groups(options, fmt, records) if args.splits else None
        groups, column = (grouped[1], grouped[0]) if grouped is not None else (None, None)
        subsets = None
        if args.splits:  # subsets that cannot be scored are refused before the model loads
            subsets = split_subsets(len(records), args.splits, args.split_fraction, args.seed, groups=groups)
        device = resolve_device(args.device)
        model = load(args.model, device=device)
        scale, source = target_scale(mos_range, model, records, fmt.lower_better)
        workers = args.workers if args.workers is not None else default_num_workers(torch.device(device))
        show = (not args.quiet) and sys.stderr.isatty()
        pred, target, metrics = evaluate_model(
            model,
            records,
            scale,
            batch_size=args.batch_size,
            workers=workers,
            precision=args.precision,
            progress=show,
            attribute=args.attribute,
        )
        splits = None
        if subsets is not None:
            splits = split_metrics(
                pred,
                target,
                args.splits,
                args.split_fraction,
                args.seed,
                groups=groups,
                group_column=column,
                subsets=subsets,
            )
    except (TeMuError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    label = str(args.model) if args.attribute is None else f"{args.model} (attribute {args.attribute})"
    report = EvalReport(label, str(args.csv), len(records), metrics, scale, source, pred, target, splits, len(bad))
    print(format_report(report))
    try:
        if args.output is not None:
            atomic_write(args.output, (json.dumps(report.to_dict(), indent=2) + "\n").encode("utf-8"))
        if args.plot is not None:
            from ..plots import plot_scatter

            plot_scatter(
                pred,
                target,
                args.plot,
                title=f"{label} on {Path(args.csv).name} (n={len(records)})",
                metrics={k: metrics[k] for k in ("srcc", "plcc")},
            )
    except OSError as err:
        print(f"{PROG}: error: the metrics above could not be written: {err}", file=sys.stderr)
        return 2
    return 0


def _check_arguments(args: argparse.Namespace) -> str | None:
    """The first usage problem that can be seen before the data are read and the model loads, or None."""
    if args.group_column is not None and not args.splits:
        return "--group-column is for the random subsets of --splits K; add --splits or leave it out"
    for flag, path in (("--output", args.output), ("--plot", args.plot)):
        if path is None:
            continue
        if path.is_dir():
            return f"{flag} {path} is a folder; give a file name (e.g. {path / ('eval.json' if flag == '--output' else 'eval.png')})"
        if (blocker := file_in_the_way(path)) is not None:
            return f"{flag} {path}: {blocker} is a file, not a folder"
    return None
