"""The rows ``temu score`` writes: CSV, JSON Lines or a JSON array, one row per image as it is scored.

Each row has the image's path and score, then the extra ``columns`` the writer was opened with
(the attributes of ``--attributes``, in order; empty / null when the image failed), then the error.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

#: --output suffixes and the format each means.
OUTPUT_SUFFIXES = (".csv", ".jsonl", ".json")


class RowWriter(Protocol):
    def write(
        self, name: str, score: float | None, error: str | None, extra: Mapping[str, float] | None = None
    ) -> None: ...

    def close(self) -> None: ...


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


class CsvWriter:
    def __init__(self, stream: IO[str], with_error: bool, columns: Sequence[str] = ()) -> None:
        self.stream = stream
        self.with_error = with_error
        self.columns = list(columns)
        self.csv = csv.writer(stream, lineterminator="\n")
        self.csv.writerow(["path", "score", *self.columns, *(["error"] if with_error else [])])
        stream.flush()

    def write(
        self, name: str, score: float | None, error: str | None, extra: Mapping[str, float] | None = None
    ) -> None:
        values = [_number((extra or {}).get(c)) for c in self.columns]
        if self.with_error:
            self.csv.writerow([name, _number(score), *values, error or ""])
        elif error is None:
            self.csv.writerow([name, _number(score), *values])
        self.stream.flush()

    def close(self) -> None:
        pass


def _row(name: str, score: float | None, error: str | None, columns: Sequence[str], extra) -> dict:
    return {"path": name, "score": score, **{c: (extra or {}).get(c) for c in columns}, "error": error}


class JsonLinesWriter:
    def __init__(self, stream: IO[str], columns: Sequence[str] = ()) -> None:
        self.stream = stream
        self.columns = list(columns)

    def write(
        self, name: str, score: float | None, error: str | None, extra: Mapping[str, float] | None = None
    ) -> None:
        self.stream.write(json.dumps(_row(name, score, error, self.columns, extra)) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class JsonArrayWriter:
    """A JSON array written row by row; the closing bracket is written when the run ends (also on Ctrl-C)."""

    def __init__(self, stream: IO[str], columns: Sequence[str] = ()) -> None:
        self.stream = stream
        self.columns = list(columns)
        self.first = True
        stream.write("[")

    def write(
        self, name: str, score: float | None, error: str | None, extra: Mapping[str, float] | None = None
    ) -> None:
        self.stream.write(
            ("\n  " if self.first else ",\n  ") + json.dumps(_row(name, score, error, self.columns, extra))
        )
        self.first = False
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n]\n")
        self.stream.flush()


def check_output_path(output: Path) -> str | None:
    """Why ``output`` cannot be an ``--output`` file (a message), or None if it can."""
    if output.is_dir():
        return f"--output {output} is a folder; give a file name ending in {', '.join(OUTPUT_SUFFIXES)}"
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        return f"--output must end in {', '.join(OUTPUT_SUFFIXES)}, got {output.name!r}"
    return None


def open_writer(output: Path | None, columns: Sequence[str] = ()) -> tuple[IO[str], RowWriter]:
    """The stream and row writer for ``--output`` (None: CSV without an error column on stdout), with extra ``columns``."""
    if output is None:
        return sys.stdout, CsvWriter(sys.stdout, with_error=False, columns=columns)
    suffix = output.suffix.lower()
    output.parent.mkdir(parents=True, exist_ok=True)
    stream = output.open("w", encoding="utf-8", newline="")
    if suffix == ".csv":
        return stream, CsvWriter(stream, with_error=True, columns=columns)
    return stream, (JsonLinesWriter(stream, columns) if suffix == ".jsonl" else JsonArrayWriter(stream, columns))
