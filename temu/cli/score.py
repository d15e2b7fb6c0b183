"""``temu score``: score images and write one row per image as it is scored."""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from ..errors import TeMuError
from .args import (
    add_model_argument,
    add_runtime_arguments,
    attribute_names,
    flag_message,
    scale_names,
    usage_error,
)
from .corpus import (
    add_corpus_arguments,
    check_corpus_arguments,
    check_file_mode_arguments,
    is_corpus_mode,
    output_argument,
    run_corpus,
)
from .interrupts import Interrupted, InterruptGuard
from .writers import (
    OUTPUT_SUFFIXES,
    OutputFile,
    check_output_path,
    file_in_the_way,
    make_writer,
    release_stdout,
    stdout_stream,
)

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
        help=f"write rows to a file ending in {', '.join(OUTPUT_SUFFIXES)} (default: CSV on stdout), put in place "
        "when the run ends (an interrupted run keeps its rows in NAME.partial.csv|.jsonl|.json), "
        "or to a folder (DIR/ or a URI): corpus mode, one Parquet file per shard, resumable",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output file (without it, an existing file is refused); in corpus mode, "
        "clear an earlier run in the --output folder and start again",
    )
    p.add_argument(
        "--maps",
        type=Path,
        default=None,
        metavar="DIR",
        help="write each image's patch-score map blended over it (long side at most 1024 px) as DIR/<name>.png; "
        "the output gets a 'map' column naming each image's map file",
    )
    p.add_argument(
        "--scale",
        type=scale_names,
        default=["raw"],
        metavar="raw|mos|percentile",
        help="add a column with the calibrated score (temu calibrate): mos (the calibration dataset's MOS) and/or "
        "percentile (better than P%% of the reference corpus), e.g. mos,percentile; the score column stays the raw "
        "score (default: raw, no extra column)",
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


#: Exit status when stdout's reader went away (``temu score ... | head``): 128 + SIGPIPE, as a shell reports it.
BROKEN_PIPE = 141


def _map_path(directory: Path, name: str, used: set[str]) -> Path:
    stem = Path(name).stem or "image"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    return directory / f"{candidate}.png"


def _shown(name: str) -> str:
    """A file name for display in a picture: bytes that are not UTF-8 (surrogate escapes) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _write_map(result, path: Path, with_attributes: bool) -> None:
    """The quality map of one scored image (with attributes: its panel, :mod:`temu.cli.panels`; matplotlib
    loads on first use), drawn over a bounded-size copy of the image and written atomically.
    Raises TeMuError / OSError for this image only."""
    from ..files import atomic_write
    from ..maps import quality_overlay, read_preview

    if with_attributes:
        from ..plots import MAX_SIDE, draw_panel, thumbnail

        maps = {"quality": (result.score, result.score_map)}
        maps.update((name, (value, result.attribute_maps[name])) for name, value in result.attributes.items())
        draw_panel(thumbnail(read_preview(result.name, MAX_SIDE)), _shown(Path(result.name).name), maps, path)
        return
    buffer = io.BytesIO()
    quality_overlay(read_preview(result.name), result.score_map).save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())


def check_arguments(args: argparse.Namespace) -> str | None:
    """The first usage problem of ``args`` that can be seen before the model loads, or None."""
    if "" in args.paths:
        return "an empty path ('') names no image or folder; give '.' for the current folder"
    if is_corpus_mode(args):
        if args.scale != ["raw"]:
            return (
                f"--scale {','.join(args.scale)} is for file mode: corpus mode (an --output folder) writes raw scores"
            )
        return check_corpus_arguments(args)
    if (problem := check_file_mode_arguments(args)) is not None:
        return problem
    if args.output is None and args.overwrite:
        return "--overwrite replaces an existing --output file; without --output the rows go to stdout"
    if args.output is not None and (problem := check_output_path(args.output, overwrite=args.overwrite)) is not None:
        return problem
    if args.maps is not None and args.maps.exists() and not args.maps.is_dir():
        return f"--maps {args.maps} is a file; give a folder for the map images"
    if args.maps is not None and (blocker := file_in_the_way(args.maps)) is not None:
        return f"--maps {args.maps} cannot be created: {blocker} is a file, not a folder"
    return None


def _why(err: OSError) -> str:
    return err.strerror or str(err)


def run(args: argparse.Namespace) -> int:
    problem = check_arguments(args)
    if problem is not None:
        return usage_error(PROG, problem)
    if is_corpus_mode(args):
        return run_corpus(args)
    # the places to write are made (and so checked) before the model loads
    if args.maps is not None:
        try:
            args.maps.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return usage_error(PROG, f"--maps {args.maps}: cannot create the folder ({_why(err)})")
    output = OutputFile(args.output, overwrite=args.overwrite) if args.output is not None else None
    if output is not None:
        try:
            stream = output.open()
        except OSError as err:
            return usage_error(PROG, f"--output {args.output}: cannot write there ({_why(err)})")
    else:
        stream = stdout_stream()
    with InterruptGuard() as guard:
        return _FileRun(args, output, stream, guard).run()


class _FileRun:
    """One ``temu score`` run into one file (or stdout): score, write rows and maps, finish the output."""

    def __init__(self, args: argparse.Namespace, output: OutputFile | None, stream, guard: InterruptGuard) -> None:
        self.args, self.output, self.stream, self.guard = args, output, stream, guard
        self.writer = None
        self.rows = self.scored = self.failed = self.map_failures = 0
        self.skipped: list = []
        self.finished = False
        self.where: Path | None = None

    def run(self) -> int:
        try:
            code = self._score()
            with self.guard.protect():
                placed = self._finish("discard" if code else "commit")
        except Interrupted as stop:
            self.guard.hold()
            where = self._finish("partial" if self.rows else "discard")
            kept = f"; they are in {where}" if where is not None else ""
            print(f"temu: interrupted by {stop.signal_name} after {self.rows} row(s){kept}", file=sys.stderr)
            return stop.exit_status
        except BrokenPipeError:  # stdout's reader is gone (`temu score ... | head`): stop quietly
            self.guard.hold()
            _silence_stdout()
            self._finish("partial" if self.rows else "discard")
            return BROKEN_PIPE
        except BaseException:  # a bug: keep what was scored beside --output, then show the traceback
            self.guard.hold()
            self._finish("partial" if self.rows else "discard")
            raise
        if code:
            return code
        args = self.args
        if self.output is not None and placed != self.output.path:
            print(
                f"temu: {self.output.path} appeared while scoring (another run?) and was not replaced; "
                f"this run's rows are in {placed}",
                file=sys.stderr,
            )
            return 1
        if not args.quiet:
            maps = f"; {self.map_failures} map(s) could not be written" if self.map_failures else ""
            print(f"temu: scored {self.scored} image(s), {self.failed} could not be read{maps}", file=sys.stderr)
            from ..images.folders import describe_skipped

            for line in describe_skipped(self.skipped):
                print(f"temu: {line}", file=sys.stderr)
        if args.strict and (self.failed or self.map_failures or not self.scored):
            return 1
        return 0

    def _score(self) -> int:
        from ..api import iter_scores
        from ..cache import cached_model

        args = self.args
        from ..model.calibration import check_scales

        try:
            model = cached_model(args.model, args.device, compile=args.compile)
        except (TeMuError, OSError) as err:
            print(f"{PROG}: error: cannot load model {args.model!r}: {err}", file=sys.stderr)
            return 2
        scales = [s for s in args.scale if s != "raw"]
        try:
            check_scales(model.calibration, scales, source=args.model)
        except TeMuError as err:
            print(f"{PROG}: error: {flag_message(str(err), {'scale': '--scale'})}", file=sys.stderr)
            return 2
        names = args.attributes or []
        with_maps = args.maps is not None
        writer = self.writer = make_writer(self.stream, args.output, [*scales, *names], with_map=with_maps)
        used: set[str] = set()
        results = iter_scores(
            args.paths,
            model,
            batch_size=args.batch_size,
            num_workers=args.workers,
            precision=args.precision,
            progress=False if args.quiet else None,
            with_maps=with_maps,
            on_error="report",
            recursive=args.recursive,
            attributes=names if names else False,
            skipped=self.skipped,
            scale=scales or "raw",
        )
        try:
            for result in results:
                map_file = None
                if with_maps and result.error is None and result.score_map is not None:
                    target = _map_path(args.maps, result.name, used)
                    try:
                        _write_map(result, target, bool(names))
                        map_file = str(target)
                    except (TeMuError, OSError) as err:
                        self.map_failures += 1
                        print(f"temu: no map for {result.name}: {err}", file=sys.stderr)
                with self.guard.protect():
                    extra = {s: getattr(result, s) for s in scales} | (result.attributes or {})
                    error = writer.write(result.name, result.score, result.error, extra, map_file)
                    self.rows += 1
                if error is None:
                    self.scored += 1
                else:
                    self.failed += 1
                    print(f"temu: not scored: {error}", file=sys.stderr)
        finally:
            results.close()
        return 0

    def _finish(self, how: str) -> Path | None:
        """Close the rows and put them where ``how`` says, once: ``"commit"`` (in place, see
        :meth:`OutputFile.commit`), ``"partial"`` (NAME.partial.EXT beside it) or ``"discard"``.
        Returns where the rows are (None: stdout, or nothing kept)."""
        if self.finished:
            return self.where
        self.finished = True
        if self.writer is not None and how != "discard":
            self.writer.close()  # a JSON array gets its closing bracket
        if self.output is None:
            release_stdout(self.stream)
            return None
        self.stream.close()
        if how == "commit":
            self.where = self.output.commit()
        elif how == "partial":
            self.where = self.output.keep_partial()
        else:
            self.output.discard()
        return self.where


def _silence_stdout() -> None:
    """Point stdout at os.devnull, so the interpreter's last flush at exit finds no broken pipe
    (the handling the Python documentation recommends for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # stdout without a file descriptor (captured, replaced): nothing to flush at exit
