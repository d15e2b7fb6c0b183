"""Labelled IQA datasets as records: CSV -> one :class:`IQARecord` (image path, raw score) per row.

A dataset is a CSV with one row per image (an image path and a score) plus an image root folder
the paths are relative to. The known pyiqa meta-info layouts (KonIQ-10k, SPAQ, LIVE Challenge,
KADID-10k, CSIQ, LIVE, FLIVE, AGIQA-3K) are in :mod:`temu.data.formats`, with the folder each
expects as image root.

Generic CSVs: the columns come from ``path_col``/``mos_col`` when given (case-insensitive header
match), otherwise from the header names. The path column is the one header among
``PATH_CANDIDATES`` and the score column the one among ``MOS_CANDIDATES`` (case-insensitive,
spaces and hyphens read as ``_``). Detection refuses rather than guesses: no match or more than
one match is an error listing the header. It also refuses a ``dmos`` column and pyiqa
full-reference files (``ref_name`` + ``dist_name``), because whether their score is
lower-is-better depends on the dataset (CSIQ/LIVE yes, KADID-10k no); pass ``format`` or
explicit columns for those.

``read_records`` returns exactly one record per data row, in file order, so the positional
indices of pyiqa split files apply to it. A row that does not parse is kept (MOS NaN for a
missing or non-numeric score, the image root itself for an empty path) and reported by
:func:`temu.data.checks.check_records` with its line number, instead of stopping the read.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .formats import DATASET_FORMATS, DatasetFormat, generic_format, get_format

__all__ = [
    "MOS_CANDIDATES",
    "PATH_CANDIDATES",
    "REFERENCE_CANDIDATES",
    "BadRow",
    "IQARecord",
    "read_records",
    "read_table",
    "reference_columns",
    "resolve_format",
]

PATH_CANDIDATES: tuple[str, ...] = (
    "image",
    "image_name",
    "image_path",
    "img",
    "img_name",
    "img_path",
    "path",
    "filename",
    "file",
    "dis_img_path",
    "dist_name",
    "name",
)
"""Header names (normalised) recognised as the image path column."""

MOS_CANDIDATES: tuple[str, ...] = (
    "mos",
    "dmos",
    "score",
    "mos_zscore",
    "quality",
    "label",
)
"""Header names (normalised) recognised as the score column."""

REFERENCE_CANDIDATES: tuple[str, ...] = (
    "ref",
    "reference",
    "ref_img",
    "ref_image",
    "ref_img_path",
    "ref_image_path",
    "ref_path",
    "ref_name",
    "ref_img_name",
    "ref_image_name",
    "reference_img",
    "reference_image",
    "reference_path",
    "reference_name",
)
"""Header names (normalised) recognised as the reference-image column of a dataset of distorted
images (KADID-10k, TID2013, CSIQ, ... as third-party CSVs ship them: ``dis_img_path, dis_type,
ref_img_path, score``). A random split keeps all rows of one reference on one side."""


@dataclass(frozen=True)
class IQARecord:
    """One image: absolute ``path``, raw score ``mos``, 1-based CSV line ``row``; ``cell``: the score's
    CSV text when it is not a finite number (``mos`` is then NaN or infinite), for messages."""

    path: Path
    mos: float
    row: int
    cell: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BadRow:
    """A CSV row that cannot be used: its line number, image path and why."""

    row: int
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.path}: {self.reason}"


# --------------------------------------------------------------------- CSV


def norm_header(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def read_table(
    csv_path: str | os.PathLike[str],
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and data rows ``(line_number, cells)`` of a CSV; blank lines skipped.

    The delimiter is ',' unless the header has no comma but a tab or ';'.
    """
    path = Path(csv_path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"CSV file not found: {path}; check the path") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error}); re-save it as UTF-8 CSV") from None
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ","
    if "," not in first_line:
        if "\t" in first_line:
            delimiter = "\t"
        elif ";" in first_line:
            delimiter = ";"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if header is None:
                header = [cell.strip() for cell in cells]
            else:
                rows.append((reader.line_num, cells))
    except csv.Error as error:
        raise ValueError(f"{path}, line {reader.line_num}: malformed CSV ({error})") from None
    if header is None:
        raise ValueError(f"{path} is empty: expected a header row and one row per image")
    return header, rows


