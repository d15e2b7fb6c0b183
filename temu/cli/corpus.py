"""Corpus mode of ``temu score``: scores into a folder, one Parquet file per shard, resumable.

``temu score`` writes one file (``--output x.csv|.jsonl|.json``, or CSV on stdout) unless
``--output`` names a folder: a URI (``s3://bucket/scores``), a path ending in ``/``, an existing
folder, or a name without a suffix. Then it is a thin wrapper around :func:`temu.corpus.run`: the
flags become its arguments, and this module prints the progress, the summary and one line per
error (library messages name arguments, ``overwrite=True``; :func:`temu.cli.args.flag_message` rewords them as flags).

Only argparse and the standard library are imported at the top: ``temu score --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from pathlib import Path

from ..corpus.names import DEFAULT_MAX_MEMBER_SIZE, DEFAULT_SHARD_SIZE, ENGINES, RAY_OPTIONS
from .args import flag_message, non_negative_float, positive_float, positive_int, usage_error
from .interrupts import Interrupted, InterruptGuard
from .writers import OUTPUT_SUFFIXES

PROG = "temu score"
_CORPUS_OPTIONS = ("shard_size", "image_column", "id_column", "max_member_size")
#: Arguments without an underscore that the library's messages name bare (a rerun's "fps: 1.0 then, 2.0 now").
BARE = ("fps", "frames", "reduce", "scale")
#: Library argument -> the flag that gives it, for the library's messages (:func:`temu.cli.args.flag_message`).
FLAGS = {
    "output": "--output",
    "overwrite": "--overwrite",
    "shard": "--shard",
    "shard_size": "--shard-size",
    "engine": "--engine",
    "image_column": "--image-column",
    "id_column": "--id-column",
    "max_member_size": "--max-member-size",
    "attributes": "--attributes",
    "fps": "--fps",
    "frames": "--frames",
    "reduce": "--reduce",
    "max_frames": "--max-frames",
    "max_side": "--max-side",
    "per_frame": "--per-frame",
    "scale": "--scale",
    "batch_size": "--batch-size",
    "decode_threads": "--workers",
    "device": "--device",
    "precision": "--precision",
    "address": "--address",
    "gpus_per_worker": "--gpus-per-worker",
    "cpus_per_worker": "--cpus-per-worker",
    "max_workers": "--max-workers",
    "top": "--top",
    "top_k": "--top-k",
    "min_score": "--min-score",
    "by": "--by",
    "write_shards": "--write-shards",
    "samples_per_shard": "--samples-per-shard",
    "require_complete": "--require-complete",
}


class OutputFolderArg(str):
    """An ``--output`` that names a folder (corpus mode), kept as the text given (URIs stay intact)."""


def output_argument(text: str) -> Path | OutputFolderArg:
    """``--output``: a folder (a URI, a path ending in ``/``, an existing folder without a file
    suffix, or a name without a suffix) becomes an :class:`OutputFolderArg`; anything else a Path."""
    path = Path(text)
    looks_like_file = path.suffix.lower() in OUTPUT_SUFFIXES
    if "://" in text or text.endswith(("/", os.sep)) or not path.suffix or (path.is_dir() and not looks_like_file):
        return OutputFolderArg(text)
    return path


def shard_spec(text: str) -> tuple[int, int]:
    """``--shard I/N``: shard I (from 0) of N."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return i, n


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def byte_size(text: str) -> int:
    """``--max-member-size``: bytes, or a number with K, M, G or T (powers of 1024): ``256M``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, flags=re.I)
    value = int(float(match.group(1)) * _UNITS[match.group(2).upper()]) if match else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a size in bytes such as 268435456 or 256M, got {text!r}")
    return value


def add_corpus_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "corpus mode (--output DIR/: one Parquet file per shard, resumable; see README 'Scoring millions of images')"
    )
    g.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="local: this process (default); ray: Ray Data on a local Ray or the cluster at --address",
    )
    g.add_argument(
        "--shard",
        type=shard_spec,
        default=None,
        metavar="I/N",
        help="score shard I of N of the plan (default under torchrun: RANK/WORLD_SIZE; in a Slurm array: its index)",
    )
    g.add_argument(
        "--shard-size",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"images per shard of folders, lists and tables (default: {DEFAULT_SHARD_SIZE})",
    )
    g.add_argument(
        "--image-column", default=None, metavar="NAME", help="image column of .parquet inputs (default: detected)"
    )
    g.add_argument("--id-column", default=None, metavar="NAME", help="id column of .parquet inputs (default: detected)")
    g.add_argument(
        "--max-member-size",
        type=byte_size,
        default=None,
        metavar="BYTES",
        help=f"a larger tar member, table cell or listed file is an error row, never read (default: {DEFAULT_MAX_MEMBER_SIZE >> 20}M)",
    )
    g.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join ('auto': this node's); default: start a local Ray",
    )
    g.add_argument(
        "--gpus-per-worker",
        type=non_negative_float,
        default=None,
        metavar="G",
        help="GPUs per Ray scoring actor (default: 1 when the cluster has GPUs, else 0)",
    )
    g.add_argument(
        "--cpus-per-worker",
        type=positive_float,
        default=None,
        metavar="C",
        help="CPUs per Ray scoring actor: its decoding threads, and torch threads on CPU actors (default: 4 with GPUs; else this machine's cores, leaving one of the cluster's CPUs to the readers)",
    )
    g.add_argument(
        "--max-workers",
        type=positive_int,
        default=None,
        metavar="W",
        help="most Ray scoring actors (default: what the cluster fits)",
    )


def is_corpus_mode(args: argparse.Namespace) -> bool:
    """True when the run writes a folder of per-shard Parquet files instead of one file."""
    return isinstance(args.output, OutputFolderArg) or args.engine is not None or args.shard is not None


def check_corpus_arguments(args: argparse.Namespace) -> str | None:
    """The first usage problem of a corpus-mode run that the command line sees itself (the library
    checks the rest, before Ray starts or the model loads); None if fine."""
    if args.output is None or not isinstance(args.output, OutputFolderArg):
        given = "" if args.output is None else f", not the file {args.output}"
        return f"--engine / --shard write one Parquet file per shard into a folder: give --output DIR/{given}"
    if importlib.util.find_spec("pyarrow") is None:
        return "corpus mode (--output DIR/) writes Parquet and needs pyarrow: pip install 'temu-iqa[corpus]'"
    if args.engine == "ray" and importlib.util.find_spec("ray") is None:
        return "--engine ray needs Ray Data: pip install 'temu-iqa[ray]'"
    if getattr(args, "maps", None) is not None:
        return "--maps writes one image per input and is not available in corpus mode (--output DIR/)"
    return None


def check_file_mode_arguments(args: argparse.Namespace) -> str | None:
    """Corpus inputs and options given to a one-file run: say how to run them instead."""
    from ..corpus.names import is_corpus_input

    given = [f"--{name.replace('_', '-')}" for name in _CORPUS_OPTIONS + RAY_OPTIONS if getattr(args, name)]
    if given:
        return f"{given[0]} is an option of corpus mode: give --output a folder (DIR/)"
    corpus = next((p for p in args.paths if is_corpus_input(p)), None)
    if corpus is not None:
        return f"{corpus} is a corpus input (.tar, .parquet, .txt list or URI): give --output a folder (DIR/)"
    return None


class _CommandProgress:
    """The command's progress: the library's bar (on a terminal, without ``-q``), the first 20
    errors above it, and which shard of N this process takes when a launcher chose it."""

    def __init__(self, *, quiet: bool) -> None:
        from ..corpus.engine import ProgressBar

        self.quiet = quiet
        self.bar = ProgressBar(show=not quiet and sys.stderr.isatty(), errors_shown=20)

    def start(self, report, todo: int) -> None:
        index, count = report.shard
        if not self.quiet and count > 1 and report.shard_origin not in ("", "shard="):
            print(f"temu: shard {index}/{count} (from {report.shard_origin})", file=sys.stderr)
        self.bar.start(report, todo)

    def rows(self, n: int) -> None:
        self.bar.rows(n)

    def shard(self, result) -> None:
        self.bar.shard(result)

    def close(self) -> None:
        self.bar.close()


def run_corpus(args: argparse.Namespace) -> int:
    """``temu.corpus.run`` with the command's flags; exit 0, 1 (``--strict`` with error rows, or a run
    that stopped part-way), 2 (a usage error or an unloadable model), 130/143 (interrupted)."""
    from ..corpus.engine import run
    from ..errors import CorpusRunError, TeMuError

    output = str(args.output)
    try:
        with InterruptGuard():
            report = run(
                args.paths,
                output,
                model=args.model,
                engine=args.engine or "local",
                shard=args.shard,
                shard_size=args.shard_size or DEFAULT_SHARD_SIZE,
                recursive=bool(args.recursive),
                attributes=args.attributes,
                fps=args.fps,
                frames=args.frames,
                reduce=args.reduce or "mean",
                max_frames=args.max_frames,
                max_side=args.max_side,
                per_frame=args.per_frame is True,
                scale=args.scale,
                image_column=args.image_column,
                id_column=args.id_column,
                max_member_size=args.max_member_size or DEFAULT_MAX_MEMBER_SIZE,
                batch_size=args.batch_size,
                device=args.device,
                precision=args.precision,
                decode_threads=args.workers or None,
                compile=args.compile,
                overwrite=args.overwrite,
                progress=_CommandProgress(quiet=args.quiet),
                address=args.address,
                gpus_per_worker=args.gpus_per_worker,
                cpus_per_worker=args.cpus_per_worker,
                max_workers=args.max_workers,
            )
    except Interrupted as stop:  # each shard is written whole or not at all: the finished ones stay
        print(
            f"temu: interrupted by {stop.signal_name}; the finished shards are kept in {output}: "
            "rerun the same command to score the rest",
            file=sys.stderr,
        )
        return stop.exit_status
    except CorpusRunError as err:
        print(
            f"{PROG}: error: {flag_message(str(err), FLAGS, bare=BARE).replace('run again', 'rerun the same command')}",
            file=sys.stderr,
        )
        return 1
    except TeMuError as err:
        return usage_error(PROG, flag_message(str(err), FLAGS, bare=BARE))
    if not args.quiet:
        print(f"temu: {report.summary()}", file=sys.stderr)
        if report.complete:
            print(
                f"temu: every shard of the plan is done ({report.shards_total}); wrote {output.rstrip('/')}/_SUCCESS",
                file=sys.stderr,
            )
        else:
            print("temu: other shards of the plan remain (other --shard processes, or rerun)", file=sys.stderr)
    if args.strict and report.count_error_rows():
        return 1
    return 0
