"""The rows ``temu score`` writes: CSV, JSON Lines or a JSON array, one row per image as it is scored.

Each row has the image's path and (raw) score, then (when videos are scored) the number of frames
scored (``frames``: empty / null for an image), then the extra ``columns`` the writer was opened with
(the calibrated scores of ``--scale``, ``mos`` and ``percentile``, then the attributes of
``--attributes``, in order; empty / null when the image failed), then the quality map's file
(``map``, with ``--maps``), then the error.

File names are kept exactly, also when they are not UTF-8 (old Linux disks): Python holds such a
name with one surrogate escape (U+DC80..U+DCFF) per byte that is not UTF-8. CSV (file and
stdout) is written as UTF-8 with ``errors="surrogateescape"``, so those bytes reach the file as
they are; read it back with ``open(path, encoding="utf-8", errors="surrogateescape", newline="")``
and ``os.fsencode(row["path"])`` gives the name's bytes. JSON and JSON Lines are ASCII: every
non-ASCII character is a ``\\uXXXX`` escape, a byte that is not UTF-8 a lone ``\\udcXX``, which
``json.load`` reads back as the same surrogate-escaped name. A field holding a line break
(``\\n`` or ``\\r``) is quoted in CSV; numbers are never NaN or infinite (such a value makes the
row an error row).

An ``--output`` file is written under a hidden temporary name beside it and renamed when the run
ends (:class:`OutputFile`), so the file named ``--output`` is always complete.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

from ..errors import non_finite_score
from ..files import AtomicFile

#: --output suffixes and the format each means.
OUTPUT_SUFFIXES = (".csv", ".jsonl", ".json")
#: how --output files and the CSV on stdout are encoded (see the module docstring).
ENCODING, ERRORS = "utf-8", "surrogateescape"


class RowWriter(Protocol):
    def write(
        self,
        name: str,
        score: float | None,
        error: str | None,
        extra: Mapping[str, float] | None = None,
        map_file: str | None = None,
        frames: int | None = None,
    ) -> str | None: ...

    def close(self) -> None: ...


def finite_row(
    name: str, score: float | None, error: str | None, extra: Mapping[str, float] | None
) -> tuple[float | None, str | None, dict[str, float | None]]:
    """``(score, error, extra)`` with no NaN or infinite number left: a non-finite score makes the
    row an error row; a non-finite extra value becomes None and is named in the error."""
    values: dict[str, float | None] = dict(extra or {})
    problems = []
    if score is not None and (problem := non_finite_score(name, score)) is not None:
        problems.append(str(problem))
        score = None
    for key, value in values.items():
        if value is not None and (problem := non_finite_score(name, value, what=key)) is not None:
            problems.append(str(problem))
            values[key] = None
    if problems:
        message = "; ".join(problems)
        error = f"{error}; {message}" if error else message
        score = None
    return score, error, values


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


class _Writer:
    """What the three formats share: ``write`` makes the row finite (:func:`finite_row`), has
    :meth:`_emit` write it, flushes and returns the row's error; ``close`` ends the format."""

    def __init__(
        self, stream: IO[str], columns: Sequence[str] = (), *, with_map: bool = False, with_frames: bool = False
    ) -> None:
        self.stream = stream
        self.columns = list(columns)
        self.with_map = with_map
        self.with_frames = with_frames
        self.frames: int | None = None  # the current row's (set by write for _emit)

    def write(
        self,
        name: str,
        score: float | None,
        error: str | None,
        extra: Mapping[str, float] | None = None,
        map_file: str | None = None,
        frames: int | None = None,
    ) -> str | None:
        score, error, values = finite_row(name, score, error, extra)
        self.frames = frames if error is None else None
        self._emit(name, score, error, values, map_file)
        self.stream.flush()
        return error

    def _emit(
        self, name: str, score: float | None, error: str | None, extra: Mapping[str, float | None], map_file: str | None
    ) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class CsvWriter(_Writer):
    def __init__(
        self,
        stream: IO[str],
        with_error: bool,
        columns: Sequence[str] = (),
        *,
        with_map: bool = False,
        with_frames: bool = False,
    ) -> None:
        super().__init__(stream, columns, with_map=with_map, with_frames=with_frames)
        self.with_error = with_error
        self.csv = csv.writer(stream, lineterminator="\n")
        # the csv module quotes a field holding "\n" (the line terminator) but not one holding "\r",
        # which many readers take for a line break: such rows are written with every field quoted
        self.quoted = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_ALL)
        header = ["path", "score", *(["frames"] if with_frames else []), *self.columns]
        header += [*(["map"] if with_map else []), *(["error"] if with_error else [])]
        self.csv.writerow(header)
        stream.flush()

    def _emit(
        self, name: str, score: float | None, error: str | None, extra: Mapping[str, float | None], map_file: str | None
    ) -> None:
        if error is not None and not self.with_error:
            return  # stdout has scores only: the error goes to stderr
        row = [name, _number(score)]
        if self.with_frames:
            row.append("" if self.frames is None else str(self.frames))
        row += [_number(extra.get(c)) for c in self.columns]
        if self.with_map:
            row.append(map_file or "")
        if self.with_error:
            row.append(error or "")
        (self.quoted if any("\r" in field for field in row) else self.csv).writerow(row)


