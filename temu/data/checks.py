"""Checking records before use: every row that cannot be trained or evaluated on, with the reason."""

from __future__ import annotations

import math
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..errors import ImageReadError, os_reason
from ..images.decode import pil_to_tensor, read_image
from .records import BadRow, IQARecord

__all__ = ["check_records", "find_bad_records"]


def check_records(
    records: Sequence[IQARecord], *, full: bool = False, sources: Sequence[str] | None = None
) -> list[BadRow]:
    """Every record that cannot be trained on, with its CSV line and the reasons, in record order.

    Checks: the score is a finite number; the path is an existing, non-empty regular file that
    can be opened for reading; Pillow recognises it (reading only the header) and the loader
    accepts its pixel format (a 32-bit float TIFF is refused). One image on several rows is bad
    too (it would be trained on twice, or land in both parts of a split): with equal scores every
    row after the first, with different scores all of them.

    Args:
        records: the records to check.
        full: also decode each image with the loader's own reader
            (:func:`temu.images.decode.read_image`), so truncated and corrupt files are found. One
            4000x3000 JPEG takes about 340 ms, the header check 0.3 ms
            (``benchmarks/bench_checks.py``): run the full check once after getting a dataset.
        sources: where each record comes from (its CSV), for messages about rows of another file.

    Returns:
        The bad rows (:class:`BadRow`), in record order.
    """
    return [bad for _, bad in find_bad_records(records, full=full, sources=sources)]


def score_problem(record: IQARecord) -> str:
    """Why ``record``'s score cannot be used (it is not a finite number), quoting its CSV cell."""
    cell = record.cell
    if cell is None:
        return f"score is not a finite number ({record.mos})"
    if not cell:
        return "score is missing: the CSV cell is empty"
    if re.fullmatch(r"[+-]?\d+,\d+", cell):
        return f"score {cell!r} is not a number: write the decimal separator as '.' ({cell.replace(',', '.')})"
    if not math.isnan(record.mos):
        return f"score {cell!r} is not a finite number (read as {record.mos})"
    return f"score {cell!r} is not a number (expected a decimal number such as 3.5, with '.' as the decimal separator)"


def find_bad_records(
    records: Sequence[IQARecord],
    *,
    full: bool = False,
    sources: Sequence[str] | None = None,
    cache: dict[Path, str | None] | None = None,
) -> list[tuple[int, BadRow]]:
    """The bad rows of ``records`` with their positions (rows of two CSVs can share a line number).

    Args:
        records: the records to check (:func:`check_records`).
        full: decode every image (else read headers only).
        sources: each record's CSV, for the rows' locations.
        cache: image file -> its problem (None: usable), filled here and read back, so checking the
            same images again (the splits of one dataset) reads each file once; one cache per ``full``.

    Returns:
        ``(position in records, BadRow)`` for each bad row, in record order.
    """
    if sources is not None and len(sources) != len(records):
        raise ValueError(f"sources has {len(sources)} entries for {len(records)} records")
    modes: dict[str, str | None] = {}
    problems: dict[int, list[str]] = {}
    for position, record in enumerate(records):
        reasons = []
        if not math.isfinite(record.mos):
            reasons.append(score_problem(record))
        if cache is not None and record.path in cache:
            problem = cache[record.path]
        else:
            problem = _image_problem(record.path, full, modes)
            if cache is not None:
                cache[record.path] = problem
        if problem:
            reasons.append(problem)
        if reasons:
            problems[position] = reasons
    for position, reason in _duplicates(records, set(problems), sources).items():
        problems.setdefault(position, []).append(reason)
    return [(i, BadRow(records[i].row, records[i].path, "; ".join(problems[i]))) for i in sorted(problems)]


def _duplicates(records: Sequence[IQARecord], bad: set[int], sources: Sequence[str] | None) -> dict[int, str]:
    """Reasons for the repeated rows among the usable records (positions not in ``bad``)."""
    by_image: dict[str, list[int]] = {}
    for position, record in enumerate(records):
        if position not in bad:
            by_image.setdefault(str(record.path), []).append(position)
    out: dict[int, str] = {}
    for positions in by_image.values():
        if len(positions) < 2:
            continue
        mixed = sources is not None and len({sources[p] for p in positions}) > 1

        def where(p: int, mixed: bool = mixed) -> str:
            return f"row {records[p].row}" + (f" of {sources[p]}" if mixed and sources is not None else "")

        if len({records[p].mos for p in positions}) == 1:
            for p in positions[1:]:
                out[p] = f"the same image as {where(positions[0])}, with the same score; list each image once"
            continue
        listed = ", ".join(f"{where(p)} ({_number(records[p].mos)})" for p in positions)
        for p in positions:
            out[p] = f"the image is listed {len(positions)} times with different scores: {listed}; keep one row"
    return out


def _number(value: float) -> str:
    """Short when that is exact (``50``), else every digit needed (``1.0000001``)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _image_problem(path: Path, full: bool, modes: dict[str, str | None]) -> str | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return "image file not found"
    except PermissionError:
        return "permission denied: a folder on the path cannot be searched (check its permissions)"
    except OSError as error:
        return f"cannot access the image file ({os_reason(error)})"
    if stat.S_ISDIR(info.st_mode):
        return "path is a folder, not an image file (is the CSV's path cell empty?)"
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        return f"path is {kind}, not an image file"
    if info.st_size == 0:
        return "image file is empty (0 bytes)"
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; permission problems are told apart here
    except PermissionError:
        return "permission denied: the file cannot be read (check its permissions)"
    except OSError as error:
        return f"cannot open the image file ({os_reason(error)})"
    with handle:
        try:
            with Image.open(handle) as image:
                mode = image.mode
        except Exception as error:  # noqa: BLE001 - PIL raises many types for bad data
            return f"not readable as an image ({type(error).__name__}: {error})"
    if mode not in modes:
        modes[mode] = _mode_problem(mode)
    if modes[mode] is not None or not full:
        return modes[mode]
    try:
        read_image(path)  # exactly what the DataLoader workers will do with it
    except ImageReadError as error:
        return error.reason
    except Exception as error:  # noqa: BLE001 - whatever the loader would fail with
        return f"not readable as an image ({type(error).__name__}: {error})"
    return None


def _mode_problem(mode: str) -> str | None:
    """Why the loader refuses images of PIL ``mode``, found by converting a 1x1 image of that mode
    with the loader's own conversion (:func:`temu.images.decode.pil_to_tensor`); None if it accepts them."""
    try:
        probe = Image.new(mode, (1, 1))
    except ValueError:  # a mode Pillow only reads: only decoding it (full check) can tell
        return None
    try:
        pil_to_tensor(probe)
    except Exception as error:  # noqa: BLE001 - the loader refuses this pixel format, whatever it raised
        return f"the loader cannot use this image: {error}"
    return None
