"""``temu score``: score images and write one row per image as it is scored."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import TeMuError
from .args import add_model_argument, add_runtime_arguments, attribute_names, usage_error
from .corpus import (
    add_corpus_arguments,
    check_corpus_arguments,
    check_file_mode_arguments,
    is_corpus_mode,
    output_argument,
    run_corpus,
)
from .writers import OUTPUT_SUFFIXES, check_output_path, open_writer

PROG = "temu score"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score images; one row per image, written as it is scored")
    p.add_argument("paths", nargs="+", help="image files and/or folders (their images, sorted)")
    add_model_argument(p)
    add_runtime_arguments(p)
    p.add_argument(
        "--output",
        type=output_argument,
        default=None,
        help=f"write rows to a file ending in {', '.join(OUTPUT_SUFFIXES)} (default: CSV on stdout), "
        "or to a folder (DIR/ or a URI): corpus mode, one Parquet file per shard, resumable",
    )
    p.add_argument(
        "--maps",
        type=Path,
        default=None,
        metavar="DIR",
        help="write each image's patch-score map blended over it as DIR/<name>.png",
    )
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any image could not be scored")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone first (long GPU runs)")
    p.add_argument("--recursive", "-r", action="store_true", help="also score images in sub-folders")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    g = p.add_argument_group("attributes (zero-shot CLIP judgements from the same pass; see temu.explain)")
    g.add_argument(
        "--attributes",
        nargs="?",
        const="all",
        default=None,
        type=attribute_names,
        metavar="NAMES",
        help="add one column per attribute: all of them (no value, or 'all') or a comma-separated list such as "
        "sharpness,noise. With --maps, DIR/<name>.png becomes a panel: the photo, the quality map and one map "
        "per attribute",
    )
    add_corpus_arguments(p)
    p.set_defaults(func=run)


def _map_path(directory: Path, name: str, used: set[str]) -> Path:
    stem = Path(name).stem or "image"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    return directory / f"{candidate}.png"


def _write_panel(result, path: Path) -> None:
    """The attribute panel of one scored image (:mod:`temu.cli.panels`; matplotlib loads here, on first use)."""
    from ..inputs import read_image
    from .panels import draw_panel, thumbnail

    maps = {"quality": (result.score, result.score_map)}
    maps.update((name, (value, result.attribute_maps[name])) for name, value in result.attributes.items())
    draw_panel(thumbnail(read_image(result.name)), Path(result.name).name, maps, path)


def check_arguments(args: argparse.Namespace) -> str | None:
    """The first usage problem of ``args`` that can be seen before the model loads, or None."""
    if is_corpus_mode(args):
        return check_corpus_arguments(args)
    if (problem := check_file_mode_arguments(args)) is not None:
        return problem
    if args.output is not None and (problem := check_output_path(args.output)) is not None:
        return problem
    if args.maps is not None and args.maps.exists() and not args.maps.is_dir():
        return f"--maps {args.maps} is a file; give a folder for the map images"
    return None


def run(args: argparse.Namespace) -> int:
    problem = check_arguments(args)
    if problem is not None:
        return usage_error(PROG, problem)
    if is_corpus_mode(args):
        return run_corpus(args)

    from ..api import get_model, iter_scores
    from ..inputs import read_image
    from ..maps import quality_overlay

    try:
        model = get_model(args.model, args.device, compile=args.compile)
    except (TeMuError, OSError) as err:
        print(f"{PROG}: error: cannot load model {args.model!r}: {err}", file=sys.stderr)
        return 2
    if args.maps is not None:
        args.maps.mkdir(parents=True, exist_ok=True)
    names = args.attributes or []
    stream, writer = open_writer(args.output, columns=names)
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
            attributes=names if names else False,
        ):
            writer.write(result.name, result.score, result.error, result.attributes)
            if result.error is not None:
                failed += 1
                print(f"temu: skipped {result.error}", file=sys.stderr)
                continue
            scored += 1
            if args.maps is not None and result.score_map is not None and names:
                _write_panel(result, _map_path(args.maps, result.name, used))
            elif args.maps is not None and result.score_map is not None:
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
