"""``temu select``: keep the best rows of a corpus output, as ids or as new shards (:func:`temu.corpus.select`).

Only argparse and the standard library are imported at the top: ``temu select --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import sys

from .args import checked_number, flag_message, positive_int, usage_error
from .corpus import FLAGS
from .interrupts import Interrupted, InterruptGuard

PROG = "temu select"

top_fraction = checked_number(float, lambda v: 0.0 < v <= 1.0, "a fraction in (0, 1], e.g. 0.1 for the best 10%")
finite_float = checked_number(float, math.isfinite, "a finite number")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "select",
        help="keep the best rows of a corpus output (temu score --output DIR/): ids, or new shards",
        description="Keep the rows of a corpus output by one rule (best first, ties by id); error rows are "
        "never kept. Writes the kept ids (--output, or stdout), new shards (--write-shards) and a selection.json.",
    )
    p.add_argument("scores", metavar="SCORES_DIR", help="the output folder of temu score --output DIR/ (or a URI)")
    rule = p.add_mutually_exclusive_group(required=True)
    rule.add_argument("--top", type=top_fraction, metavar="FRACTION", help="keep this fraction of the scored rows")
    rule.add_argument("--top-k", type=positive_int, metavar="N", help="keep the N best rows")
    rule.add_argument("--min-score", type=finite_float, metavar="X", help="keep the rows whose value is at least X")
    p.add_argument(
        "--by",
        default="score",
        metavar="COLUMN",
        help="the column to rank by: score, mos or percentile (a run with --scale) or an attribute column",
    )
    p.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="write the kept ids, best first: .txt (one per line), .csv or .parquet (id, the --by column, rank), "
        "with FILE's stem + .selection.json beside it (default: ids on stdout)",
    )
    p.add_argument(
        "--write-shards",
        default=None,
        metavar="DIR",
        help="new shards of the kept samples: WebDataset tars (every member of each kept sample, byte-identical, "
        "in input order), Parquet tables (the kept rows); folders and lists get a .txt of their kept paths",
    )
    p.add_argument(
        "--samples-per-shard",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="samples per new tar or Parquet file",
    )
    p.add_argument(
        "--require-complete", action="store_true", help="refuse the scores of an unfinished run (default: warn)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output, or an earlier --write-shards selection"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..corpus.output import write_lines
    from ..corpus.selection import select
    from ..errors import TeMuError, TeMuWarning

    try:
        with InterruptGuard(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TeMuWarning)
            report = select(
                args.scores,
                top=args.top,
                top_k=args.top_k,
                min_score=args.min_score,
                by=args.by,
                output=args.output,
                write_shards=args.write_shards,
                samples_per_shard=args.samples_per_shard,
                require_complete=args.require_complete,
                overwrite=args.overwrite,
            )
    except Interrupted as stop:
        print(f"temu: interrupted by {stop.signal_name}; no output was put in place", file=sys.stderr)
        return stop.exit_status
    except TeMuError as err:
        return usage_error(PROG, flag_message(str(err), FLAGS))
    for warning in caught:
        if issubclass(warning.category, TeMuWarning):
            print(f"temu: warning: {flag_message(str(warning.message), FLAGS)}", file=sys.stderr)
    if args.output is None and args.write_shards is None:
        from ..corpus.output import exact_ids

        sys.stdout.flush()
        write_lines(sys.stdout.buffer, exact_ids(report.table))
        sys.stdout.buffer.flush()
    if not args.quiet:
        print(f"temu: {report.summary()}", file=sys.stderr)
        for note in report.notes:
            print(f"temu: {note}", file=sys.stderr)
        if report.files:
            shown = ", ".join(report.files[:3]) + (
                f" and {len(report.files) - 3} more" if len(report.files) > 3 else ""
            )
            print(f"temu: wrote {shown}", file=sys.stderr)
    return 0
