"""``temu score``: score images and write one row per image as it is scored."""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from ..errors import TeMuError, os_reason
from .args import (
    add_model_argument,
    add_runtime_arguments,
    attribute_names,
    flag_message,
    positive_int,
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
    FrameRowWriter,
    OutputFile,
    check_output_path,
    file_in_the_way,
    make_writer,
    release_stdout,
    stdout_stream,
)

PROG = "temu score"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score images and videos; one row per input, written as it is scored")
    p.add_argument("paths", nargs="+", help="image and video files and/or folders (their images and videos, sorted)")
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
        "score (default: raw, no extra column); in corpus mode float32 columns, rankable by temu select --by",
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
    add_video_arguments(p)
    add_corpus_arguments(p)
    p.set_defaults(func=run)


#: Reductions of a video's frame scores (temu.video.REDUCTIONS; listed here so --help loads no torch).
REDUCTIONS = ("mean", "min", "median", "p10")
#: The video options, as argparse names them.
VIDEO_OPTIONS = ("fps", "frames", "reduce", "max_frames", "max_side", "per_frame")


def frames_argument(text: str) -> int | str:
    """``--frames``: a positive int, or ``all``."""
    if text.strip().lower() == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}")
    return value


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    from .args import positive_float

    g = p.add_argument_group(
        "videos (.mp4 .mov .m4v .mkv .webm .avi; scored by their sampled frames, see README 'Video'; "
        "needs temu-iqa[video])"
    )
    g.add_argument(
        "--fps",
        type=positive_float,
        default=None,
        metavar="R",
        help="frames sampled per second: the frame shown at each time k/R from the first frame (default: 1)",
    )
    g.add_argument(
        "--frames",
        type=frames_argument,
        default=None,
        metavar="N|all",
        help="N frames per video, at the centres of N equal parts of its duration, or every frame (instead of --fps)",
    )
    g.add_argument(
        "--reduce",
        choices=REDUCTIONS,
        default=None,
        help="how a video's frame scores become its score: mean, min, median or p10 (10th percentile) (default: mean)",
    )
    g.add_argument(
        "--max-frames",
        type=positive_int,
        default=None,
        metavar="N",
        help="a video whose sampling needs more frames is an error row (default: no limit)",
    )
    g.add_argument(
        "--max-side",
        type=positive_int,
        default=None,
        metavar="PX",
        help="shrink video frames whose long side is longer first, as VBench does (--frames all --max-side 512: "
        "VBench's imaging-quality protocol with this model)",
    )
    g.add_argument(
        "--per-frame",
        type=Path,
        nargs="?",
        const=True,
        default=None,
        metavar="FILE.csv",
        help="also write each scored video frame: path,frame,time,score (frame numbered from 0, time in seconds); "
        "in corpus mode (--output DIR/) give it alone: DIR/_frames/<shard>.parquet per shard (id,frame,time,score)",
    )


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
    """The quality map of one scored image (with attributes: its panel, :func:`temu.plots.draw_panel`; matplotlib
    loads on first use), drawn over a bounded-size copy of the image and written atomically.
    Raises TeMuError / OSError for this image only."""
    from ..files import atomic_write
    from ..plots import quality_overlay, read_preview

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
    if args.fps is not None and args.frames is not None:
        return "--fps samples by time and --frames a fixed number per video: give one of them"
    if args.frames not in (None, "all") and args.max_frames is not None and args.frames > args.max_frames:
        return f"--frames {args.frames} asks for more frames per video than --max-frames {args.max_frames}"
    if is_corpus_mode(args):
        if args.per_frame not in (None, True):
            return (
                f"--per-frame takes no file in corpus mode (--output DIR/): each shard's frame rows go to "
                f"DIR/_frames/<shard>.parquet; give --per-frame alone, not {str(args.per_frame)!r}"
            )
        return check_corpus_arguments(args)
    if args.per_frame is True:
        return "--per-frame needs a file here: --per-frame FILE.csv (in corpus mode, --output DIR/, it takes none)"
    if args.per_frame is not None:
        if args.per_frame.suffix.lower() != ".csv":
            return f"--per-frame must end in .csv, got {args.per_frame.name!r}"
        if args.output is not None and args.per_frame.resolve() == args.output.resolve():
            return "--per-frame and --output name the same file; give two files"
        if (problem := check_output_path(args.per_frame, overwrite=args.overwrite)) is not None:
            return problem.replace("--output", "--per-frame", 1)
    if (problem := check_file_mode_arguments(args)) is not None:
        return problem
    if args.output is None and args.per_frame is None and args.overwrite:
        return "--overwrite replaces an existing --output file; without --output the rows go to stdout"
    if args.output is not None and (problem := check_output_path(args.output, overwrite=args.overwrite)) is not None:
        return problem
    if args.maps is not None and args.maps.exists() and not args.maps.is_dir():
        return f"--maps {args.maps} is a file; give a folder for the map images"
    if args.maps is not None and (blocker := file_in_the_way(args.maps)) is not None:
        return f"--maps {args.maps} cannot be created: {blocker} is a file, not a folder"
    return None


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
            return usage_error(PROG, f"--maps {args.maps}: cannot create the folder ({os_reason(err)})")
    output = OutputFile(args.output, overwrite=args.overwrite) if args.output is not None else None
    per_frame = OutputFile(args.per_frame, overwrite=args.overwrite) if args.per_frame is not None else None
    if per_frame is not None:
        try:
            frame_stream = per_frame.open()
        except OSError as err:
            return usage_error(PROG, f"--per-frame {args.per_frame}: cannot write there ({os_reason(err)})")
    if output is not None:
        try:
            stream = output.open()
        except OSError as err:
            if per_frame is not None:
                frame_stream.close()
                per_frame.discard()
            return usage_error(PROG, f"--output {args.output}: cannot write there ({os_reason(err)})")
    else:
        stream = stdout_stream()
    with InterruptGuard() as guard:
        run = _FileRun(args, output, stream, guard)
        if per_frame is not None:
            run.per_frame, run.frame_stream = per_frame, frame_stream
        return run.run()


