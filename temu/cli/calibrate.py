"""``temu calibrate``: a copy of a head that also reports MOS (fitted on a labelled dataset) and
percentiles (of a reference corpus); :func:`temu.calibrate` does the work."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import TeMuError
from .args import (
    DATA_FLAGS,
    RUNTIME_FLAGS,
    add_data_arguments,
    add_model_argument,
    add_runtime_arguments,
    add_split_file_arguments,
    data_options,
    flag_message,
    usage_error,
)

PROG = "temu calibrate"

#: Library field -> ``temu calibrate`` flag, for the library's messages.
FLAGS: dict[str, str] = {
    **DATA_FLAGS,
    **RUNTIME_FLAGS,
    "csv": "--data",
    "data": "--data",
    "part": "--part",
    "reference": "--reference",
    "output": "--output",
    "method": "--method",
    "overwrite=True": "--overwrite",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="make a head report MOS (--data) and percentiles of a reference corpus (--reference)",
        description=(
            "Write a copy of a head (its weights unchanged) with calibration.json: --data fits a monotone map from "
            "the raw score to the dataset's MOS (the VQEG 4-parameter logistic, or --method isotonic), for "
            "temu score --scale mos; --reference keeps the quantiles of a finished corpus run's scores, for "
            "--scale percentile. Give either or both. A head that already has a part keeps it, unless that part is "
            "fitted again with --overwrite. --output may be the head's own folder: it is then calibrated in place."
        ),
    )
    add_model_argument(p)
    p.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="folder of the calibrated head (new or empty)"
    )
    g = p.add_argument_group("MOS: a labelled dataset (as for temu eval)")
    add_data_arguments(g, csv_flag="--data", required=False)
    add_split_file_arguments(g, what="fit on its --part")
    g.add_argument(
        "--part",
        choices=["train", "val", "test"],
        default="val",
        help="part of --split-file/--split-column to fit on (default: val)",
    )
    g.add_argument(
        "--method",
        choices=["logistic4", "isotonic"],
        default="logistic4",
        help="the map: the VQEG 4-parameter logistic (as the fitted PLCC) or isotonic regression (default: logistic4)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        metavar="DIR",
        help="a finished corpus run of this model (temu score ... --output DIR/): its scores' quantiles",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a part the head already has, or the head files in a non-empty --output",
    )
    add_runtime_arguments(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``temu calibrate`` with parsed arguments; returns the exit status."""
    from ..errors import MissingExtraError
    from ..extras import import_extra

    if args.csv is None and args.reference is None:
        return usage_error(
            PROG, "give --data (a labelled CSV, for --scale mos), --reference (for percentiles), or both"
        )
    if args.csv is None and args.image_root is not None:
        return usage_error(PROG, "--image-root belongs to --data; give --data too")
    try:
        if args.csv is not None:
            import_extra("scipy.stats", "train", PROG)
        if args.reference is not None:
            import_extra("pyarrow", "corpus", f"{PROG} --reference")
    except MissingExtraError as err:
        return usage_error(PROG, str(err))
    import torch

    from ..evaluation.calibration import calibrate
    from ..runtime import default_num_workers, resolve_device

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"{PROG}: {flag_message(msg, FLAGS)}", file=sys.stderr, flush=True)

    data = None
    if args.csv is not None:
        values = dict(vars(args))
        if values["image_root"] is None:
            values["image_root"] = args.csv.parent
        data = data_options(values)
    try:
        device = resolve_device(args.device)
        workers = args.workers if args.workers is not None else default_num_workers(torch.device(device))
        calibrate(
            args.model,
            args.output,
            data=data,
            part=args.part,
            reference=args.reference,
            method=args.method,
            overwrite=args.overwrite,
            batch_size=args.batch_size,
            device=device,
            workers=workers,
            precision=args.precision,
            progress=(not args.quiet) and sys.stderr.isatty(),
            log=log,
        )
    except (TeMuError, OSError) as err:
        print(f"{PROG}: error: {flag_message(str(err), FLAGS)}", file=sys.stderr)
        return 2
    return 0
