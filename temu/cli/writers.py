"""The rows ``temu score`` writes: CSV, JSON Lines or a JSON array, one row per image as it is scored."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, Protocol

#: --output suffixes and the format each means.
OUTPUT_SUFFIXES = (".csv", ".jsonl", ".json")


class RowWriter(Protocol):
    def write(self, name: str, score: float | None, error: str | None) -> None: ...

    def close(self) -> None: ...


class CsvWriter:
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


class JsonLinesWriter:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, name: str, score: float | None, error: str | None) -> None:
        self.stream.write(json.dumps({"path": name, "score": score, "error": error}) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class JsonArrayWriter:
    """A JSON array written row by row; the closing bracket is written when the run ends (also on Ctrl-C)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.first = True
        stream.write("[")

    def write(self, name: str, score: float | None, error: str | None) -> None:
        self.stream.write(
            ("\n  " if self.first else ",\n  ") + json.dumps({"path": name, "score": score, "error": error})
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


def open_writer(output: Path | None) -> tuple[IO[str], RowWriter]:
    """The stream and row writer for ``--output`` (None: CSV without an error column on stdout)."""
    if output is None:
        return sys.stdout, CsvWriter(sys.stdout, with_error=False)
    suffix = output.suffix.lower()
    output.parent.mkdir(parents=True, exist_ok=True)
    stream = output.open("w", encoding="utf-8", newline="")
    if suffix == ".csv":
        return stream, CsvWriter(stream, with_error=True)
    return stream, (JsonLinesWriter(stream) if suffix == ".jsonl" else JsonArrayWriter(stream))