def find_column(header: list[str], wanted: str, what: str, csv_path: Any, field: str | None = None) -> int:
    """Position of the column ``wanted`` in ``header`` (case-insensitive, spaces and hyphens read as ``_``).

    Args:
        header: the CSV's column names.
        wanted: the name looked for.
        what: the column's role, for messages.
        csv_path: the CSV, for messages.
        field: the argument that gave ``wanted`` (if any), for messages.

    Raises:
        ValueError: no column, or more than one column, has that name.
    """
    target = norm_header(wanted)
    hits = [i for i, name in enumerate(header) if norm_header(name) == target]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        fix = f" Pass the right name as {field}" if field else ""
        raise ValueError(f"{csv_path}: no {what} column named {wanted!r}; the header is {header}.{fix}")
    raise ValueError(
        f"{csv_path}: the header has {len(hits)} columns named {wanted!r} "
        f"(positions {hits}); rename the duplicates. Header: {header}"
    )


def _detect_column(header: list[str], candidates: tuple[str, ...], what: str, csv_path: Any) -> int:
    hits = [i for i, name in enumerate(header) if norm_header(name) in candidates]
    if len(hits) == 1:
        return hits[0]
    field = f"{what}_col"
    if not hits:
        raise ValueError(
            f"{csv_path}: could not find the {what} column. The header is {header}; "
            f"recognised names are {list(candidates)} (case-insensitive). "
            f"Name the column with {field}=NAME, or pass format=NAME for a known dataset"
        )
    found = [header[i] for i in hits]
    raise ValueError(
        f"{csv_path}: {len(hits)} columns could be the {what} column: {found}. Choose one with {field}=NAME. Header: {header}"
    )


def resolve_format(
    csv_path: str | os.PathLike[str],
    *,
    format: str | DatasetFormat | None = None,
    path_col: str | None = None,
    mos_col: str | None = None,
    lower_better: bool | None = None,
) -> DatasetFormat:
    """The format to read ``csv_path`` with, its columns checked against the header.

    Args:
        csv_path: the labels CSV.
        format: a registry name or a :class:`DatasetFormat`: columns and direction.
        path_col, mos_col: override the format's columns.
        lower_better: overrides its direction (generic CSVs default to higher-is-better).

    Returns:
        The format, with ``path_col`` and ``mos_col`` spelled as in the header.
    """
    header, _ = read_table(csv_path)
    return _resolve(header, csv_path, format, path_col, mos_col, lower_better)


