"""Corpus mode of ``temu score``: scores into a folder, one Parquet file per shard, resumable.

``temu score`` writes one file (``--output x.csv|.jsonl|.json``, or CSV on stdout) unless
``--output`` names a folder: a URI (``s3://bucket/scores``), a path ending in ``/``, an existing
folder, or a name without a suffix. Then it plans the inputs into shards and writes
``<shard>.parquet`` per shard (see :mod:`temu.corpus`). ``--engine ray`` and ``--shard I/N``
need a folder. Engines: ``local`` (this process; ``--shard I/N`` takes every N-th shard from
the I-th, filled from ``RANK``/``WORLD_SIZE`` under torchrun or from a Slurm array when not
given) and ``ray`` (Ray Data on a local Ray, or the cluster at ``--address``).

Only argparse and the standard library are imported at the top: ``temu score --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .args import non_negative_float, positive_float, positive_int, usage_error
from .interrupts import Interrupted, InterruptGuard
from .writers import OUTPUT_SUFFIXES

PROG = "temu score"
ENGINES = ("local", "ray")
DEFAULT_SHARD_SIZE = 10_000
#: what an interrupted or failed corpus run says it kept
_KEPT = "the finished shards are kept in {}: rerun the same command to score the rest"
_RAY_OPTIONS = ("address", "gpus_per_worker", "cpus_per_worker", "max_workers")
_CORPUS_OPTIONS = ("shard_size", "image_column", "id_column")


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
    """The first usage problem of a corpus-mode run, seen before Ray starts or the model loads; None if fine.
    Fills ``args.shard_index`` and ``args.shard_count``."""
    engine = args.engine or "local"
    if args.output is None or not isinstance(args.output, OutputFolderArg):
        given = "" if args.output is None else f", not the file {args.output}"
        return f"--engine / --shard write one Parquet file per shard into a folder: give --output DIR/{given}"
    if importlib.util.find_spec("pyarrow") is None:
        return "corpus mode (--output DIR/) writes Parquet and needs pyarrow: pip install 'temu-iqa[corpus]'"
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        return "--engine ray needs Ray Data: pip install 'temu-iqa[ray]'"
    if getattr(args, "maps", None) is not None:
        return "--maps writes one image per input and is not available in corpus mode (--output DIR/)"
    if getattr(args, "attributes", None) is not None:
        return (
            "--attributes is not available in corpus mode (--output DIR/) yet; score attributes with --output FILE.csv"
        )
    if engine == "ray":
        if args.shard is not None:
            return "--shard is for the local engine; Ray shares the shards out itself"
        if args.device is not None:
            return "with --engine ray the device follows --gpus-per-worker (0: CPU actors); leave out --device"
    else:
        given = [f"--{name.replace('_', '-')}" for name in _RAY_OPTIONS if getattr(args, name) is not None]
        if given:
            return f"{given[0]} is an option of --engine ray"
    if args.shard is not None:
        args.shard_index, args.shard_count = args.shard
        args.shard_origin = "--shard"
    elif engine == "local":
        from ..errors import DeviceError
        from ..runtime import launch_from_environment

        try:
            launch = launch_from_environment()
        except DeviceError as err:
            return str(err)
        args.launch = launch
        args.shard_index, args.shard_count = (launch.rank, launch.world_size) if launch else (0, 1)
        args.shard_origin = launch.origin if launch else ""
    else:
        args.shard_index, args.shard_count, args.shard_origin = 0, 1, ""
    if args.overwrite and args.shard_count > 1:
        return (
            "--overwrite with several shards would let each process clear the others' work; "
            "remove the folder once, or give a new --output folder"
        )
    from ..corpus.names import expand_braces, is_uri

    for given in args.paths:  # local inputs are checked here, before Ray starts (remote ones when planned)
        missing = next((t for t in expand_braces(given) if not is_uri(t) and not Path(t).expanduser().exists()), None)
        if missing is not None:
            return f"{missing}: no such file or folder"
    return None


def check_file_mode_arguments(args: argparse.Namespace) -> str | None:
    """Corpus inputs and options given to a one-file run: say how to run them instead."""
    from ..corpus.names import is_corpus_input

    given = [f"--{name.replace('_', '-')}" for name in _CORPUS_OPTIONS + _RAY_OPTIONS if getattr(args, name)]
    if given:
        return f"{given[0]} is an option of corpus mode: give --output a folder (DIR/)"
    corpus = next((p for p in args.paths if is_corpus_input(p)), None)
    if corpus is not None:
        return f"{corpus} is a corpus input (.tar, .parquet, .txt list or URI): give --output a folder (DIR/)"
    return None


def _model_location(model: str) -> str:
    """A head folder as an absolute path (Ray workers do not share our working directory); presets and repo ids as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def run_corpus(args: argparse.Namespace) -> int:
    """Plan (or resume), score the pending shards of this run, write ``_SUCCESS`` when all are done."""
    from ..corpus.listing import Planner
    from ..corpus.plan import OutputFolder, Plan, model_settings, open_plan
    from ..corpus.run import RunReport, count_errors, finish, pending_shards
    from ..corpus.uris import Filesystems
    from ..errors import CorpusError, TeMuError

    engine = args.engine or "local"
    filesystems = Filesystems()
    model = _model_location(args.model)
    started_ray = False
    try:
        if engine == "ray":
            import temu.ray as temu_ray

            started_ray = temu_ray.connect(args.address)
            resources = temu_ray.cluster_resources()
            gpus = args.gpus_per_worker if args.gpus_per_worker is not None else (1.0 if resources.get("GPU") else 0.0)
            device_type = "cuda" if gpus else "cpu"
        else:
            args.device = _process_device(args)
            device_type = args.device.type
        try:
            settings = model_settings(model, precision=args.precision, device_type=device_type)
        except (TeMuError, OSError) as err:
            print(f"{PROG}: error: cannot load model {args.model!r}: {err}", file=sys.stderr)
            return 2
        options = {
            "shard_size": args.shard_size or DEFAULT_SHARD_SIZE,
            "recursive": bool(args.recursive),
            "image_column": args.image_column,
            "id_column": args.id_column,
        }
        try:
            folder = OutputFolder(str(args.output), filesystems)
            planner = Planner(
                folder,
                filesystems,
                shard_size=options["shard_size"],
                recursive=options["recursive"],
                image_column=args.image_column,
                id_column=args.id_column,
            )
            wanted = Plan(settings, list(args.paths), options)
            plan = open_plan(folder, wanted, lambda: planner.plan(args.paths), overwrite=args.overwrite)
            todo, done = pending_shards(plan, folder, args.shard_index, args.shard_count)
        except (CorpusError, OSError) as err:
            return usage_error(PROG, str(err))
        if not args.quiet and args.shard_origin and args.shard_count > 1:
            print(f"temu: shard {args.shard_index}/{args.shard_count} (from {args.shard_origin})", file=sys.stderr)
        report = RunReport(len(todo), done_before=done, show=not args.quiet and sys.stderr.isatty())
        try:
            with InterruptGuard():
                if engine == "ray" and todo:
                    cpus = args.cpus_per_worker or _default_cpus(resources, gpus)
                    temu_ray.score_shards(
                        todo,
                        folder,
                        model=model,
                        batch_size=args.batch_size,
                        precision=args.precision,
                        gpus_per_worker=gpus,
                        cpus_per_worker=cpus,
                        max_workers=args.max_workers or _default_workers(resources, gpus, cpus),
                        decode_threads=args.workers or None,
                        compile=args.compile,
                        on_shard=report.add,
                        on_rows=report.rows,
                    )
                elif todo:
                    code = _score_here(args, model, todo, folder, filesystems, report)
                    if code:
                        return code
        except Interrupted as stop:  # each shard is written whole or not at all: the finished ones stay
            print(f"temu: interrupted by {stop.signal_name}; {_KEPT.format(folder.location)}", file=sys.stderr)
            return stop.exit_status
        except (CorpusError, OSError) as err:  # an input changed or vanished since planning, a full disk, ...
            print(f"{PROG}: error: {err}; {_KEPT.format(folder.location)}", file=sys.stderr)
            return 1
        finally:
            report.close()
    finally:
        if started_ray:
            temu_ray.shutdown()
    complete = finish(plan, folder)
    if not args.quiet:
        print(report.summary(), file=sys.stderr)
        if complete:
            print(
                f"temu: every shard of the plan is done ({len(plan.shards)}); wrote {folder.location.rstrip('/')}/_SUCCESS",
                file=sys.stderr,
            )
        else:
            print("temu: other shards of the plan remain (other --shard processes, or rerun)", file=sys.stderr)
    if args.strict:
        if count_errors(folder, plan.shards_of(args.shard_index, args.shard_count)):
            return 1
    return 0


