"""``temu eval``: SRCC, PLCC, fitted PLCC, KRCC and RMSE of models on labelled datasets.

One ``--data`` and one ``--model`` print the metrics as lines (and ``--output`` writes them as
JSON); several give one table row per model and dataset. The options that describe a dataset
belong to the ``--data`` they follow (:class:`~temu.cli.args.PerDataset`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TeMuError
from ..files import atomic_write
from ..model.attributes import DEFAULT_ATTRIBUTES
from .args import (
    DATA_FLAGS,
    RUNTIME_FLAGS,
    PerDataset,
    add_data_arguments,
    add_group_arguments,
    add_runtime_arguments,
    add_split_file_arguments,
    data_options,
    flag_message,
    fraction,
    positive_int,
    usage_error,
)
from .writers import file_in_the_way

PROG = "temu eval"

#: Library field -> ``temu eval`` flag, for the library's messages (:func:`temu.cli.args.flag_message`).
FLAGS: dict[str, str] = {
    **DATA_FLAGS,
    **RUNTIME_FLAGS,
    "csv": "--data",
    "part": "--part",
    "choice": "--mos-range",
    "k": "--splits",
    "fraction": "--split-fraction",
    "seed": "--seed",
}

#: What a --data's own options hold, and their values when neither it nor the options before the first --data set them.
DATASET_DEFAULTS: dict[str, Any] = {"part": "test", "mos_range": "auto"}

#: --output suffixes: a table for several rows; JSON otherwise (any other suffix too, as before tables).
TABLE_SUFFIXES = (".csv", ".md")


@dataclass(frozen=True)
class Dataset:
    """One ``--data`` with its own options."""

    options: Any  # temu.data.DataOptions
    part: str
    mos_range: str


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="SRCC, PLCC, fitted PLCC, KRCC and RMSE of models on labelled datasets",
        description=(
            "Score every image of a labelled CSV and compare with its MOS: SRCC, PLCC, fitted PLCC (after the "
            "VQEG 4-parameter logistic map fitted on the pairs), KRCC and RMSE. RMSE is computed on the [0, 1] "
            "scale: MOS normalised with --mos-range. --splits K also reports mean ± std over K random subsets "
            "(each --split-fraction of the rows, seeds --seed..--seed+K-1): the test parts of K random "
            "train/test splits, for a model that is not retrained per split. --attribute NAME compares one "
            "zero-shot attribute instead of the quality score, e.g. against a column of human sharpness ratings "
            "(--mos-column Sharpness). Several datasets and models: repeat --data and --model; one row per model "
            "and dataset, printed as a Markdown table. The dataset options (--image-root, --format, --path-col, "
            "--mos-col, --lower-better, --skip-bad, --check-images, --split-file, --split-index, --split-column, "
            "--group-column, --no-group, --part, --mos-range) given after a --data belong to that --data; given "
            "before the first --data they hold for every --data that does not set them."
        ),
    )
    add_data_arguments(p, csv_flag="--data", per_dataset=True)
    p.add_argument(
        "--model",
        action="append",
        default=None,
        help="preset name, head directory or Hub repo id; repeat it for several models (default: temu-iqa-s)",
    )
    p.add_argument(
        "--attribute",
        choices=list(DEFAULT_ATTRIBUTES),
        default=None,
        metavar="NAME",
        help=f"evaluate this attribute's score instead of quality ({', '.join(DEFAULT_ATTRIBUTES)}); "
        "pick the rating column with --mos-column; --mos-range auto then means the data's range",
    )
    add_split_file_arguments(p, what="evaluate its --part", per_dataset=True)
    p.add_argument(
        "--part",
        action=PerDataset,
        choices=["train", "val", "test"],
        default=argparse.SUPPRESS,
        help="part of --split-file/--split-column to evaluate (default: test)",
    )
    p.add_argument(
        "--mos-range",
        action=PerDataset,
        default=argparse.SUPPRESS,
        metavar="auto|model|data|LOW,HIGH",
        help="how MOS is normalised to [0, 1] for RMSE: auto (the default) = the head's fine-tuning range if it "
        "has one, else the data's min..max",
    )
    p.add_argument(
        "--splits", type=positive_int, default=None, metavar="K", help="also report mean ± std over K random subsets"
    )
    p.add_argument("--split-fraction", type=fraction, default=0.2, help="share of the rows in each --splits subset")
    p.add_argument("--seed", type=int, default=0, help="seed of the first --splits subset")
    add_group_arguments(p, what="each --splits subset", per_dataset=True)
    add_runtime_arguments(p)
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the results: FILE.csv or FILE.md, a table (one row per model and dataset); any other name, "
        "JSON (the metrics and split statistics; a list of them for several rows)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="write a scatter plot of predicted score against normalised MOS (one model on one dataset)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run, datasets=None, dataset_defaults=None)


def datasets_of(args: argparse.Namespace) -> list[Dataset]:
    """Each ``--data`` with its options: its own, else those before the first ``--data``, else the defaults.

    Raises :class:`~temu.DataError` for a ``--data`` without an ``--image-root``.
    """
    from ..errors import DataError

    shared = dict(args.dataset_defaults or {})
    out = []
    for given in args.datasets or []:
        values = {**DATASET_DEFAULTS, **shared, **given}
        if "image_root" not in values:
            raise DataError(
                f"--data {given['csv']} has no --image-root: give --image-root DIR after it, or once before the "
                "first --data for every dataset"
            )
        out.append(Dataset(data_options(values), values["part"], values["mos_range"]))
    return out


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
    from ..data.prepare import prepare_eval_records, reference_groups
    from ..errors import DataError
    from ..evaluation.predict import evaluate_model
    from ..evaluation.report import EvalReport, split_metrics, split_subsets, target_scale
    from ..runtime import default_num_workers, resolve_device

    def log(msg: str) -> None:
        print(f"{PROG}: {flag_message(msg, FLAGS, bare=('fraction',))}", file=sys.stderr, flush=True)

    def error(err: BaseException) -> int:
        print(f"{PROG}: error: {flag_message(str(err), FLAGS, bare=('fraction',))}", file=sys.stderr)
        return 2

    models = args.model or ["temu-iqa-s"]
    try:
        datasets = datasets_of(args)
    except TeMuError as err:
        return usage_error(PROG, str(err))
    problem = _check_arguments(args, datasets, models)
    if problem is not None:
        return usage_error(PROG, problem)
    if args.attribute is not None:
        for i, ds in enumerate(datasets):
            choice = ds.mos_range.strip().lower()
            if choice == "model":
                return usage_error(
                    PROG, "--mos-range model is the quality MOS range of a head; with --attribute use data"
                )
            if choice == "auto":  # a head's fine-tuning range is the quality MOS's, not an attribute rating's
                datasets[i] = Dataset(ds.options, ds.part, "data")
    reports: list[EvalReport] = []
    try:
        prepared = []  # every dataset is read and checked before a model loads
        for ds in datasets:
            try:
                records, fmt, bad = prepare_eval_records(ds.options, part=ds.part, log=log)
                grouped = reference_groups(ds.options, fmt, records) if args.splits else None
                groups, column = (grouped[1], grouped[0]) if grouped is not None else (None, None)
                subsets = None
                if args.splits:  # subsets that cannot be scored are refused before the model loads
                    subsets = split_subsets(len(records), args.splits, args.split_fraction, args.seed, groups=groups)
            except TeMuError as err:
                if len(datasets) == 1:
                    raise
                raise DataError(f"--data {ds.options.csv}: {err}") from None  # which of the datasets
            prepared.append((ds, records, fmt, bad, groups, column, subsets))
        device = resolve_device(args.device)
        workers = args.workers if args.workers is not None else default_num_workers(torch.device(device))
        show = (not args.quiet) and sys.stderr.isatty()
        for name in models:
            model = load(name, device=device)
            label = str(name) if args.attribute is None else f"{name} (attribute {args.attribute})"
            for ds, records, fmt, bad, groups, column, subsets in prepared:
                scale, source = target_scale(ds.mos_range, model, records, fmt.lower_better)
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
                        pred, target, args.splits, args.split_fraction, args.seed,
                        groups=groups, group_column=column, subsets=subsets,
                    )  # fmt: skip
                data = str(ds.options.csv)
                reports.append(
                    EvalReport(label, data, len(records), metrics, scale, source, pred, target, splits, len(bad))
                )
            del model
    except (TeMuError, OSError) as err:
        return error(err)
    return _write_results(args, reports)


def _write_results(args: argparse.Namespace, reports: list[Any]) -> int:
    from ..evaluation.report import TABLE_COLUMNS, format_report, markdown_table, table_rows

    single = len(reports) == 1
    print(format_report(reports[0]) if single else markdown_table(reports))
    if not single and args.splits:
        print(f"(mean ± std over the {args.splits} random subsets of each row: see --output FILE.json)")
    try:
        output: Path | None = args.output
        if output is not None:
            suffix = output.suffix.lower()
            if suffix == ".csv":
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS, lineterminator="\n")
                writer.writeheader()
                for row in table_rows(reports):
                    writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
                atomic_write(output, buffer.getvalue().encode("utf-8"))
            elif suffix == ".md":
                atomic_write(output, (markdown_table(reports) + "\n").encode("utf-8"))
            else:
                body: Any = reports[0].to_dict() if single else {"results": [r.to_dict() for r in reports]}
                atomic_write(output, (json.dumps(body, indent=2) + "\n").encode("utf-8"))
        if args.plot is not None:
            from ..plots import plot_scatter

            report = reports[0]
            plot_scatter(
                report.pred,
                report.target,
                args.plot,
                title=f"{report.model} on {Path(report.data).name} (n={report.n})",
                metrics={k: report.metrics[k] for k in ("srcc", "plcc")},
            )
    except OSError as err:
        print(f"{PROG}: error: the metrics above could not be written: {err}", file=sys.stderr)
        return 2
    return 0


def _check_arguments(args: argparse.Namespace, datasets: list[Dataset], models: list[str]) -> str | None:
    """The first usage problem that can be seen before the data are read and the model loads, or None."""
    if not args.splits and any(ds.options.group_column is not None for ds in datasets):
        return "--group-column is for the random subsets of --splits K; add --splits or leave it out"
    if args.plot is not None and len(datasets) * len(models) > 1:
        return (
            f"--plot draws one model on one dataset; this command evaluates {len(models)} model(s) on "
            f"{len(datasets)} dataset(s)"
        )
    for flag, path in (("--output", args.output), ("--plot", args.plot)):
        if path is None:
            continue
        if path.is_dir():
            return f"{flag} {path} is a folder; give a file name (e.g. {path / ('eval.json' if flag == '--output' else 'eval.png')})"
        if (blocker := file_in_the_way(path)) is not None:
            return f"{flag} {path}: {blocker} is a file, not a folder"
    return None