def _resolve(
    header: list[str],
    csv_path: Any,
    format: str | DatasetFormat | None,
    path_col: str | None,
    mos_col: str | None,
    lower_better: bool | None,
) -> DatasetFormat:
    if format is not None:
        fmt = get_format(format) if isinstance(format, str) else format
        if path_col is None:
            names = (fmt.path_col, *fmt.path_aliases)
            present = [n for n in names if any(norm_header(h) == norm_header(n) for h in header)]
            if not present:
                raise ValueError(
                    f"{csv_path} does not look like the {fmt.title or fmt.name} meta-info file: "
                    f"expected a path column {list(names)}, the header is {header}. "
                    f"Check format={fmt.name!r}, or give the columns as path_col and mos_col"
                )
            path_col = present[0]
        path_idx = find_column(header, path_col, "path", csv_path, "path_col")
        mos_idx = find_column(header, mos_col or fmt.mos_col, "mos", csv_path, "mos_col")
        direction = fmt.lower_better if lower_better is None else lower_better
        return replace(
            fmt,
            path_col=header[path_idx],
            mos_col=header[mos_idx],
            lower_better=direction,
        )

    normalised = {norm_header(h) for h in header}
    explicit_mos = mos_col is not None
    if path_col is not None:
        path_idx = find_column(header, path_col, "path", csv_path, "path_col")
    else:
        path_idx = _detect_column(header, PATH_CANDIDATES, "path", csv_path)
    if mos_col is not None:
        mos_idx = find_column(header, mos_col, "mos", csv_path, "mos_col")
    else:
        mos_idx = _detect_column(header, MOS_CANDIDATES, "mos", csv_path)
    if not explicit_mos and lower_better is None:
        if {"ref_name", "dist_name"} <= normalised:
            raise ValueError(
                f"{csv_path} looks like a pyiqa full-reference meta-info file (ref_name, "
                f"dist_name, ...): header {header}. Its score direction depends on the "
                f"dataset (LIVE's 'mos' and CSIQ's 'dmos' are lower-is-better, KADID-10k's "
                f"'dmos' is higher-is-better). Pass format=NAME (one of {', '.join(DATASET_FORMATS)})"
            )
        if norm_header(header[mos_idx]) == "dmos":
            raise ValueError(
                f"{csv_path}: the score column is {header[mos_idx]!r}; whether a 'dmos' is "
                f"lower-is-better differs between datasets. Pass format=NAME for a known "
                f"dataset, or mos_col={header[mos_idx]!r} together with the direction "
                f"(lower_better=True or lower_better=False)"
            )
    return generic_format(header[path_idx], header[mos_idx], lower_better=bool(lower_better))


def _parse_score(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        return math.nan


def _resolve_path(root: Path, text: str) -> Path:
    relative = text.strip().replace("\\", "/")
    return Path(os.path.normpath(root / relative)) if relative else root


def read_records(
    csv_path: str | os.PathLike[str],
    image_root: str | os.PathLike[str],
    *,
    format: str | DatasetFormat | None = None,
    path_col: str | None = None,
    mos_col: str | None = None,
) -> list[IQARecord]:
    """One :class:`IQARecord` per data row of ``csv_path``, in file order.

    Scores are returned raw, in the CSV's units and direction (see ``resolve_format(...).lower_better``
    and :class:`MOSScale`). A format's ``skip_rows`` leading rows are left out (LIVE Challenge). Rows
    with an unreadable score get ``mos=nan``, rows with an empty path ``path=image_root``;
    :func:`~temu.data.checks.check_records` reports both.

    Args:
        csv_path: the labels CSV.
        image_root: relative paths are made absolute against it (absolute paths are kept;
            backslashes are read as ``/``).
        format: a registry name or a :class:`DatasetFormat` (e.g. the one :func:`resolve_format` returned).
        path_col, mos_col: override the format's columns.

    Raises:
        ValueError: an unusable header. FileNotFoundError: the CSV or the image root does not exist.
    """
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(image_root))))
    if not root.is_dir():
        raise FileNotFoundError(
            f"image root {root} is not an existing folder; point image_root at the folder "
            f"the CSV's image paths are relative to"
        )
    header, rows = read_table(csv_path)
    fmt = _resolve(header, csv_path, format, path_col, mos_col, None)
    path_idx = header.index(fmt.path_col)
    mos_idx = header.index(fmt.mos_col)
    records = []
    for line, cells in rows[fmt.skip_rows :]:
        path_text = cells[path_idx] if path_idx < len(cells) else ""
        mos_text = cells[mos_idx] if mos_idx < len(cells) else ""
        mos = _parse_score(mos_text)
        cell = None if math.isfinite(mos) else mos_text.strip()
        records.append(IQARecord(_resolve_path(root, path_text), mos, line, cell))
    return records


def reference_columns(header: Sequence[str]) -> list[str]:
    """The columns of ``header`` whose name is one of :data:`REFERENCE_CANDIDATES`, spelled as in the header."""
    return [name for name in header if norm_header(name) in REFERENCE_CANDIDATES]