def _process_device(args: argparse.Namespace):
    """Under torchrun each process takes its own GPU, ``cuda:LOCAL_RANK``, unless ``--device`` names one."""
    from ..runtime import resolve_device

    launch = getattr(args, "launch", None)
    local_rank = launch.local_rank if launch is not None and launch.torchrun else None
    return resolve_device(args.device, local_rank=local_rank)


def _score_here(args, model: str, todo, folder, filesystems, report) -> int:
    from ..cache import cached_model
    from ..corpus.run import score_shards
    from ..corpus.scorer import BatchScorer
    from ..errors import TeMuError

    try:
        net = cached_model(model, args.device, compile=args.compile)
    except (TeMuError, OSError) as err:
        print(f"{PROG}: error: cannot load model {args.model!r}: {err}", file=sys.stderr)
        return 2
    scorer = BatchScorer(net, batch_size=args.batch_size, precision=args.precision, threads=args.workers or None)
    try:
        score_shards(todo, folder, scorer, filesystems, report.add)
    finally:
        scorer.close()
    return 0


def _default_cpus(resources: Mapping[str, float], gpus: float) -> float:
    if gpus:
        return 4.0
    # CPU actors: this machine's cores, leaving one logical CPU of the cluster to the readers
    return float(max(1, min(os.cpu_count() or 1, int(resources.get("CPU", 1)) - 1)))


def _default_workers(resources: Mapping[str, float], gpus: float, cpus: float) -> int:
    if gpus:
        return max(1, int(resources.get("GPU", 0) // gpus))
    return max(1, int((resources.get("CPU", 1) - 1) // cpus))