class JsonLinesWriter(_Writer):
    def _emit(
        self, name: str, score: float | None, error: str | None, extra: Mapping[str, float | None], map_file: str | None
    ) -> None:
        self.stream.write(self._json(name, score, error, extra, map_file) + "\n")

    def _json(
        self, name: str, score: float | None, error: str | None, extra: Mapping[str, float | None], map_file: str | None
    ) -> str:
        row = {"path": name, "score": score}
        if self.with_frames:
            row["frames"] = self.frames
        row.update({c: extra.get(c) for c in self.columns})
        if self.with_map:
            row["map"] = map_file
        row["error"] = error
        return json.dumps(row, allow_nan=False)  # ensure_ascii (the default): lone surrogates stay \udcXX escapes


class JsonArrayWriter(JsonLinesWriter):
    """A JSON array written row by row; :meth:`close` writes the closing bracket (also after an interrupt)."""

    def __init__(
        self, stream: IO[str], columns: Sequence[str] = (), *, with_map: bool = False, with_frames: bool = False
    ) -> None:
        super().__init__(stream, columns, with_map=with_map, with_frames=with_frames)
        self.first = True
        stream.write("[")

    def _emit(
        self, name: str, score: float | None, error: str | None, extra: Mapping[str, float | None], map_file: str | None
    ) -> None:
        self.stream.write(("\n  " if self.first else ",\n  ") + self._json(name, score, error, extra, map_file))
        self.first = False

    def close(self) -> None:
        self.stream.write("\n]\n" if not self.first else "]\n")
        self.stream.flush()


def check_output_path(output: Path, *, overwrite: bool = False) -> str | None:
    """Why ``output`` cannot be an ``--output`` file (a message), or None if it can."""
    if output.is_dir():
        return f"--output {output} is a folder; give a file name ending in {', '.join(OUTPUT_SUFFIXES)}"
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        return f"--output must end in {', '.join(OUTPUT_SUFFIXES)}, got {output.name!r}"
    if (blocker := file_in_the_way(output)) is not None:
        return f"--output {output} cannot be created: {blocker} is a file, not a folder"
    if output.exists() and not overwrite:
        return f"--output {output} exists; give --overwrite to replace it, or another file name"
    return None


def file_in_the_way(path: Path) -> Path | None:
    """The nearest existing parent of ``path`` when it is not a folder (so ``path`` cannot be created), else None."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def partial_path(output: Path) -> Path:
    """Where the rows of an interrupted run are kept: ``scores.csv`` -> ``scores.partial.csv``."""
    return output.with_name(f"{output.stem}.partial{output.suffix}")


class OutputFile(AtomicFile):
    """An ``--output`` file written under a hidden temporary name in its folder
    (:func:`temu.files.temporary_name`) and put in place when the run ends, so ``--output`` is only
    ever a complete file (:class:`temu.files.AtomicFile`, encoded as the module docstring says).

    :meth:`commit` renames it to ``path``; without ``overwrite`` a file that appeared at ``path``
    meanwhile (another run) is never replaced: the rows go to :func:`partial_path` instead.
    :meth:`keep_partial` (after an interrupt) renames it to :func:`partial_path`.
    """

    def open(self) -> IO[str]:  # type: ignore[override]
        """Create the temporary file (and missing parent folders); OSError if that place is not writable."""
        return super().open(encoding=ENCODING, errors=ERRORS)

    def commit(self) -> Path:  # type: ignore[override]
        """Put the finished file in place; returns where it is (``path``, or the partial name, see above)."""
        return super().commit(partial_path(self.path))

    def keep_partial(self) -> Path:
        return self.keep_as(partial_path(self.path))


def stdout_stream() -> IO[str]:
    """The CSV stream on stdout: UTF-8 with surrogate escapes, as in files (see the module docstring).
    Detach it with :func:`release_stdout` when done; sys.stdout itself is left as it is."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # sys.stdout replaced by a text-only stream
        return sys.stdout
    return io.TextIOWrapper(buffer, encoding=ENCODING, errors=ERRORS, newline="", write_through=True)


def release_stdout(stream: IO[str]) -> None:
    if stream is not sys.stdout and isinstance(stream, io.TextIOWrapper):
        stream.flush()
        stream.detach()


def make_writer(
    stream: IO[str],
    output: Path | None,
    columns: Sequence[str] = (),
    *,
    with_map: bool = False,
    with_frames: bool = False,
) -> RowWriter:
    """The row writer for ``--output`` (None: CSV without an error column, for stdout), with extra ``columns``
    (and a ``frames`` column when ``with_frames``)."""
    if output is None:
        return CsvWriter(stream, with_error=False, columns=columns, with_map=with_map, with_frames=with_frames)
    suffix = output.suffix.lower()
    if suffix == ".csv":
        return CsvWriter(stream, with_error=True, columns=columns, with_map=with_map, with_frames=with_frames)
    if suffix == ".jsonl":
        return JsonLinesWriter(stream, columns, with_map=with_map, with_frames=with_frames)
    return JsonArrayWriter(stream, columns, with_map=with_map, with_frames=with_frames)


class FrameRowWriter:
    """``--per-frame FILE.csv``: one row per scored frame of a video, ``path,frame,time,score`` (``frame``:
    the sample's number from 0; ``time``: seconds from the video's first frame). Written as the CSV
    ``--output`` is (see the module docstring)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.csv = csv.writer(stream, lineterminator="\n")
        self.quoted = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_ALL)
        self.csv.writerow(["path", "frame", "time", "score"])
        stream.flush()

    def write(self, name: str, timestamps: Sequence[float], scores: Sequence[float]) -> None:
        writer = self.quoted if "\r" in name else self.csv
        for k, (time, score) in enumerate(zip(timestamps, scores)):
            writer.writerow([name, k, f"{time:.6f}", _number(score)])
        self.stream.flush()

    def close(self) -> None:
        pass
