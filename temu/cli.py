"""The ``temu`` command: ``temu score``, ``temu eval`` and ``temu presets``.

Exit status: 0 on success (unreadable images are reported on stderr and in the output file, and
do not fail the run), 1 when ``--strict`` is given and some image could not be scored, 2 for a
usage error or when the model cannot be loaded.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import IO, Sequence

from .errors import TeMuError


class _CsvWriter:
    def __init__(self, stream: IO[str], with_error: bool) -> None:
        self.stream = stream
        self.with_error = with_error
        self.csv = csv.writer(stream, lineterminator="\n")
        self.csv.writerow(["path", "score", "error"] if with_error else ["path", "score"])
        stream.flush()

    def write(self, name: str, score: float | None, error: str | None) -> None:
        if self.with_error:
            self.csv.writerow([name, "" if score is None else f"{score:.6f}", error or ""])
        elif error is None:
            self.csv.writerow([name, f"{score:.6f}"])
        self.stream.flush()

    def close(self) -> None:
        pass


class _JsonLinesWriter:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, name: str, score: float | None, error: str | None) -> None:
        self.stream.write(json.dumps({"path": name, "score": score, "error": error}) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class _JsonArrayWriter:
    """A JSON array written row by row; the closing bracket is written when the run ends (also on Ctrl-C)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.first = True
        stream.write("[")

    def write(self, name: str, score: float | None, error: str | None) -> None:
        self.stream.write(("\n  " if self.first else ",\n  ") + json.dumps({"path": name, "score": score, "error": error}))
        self.first = False
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n]\n")
        self.stream.flush()


def _open_writer(output: Path | None):
    if output is None:
        return sys.stdout, _CsvWriter(sys.stdout, with_error=False)
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        raise SystemExit(f"temu: error: --output must end in .csv, .json or .jsonl, got {output.name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    stream = output.open("w", encoding="utf-8", newline="")
    if suffix == ".csv":
        return stream, _CsvWriter(stream, with_error=True)
    return stream, (_JsonLinesWriter(stream) if suffix == ".jsonl" else _JsonArrayWriter(stream))


def _map_path(directory: Path, name: str, used: set[str]) -> Path:
    stem = Path(name).stem or "image"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    return directory / f"{candidate}.png"


def cmd_score(args: argparse.Namespace) -> int:
    from .api import get_model, iter_scores
    from .inputs import read_image
    from .maps import quality_overlay

    try:
        model = get_model(args.model, args.device)
    except (TeMuError, OSError, RuntimeError) as err:
        print(f"temu: error: cannot load model {args.model!r}: {err}", file=sys.stderr)
        return 2
    if args.maps is not None:
        args.maps.mkdir(parents=True, exist_ok=True)
    stream, writer = _open_writer(args.output)
    scored = failed = 0
    used: set[str] = set()
    try:
        for result in iter_scores(
            args.paths,
            model,
            batch_size=args.batch_size,
            num_workers=args.workers,
            precision=args.precision,
            progress=False if args.quiet else None,
            with_maps=args.maps is not None,
            on_error="report",
            recursive=args.recursive,
            compile=args.compile,
        ):
            writer.write(result.name, result.score, result.error)
            if result.error is not None:
                failed += 1
                print(f"temu: skipped {result.error}", file=sys.stderr)
                continue
            scored += 1
            if args.maps is not None and result.score_map is not None:
                overlay = quality_overlay(read_image(result.name), result.score_map)
                overlay.save(_map_path(args.maps, result.name, used))
    finally:
        writer.close()
        if stream is not sys.stdout:
            stream.close()
    if not args.quiet:
        print(f"temu: scored {scored} image(s), {failed} could not be read", file=sys.stderr)
    if args.strict and (failed or not scored):
        return 1
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import run_eval

    return run_eval(args)


def cmd_presets(args: argparse.Namespace) -> int:
    from .hub import list_presets, preset_root

    for name in list_presets():
        print(f"{name}\t{preset_root() / name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="temu", description="TeMu-IQA no-reference image quality assessment.")
    parser.add_argument("--version", action="version", version=f"temu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("score", help="score images; one row per image, written as it is scored")
    p.add_argument("paths", nargs="+", help="image files and/or folders (their images, sorted)")
    p.add_argument("--model", default="temu-iqa-s", help="preset name, head directory or Hub repo id (default: temu-iqa-s)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--output", type=Path, default=None, help="write rows to FILE.csv, FILE.jsonl or FILE.json (default: CSV on stdout)")
    p.add_argument("--maps", type=Path, default=None, metavar="DIR", help="write each image's patch-score map blended over it as DIR/<name>.png")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any image could not be scored")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers decoding images (default: 0 on CPU, up to 8 on GPU)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto", help="autocast dtype (default: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone first (long GPU runs)")
    p.add_argument("--recursive", "-r", action="store_true", help="also score images in sub-folders")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "eval",
        help="SRCC, PLCC, KRCC and RMSE of a model on a labelled dataset",
        description=(
            "Score every image of a labelled CSV and compare with its MOS. RMSE is computed on the [0, 1] scale: "
            "MOS normalised with --mos-range. --splits K also reports mean ± std over K random subsets "
            "(each --split-fraction of the rows, seeds --seed..--seed+K-1): the test parts of K random "
            "train/test splits, for a model that is not retrained per split."
        ),
    )
    from .finetune import add_data_arguments, split_column_arg

    add_data_arguments(p, csv_flag="--data")
    p.add_argument("--model", default="temu-iqa-s", help="preset name, head directory or Hub repo id (default: temu-iqa-s)")
    p.add_argument("--split-file", type=Path, default=None, metavar="F", help="pyiqa split pickle; evaluate its --part of the CSV's rows")
    p.add_argument("--split-index", default="1", metavar="K", help="split of --split-file (pyiqa numbers them from 1)")
    p.add_argument("--split-column", type=split_column_arg, default=None, metavar="NAME|K", help="pyiqa split column of the CSV (e.g. official_split); evaluate its --part")
    p.add_argument("--part", choices=["train", "val", "test"], default="test", help="part of --split-file/--split-column to evaluate (default: test)")
    p.add_argument("--mos-range", default="auto", metavar="auto|model|data|LOW,HIGH", help="how MOS is normalised to [0, 1] for RMSE: auto = the head's fine-tuning range if it has one, else the data's min..max")
    p.add_argument("--splits", type=int, default=0, metavar="K", help="also report mean ± std over K random subsets")
    p.add_argument("--split-fraction", type=float, default=0.2, help="share of the rows in each --splits subset")
    p.add_argument("--seed", type=int, default=0, help="seed of the first --splits subset")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers decoding images (default: 0 on CPU, up to 8 on GPU)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto", help="autocast dtype (default: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--output", type=Path, default=None, metavar="FILE.json", help="write the metrics (and split statistics) as JSON")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="write a scatter plot of predicted score against normalised MOS")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("presets", help="list the presets shipped with temu")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``temu`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if getattr(args, "batch_size", 1) < 1:
        print("temu: error: --batch-size must be >= 1", file=sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