class _FileRun:
    """One ``temu score`` run into one file (or stdout): score, write rows and maps, finish the output."""

    def __init__(self, args: argparse.Namespace, output: OutputFile | None, stream, guard: InterruptGuard) -> None:
        self.args, self.output, self.stream, self.guard = args, output, stream, guard
        self.writer = None
        self.per_frame: OutputFile | None = None
        self.frame_stream = None
        self.frame_writer: FrameRowWriter | None = None
        self.frames_placed: Path | None = None
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
            if self.frames_placed is not None:
                kept += f" (frame rows in {self.frames_placed})"
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
        if self.per_frame is not None and self.frames_placed != self.per_frame.path:
            print(
                f"temu: {self.per_frame.path} appeared while scoring (another run?) and was not replaced; "
                f"this run's frame rows are in {self.frames_placed}",
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
        writer = self.writer = make_writer(
            self.stream, args.output, [*scales, *names], with_map=with_maps, with_frames=self._videos_expected()
        )
        if self.frame_stream is not None:
            self.frame_writer = FrameRowWriter(self.frame_stream)
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
            fps=args.fps,
            frames=args.frames,
            reduce=args.reduce or "mean",
            max_frames=args.max_frames,
            max_side=args.max_side,
            scale=scales or "raw",
        )
        try:
            for result in results:
                map_file = None
                if with_maps and result.error is None and result.frames is not None:
                    print(
                        f"temu: no map for {result.name}: maps are drawn over images; temu.explain(video) gives "
                        "each sampled frame's maps",
                        file=sys.stderr,
                    )
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
                    error = writer.write(result.name, result.score, result.error, extra, map_file, result.frames)
                    if self.frame_writer is not None and error is None and result.frame_scores is not None:
                        self.frame_writer.write(result.name, result.timestamps, result.frame_scores)
                    self.rows += 1
                if error is None:
                    self.scored += 1
                else:
                    self.failed += 1
                    print(f"temu: not scored: {error}", file=sys.stderr)
        finally:
            results.close()
        return 0

    def _videos_expected(self) -> bool:
        """Whether the rows get a ``frames`` column: a video option was given or an input is named like a video."""
        from ..images.names import is_video_name
        from ..images.sources import expand_sources

        args = self.args
        if any(getattr(args, name) is not None for name in VIDEO_OPTIONS):
            return True
        return any(is_video_name(s.name) for s in expand_sources(args.paths, recursive=args.recursive))

    def _finish(self, how: str) -> Path | None:
        """Close the rows and put them where ``how`` says, once: ``"commit"`` (in place, see
        :meth:`OutputFile.commit`), ``"partial"`` (NAME.partial.EXT beside it) or ``"discard"``.
        Returns where the rows are (None: stdout, or nothing kept)."""
        if self.finished:
            return self.where
        self.finished = True
        if self.per_frame is not None:
            self.frame_stream.close()
            if how == "commit":
                self.frames_placed = self.per_frame.commit()
            elif how == "partial" and self.frame_writer is not None:
                self.frames_placed = self.per_frame.keep_partial()
            else:
                self.per_frame.discard()
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
