"""Reading IQA datasets: CSV -> records -> splits -> checks -> torch Dataset.

A dataset is a CSV with one row per image (an image path and a score) plus an
image root folder the paths are relative to. The known pyiqa meta-info layouts
(KonIQ-10k, SPAQ, LIVE Challenge, KADID-10k, CSIQ, LIVE, FLIVE, AGIQA-3K) are
in :mod:`temu.formats`, with the folder each expects as image root.

Generic CSVs: the columns come from ``path_col``/``mos_col`` when given
(case-insensitive header match), otherwise from the header names. The path
column is the one header among ``PATH_CANDIDATES`` and the score column the one
among ``MOS_CANDIDATES`` (case-insensitive, spaces and hyphens read as ``_``).
Detection refuses rather than guesses: no match or more than one match is an
error listing the header. It also refuses a ``dmos`` column and pyiqa
full-reference files (``ref_name`` + ``dist_name``), because whether their score
is lower-is-better depends on the dataset (CSIQ/LIVE yes, KADID-10k no); pass
``format`` or explicit columns for those.

``read_records`` returns exactly one record per data row, in file order, so the
positional indices of pyiqa split files apply to it. A row that does not parse
is kept (MOS NaN for a missing or non-numeric score, the image root itself for
an empty path) and reported by ``check_records`` with its line number, instead
of stopping the read.

Scores: ``MOSScale`` maps raw scores to [0, 1] with 1 = best. For DMOS
(``lower_better=True``) it flips, ``1 - (x - low) / (high - low)``, as pyiqa's
``mos_normalize`` does; it does not negate.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pickle
import stat
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from PIL import Image

from temu.formats import DATASET_FORMATS, DatasetFormat, generic_format, get_format

__all__ = [
    "DATASET_FORMATS",
    "MOS_CANDIDATES",
    "PATH_CANDIDATES",
    "SPLIT_PARTS",
    "BadRow",
    "DatasetFormat",
    "IQADataset",
    "IQARecord",
    "MOSScale",
    "apply_split",
    "check_records",
    "column_split",
    "get_format",
    "random_split",
    "read_records",
    "resolve_format",
    "write_split_file",
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

SPLIT_PARTS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class IQARecord:
    """One image: absolute ``path``, raw score ``mos``, 1-based CSV line ``row``."""

    path: Path
    mos: float
    row: int


@dataclass(frozen=True)
class BadRow:
    """A CSV row that cannot be used: its line number, image path and why."""

    row: int
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.path}: {self.reason}"


# --------------------------------------------------------------------- CSV


def _norm_header(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _read_table(
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
        raise ValueError(
            f"{path} is not UTF-8 text ({error}); re-save it as UTF-8 CSV"
        ) from None
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
        raise ValueError(
            f"{path}, line {reader.line_num}: malformed CSV ({error})"
        ) from None
    if header is None:
        raise ValueError(
            f"{path} is empty: expected a header row and one row per image"
        )
    return header, rows


def _find_column(header: list[str], wanted: str, what: str, csv_path: Any) -> int:
    target = _norm_header(wanted)
    hits = [i for i, name in enumerate(header) if _norm_header(name) == target]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ValueError(
            f"{csv_path}: no {what} column named {wanted!r}; the header is {header}. "
            f"Pass the right name with {what}_col= (--{what}-col)"
        )
    raise ValueError(
        f"{csv_path}: the header has {len(hits)} columns named {wanted!r} "
        f"(positions {hits}); rename the duplicates. Header: {header}"
    )


def _detect_column(
    header: list[str], candidates: tuple[str, ...], what: str, csv_path: Any
) -> int:
    hits = [i for i, name in enumerate(header) if _norm_header(name) in candidates]
    if len(hits) == 1:
        return hits[0]
    flag = f"{what}_col= (--{what}-col)"
    if not hits:
        raise ValueError(
            f"{csv_path}: could not find the {what} column. The header is {header}; "
            f"recognised names are {list(candidates)} (case-insensitive). "
            f"Name the column with {flag} or pass format= (--format) for a known dataset"
        )
    found = [header[i] for i in hits]
    raise ValueError(
        f"{csv_path}: {len(hits)} columns could be the {what} column: {found}. "
        f"Choose one with {flag}. Header: {header}"
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

    ``format`` (name or DatasetFormat) gives columns and direction; explicit
    ``path_col``/``mos_col`` override its columns; ``lower_better`` overrides its
    direction (generic CSVs default to higher-is-better). The returned
    format's ``path_col``/``mos_col`` are spelled as in the header.
    """
    header, _ = _read_table(csv_path)
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
            present = [
                n
                for n in names
                if any(_norm_header(h) == _norm_header(n) for h in header)
            ]
            if not present:
                raise ValueError(
                    f"{csv_path} does not look like the {fmt.title or fmt.name} meta-info file: "
                    f"expected a path column {list(names)}, the header is {header}. "
                    f"Check --format, or give the columns with --path-col/--mos-col"
                )
            path_col = present[0]
        path_idx = _find_column(header, path_col, "path", csv_path)
        mos_idx = _find_column(header, mos_col or fmt.mos_col, "mos", csv_path)
        direction = fmt.lower_better if lower_better is None else lower_better
        return replace(
            fmt,
            path_col=header[path_idx],
            mos_col=header[mos_idx],
            lower_better=direction,
        )

    normalised = {_norm_header(h) for h in header}
    explicit_mos = mos_col is not None
    if path_col is not None:
        path_idx = _find_column(header, path_col, "path", csv_path)
    else:
        path_idx = _detect_column(header, PATH_CANDIDATES, "path", csv_path)
    if mos_col is not None:
        mos_idx = _find_column(header, mos_col, "mos", csv_path)
    else:
        mos_idx = _detect_column(header, MOS_CANDIDATES, "mos", csv_path)
    if not explicit_mos and lower_better is None:
        if {"ref_name", "dist_name"} <= normalised:
            raise ValueError(
                f"{csv_path} looks like a pyiqa full-reference meta-info file (ref_name, "
                f"dist_name, ...): header {header}. Its score direction depends on the "
                f"dataset (LIVE's 'mos' and CSIQ's 'dmos' are lower-is-better, KADID-10k's "
                f"'dmos' is higher-is-better). Pass --format ({', '.join(DATASET_FORMATS)})"
            )
        if _norm_header(header[mos_idx]) == "dmos":
            raise ValueError(
                f"{csv_path}: the score column is {header[mos_idx]!r}; whether a 'dmos' is "
                f"lower-is-better differs between datasets. Pass --format for a known "
                f"dataset, or --mos-col {header[mos_idx]} together with the direction "
                f"(lower_better=True/False)"
            )
    return generic_format(
        header[path_idx], header[mos_idx], lower_better=bool(lower_better)
    )


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
    """One IQARecord per data row of ``csv_path``, in file order.

    Paths are made absolute against ``image_root`` (absolute paths in the CSV
    are kept; backslashes are read as '/'). Scores are returned raw, in the
    CSV's units and direction: see ``resolve_format(...).lower_better`` and
    ``MOSScale``. ``format`` is a registry name or a DatasetFormat, e.g. the
    one ``resolve_format`` returned. A format's ``skip_rows`` leading rows are
    left out (LIVE Challenge). Rows with an unreadable score get ``mos=nan``
    and rows with an empty path get ``path=image_root``; ``check_records``
    reports both.
    Raises ValueError for an unusable header and FileNotFoundError when the
    CSV or the image root does not exist.
    """
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(image_root))))
    if not root.is_dir():
        raise FileNotFoundError(
            f"image root {root} is not an existing folder; point --image-root at the folder "
            f"the CSV's image paths are relative to"
        )
    header, rows = _read_table(csv_path)
    fmt = _resolve(header, csv_path, format, path_col, mos_col, None)
    path_idx = header.index(fmt.path_col)
    mos_idx = header.index(fmt.mos_col)
    records = []
    for line, cells in rows[fmt.skip_rows :]:
        path_text = cells[path_idx] if path_idx < len(cells) else ""
        mos_text = cells[mos_idx] if mos_idx < len(cells) else ""
        records.append(
            IQARecord(_resolve_path(root, path_text), _parse_score(mos_text), line)
        )
    return records


# ------------------------------------------------------------------ splits


class _SplitUnpickler(pickle.Unpickler):
    """Unpickler for split files: builtins only, plus numpy ints and arrays."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy", "dtype"),
            ("numpy", "ndarray"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy._core.multiarray", "_reconstruct"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"split files may only hold dicts, lists and integers, found {module}.{name}"
        )


def _load_split_file(split_file: str | os.PathLike[str]) -> Any:
    path = Path(split_file)
    try:
        with path.open("rb") as handle:
            return _SplitUnpickler(handle).load()
    except FileNotFoundError:
        raise FileNotFoundError(f"split file not found: {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(
            f"{path} is not a pyiqa split file (a pickle of "
            f"{{split_index: {{'train': [...], 'val': [...], 'test': [...]}}}}): {error}"
        ) from None


def _pick_split(splits: Any, split_index: int | str, where: Any) -> Mapping[str, Any]:
    if not isinstance(splits, dict):
        raise ValueError(  # noqa: TRY004 - a malformed file, not a wrong argument
            f"{where}: expected a dict of split_index -> {{'train','val','test'}} index lists, "
            f"found {type(splits).__name__}"
        )
    candidates: list[Any] = [split_index]
    text = str(split_index).strip()
    if text.lstrip("-").isdigit():
        candidates += [int(text), text]
    for key in candidates:
        if key in splits:
            entry = splits[key]
            break
    else:
        raise ValueError(
            f"{where}: no split {split_index!r}; the file has splits {sorted(splits, key=str)} "
            f"(pyiqa numbers them from 1)"
        )
    if not isinstance(entry, dict) or not set(entry) <= set(SPLIT_PARTS):
        found = (
            sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
        )
        raise ValueError(
            f"{where}: split {split_index!r} should map 'train'/'val'/'test' to index lists, "
            f"found {found}"
        )
    return entry


def apply_split(
    records: Sequence[IQARecord],
    split_file: str | os.PathLike[str],
    split_index: int | str = 1,
) -> dict[str, list[IQARecord]]:
    """Select train/val/test records with a pyiqa split file.

    A pyiqa split file is a pickle ``{split_index: {"train": [i, ...], "val":
    [...], "test": [...]}}``; split indices start at 1, and each ``i`` is a
    0-based position among the CSV's data rows (after the format's
    ``skip_rows``), i.e. an index into the full ``read_records`` result. Missing
    parts come back empty. Only builtins and numpy integers are unpickled.
    Raises ValueError for an index out of range or used twice.
    """
    entry = _pick_split(_load_split_file(split_file), split_index, split_file)
    result: dict[str, list[IQARecord]] = {}
    seen: dict[int, str] = {}
    for part in SPLIT_PARTS:
        chosen = []
        for raw in list(entry.get(part, [])):
            if isinstance(raw, (bool, np.bool_)) or not isinstance(
                raw, (int, np.integer)
            ):
                raise ValueError(  # noqa: TRY004 - a malformed file, not a wrong argument
                    f"{split_file}: split {split_index!r} {part} holds {raw!r}; expected row indices"
                )
            i = int(raw)
            if not 0 <= i < len(records):
                raise ValueError(
                    f"{split_file}: split {split_index!r} {part} has index {i}, but there are "
                    f"{len(records)} records (valid 0..{len(records) - 1}). Is this the split "
                    f"file of this CSV, read with the same --format?"
                )
            if i in seen:
                raise ValueError(
                    f"{split_file}: index {i} is in both {seen[i]} and {part} of split "
                    f"{split_index!r}; a split file must not repeat an item"
                )
            seen[i] = part
            chosen.append(records[i])
        result[part] = chosen
    return result


def write_split_file(
    path: str | os.PathLike[str],
    splits: Mapping[int | str, Mapping[str, Sequence[int]]],
) -> None:
    """Write ``{split_index: {"train"/"val"/"test": indices}}`` as a pyiqa split pickle."""
    clean: dict[int | str, dict[str, list[int]]] = {}
    for key, entry in splits.items():
        unknown = set(entry) - set(SPLIT_PARTS)
        if unknown:
            raise ValueError(
                f"split {key!r} has parts {sorted(unknown)}; allowed: {SPLIT_PARTS}"
            )
        clean[key] = {
            part: [int(i) for i in indices] for part, indices in entry.items()
        }
    with Path(path).open("wb") as handle:
        pickle.dump(clean, handle, protocol=4)


def column_split(
    csv_path: str | os.PathLike[str],
    records: Sequence[IQARecord],
    column: str | int,
    *,
    split_ratio: str = "802",
) -> dict[str, list[IQARecord]]:
    """Select train/val/test records with a split column of a pyiqa meta-info CSV.

    Newer pyiqa CSVs hold their splits as columns (``official_split``,
    ``ratio802_seed123_split_01`` ...) whose cells are 'train', 'val' or
    'test'. An int ``column`` k means pyiqa's ``ratio{split_ratio}_seed123_split_{k:02d}``.
    As in pyiqa, record ``i`` takes the label of data row ``i`` of the CSV; for
    LIVE Challenge (7 rows skipped) that is pyiqa's behaviour, not a
    row-by-row match. Rows with other labels are in no part.
    """
    header, rows = _read_table(csv_path)
    name = (
        f"ratio{split_ratio}_seed123_split_{column:02d}"
        if isinstance(column, int)
        else column
    )
    split_columns = [h for h in header if "split" in h.lower()]
    if not any(_norm_header(h) == _norm_header(name) for h in header):
        raise ValueError(
            f"{csv_path} has no split column {name!r}; its split columns are {split_columns}"
        )
    idx = _find_column(header, name, "split", csv_path)
    if len(records) > len(rows):
        raise ValueError(
            f"{len(records)} records but {csv_path} has only {len(rows)} data rows; "
            f"were the records read from this CSV?"
        )
    labels = [
        (cells[idx].strip().lower() if idx < len(cells) else "") for _, cells in rows
    ]
    result: dict[str, list[IQARecord]] = {part: [] for part in SPLIT_PARTS}
    for record, label in zip(records, labels):
        if label in result:
            result[label].append(record)
    if not any(result.values()):
        found = sorted(set(labels))[:10]
        raise ValueError(
            f"{csv_path}: column {name!r} has no 'train'/'val'/'test' cells (found {found})"
        )
    return result


_T = TypeVar("_T")


def random_split(
    records: Sequence[_T],
    val_fraction: float,
    seed: int,
    *,
    group_key: Callable[[_T], Hashable] | None = None,
) -> tuple[list[_T], list[_T]]:
    """Deterministic random (train, val) split; both keep the input order.

    ``round(val_fraction * N)`` items go to val (at least 1, and at least 1
    stays in train). With ``group_key`` whole groups move together (e.g. all
    distorted versions of one reference image), and the fraction counts groups.
    The same records, fraction and seed always give the same split.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}"
        )
    keys: list[Hashable] = (
        list(range(len(records)))
        if group_key is None
        else [group_key(r) for r in records]
    )
    unique = list(dict.fromkeys(keys))
    if len(unique) < 2:
        what = "records" if group_key is None else "groups"
        raise ValueError(f"need at least 2 {what} to split, got {len(unique)}")
    n_val = min(max(1, round(val_fraction * len(unique))), len(unique) - 1)
    rng = np.random.default_rng(seed)
    val_keys = {unique[i] for i in rng.permutation(len(unique))[:n_val]}
    train = [r for r, k in zip(records, keys) if k not in val_keys]
    val = [r for r, k in zip(records, keys) if k in val_keys]
    return train, val


# ------------------------------------------------------------------ checks


def check_records(records: Sequence[IQARecord], *, full: bool = False) -> list[BadRow]:
    """Every record that cannot be trained on, with its CSV line and the reasons.

    Checks: the score is a finite number; the path is an existing, non-empty
    file; PIL recognises it (``Image.open`` reads only the header). With
    ``full=True`` each image is also decoded completely, which catches
    truncated or corrupt image data.

    Cost (measured on this project's 2-core CPU box, warm disk cache): the
    header check takes ~0.14 ms per image, so ~25 s for FLIVE's ~160k items
    plus disk time. ``full=True`` decodes every pixel: ~5 ms for a 512x384
    JPEG (KonIQ-10k: ~1 min) but up to ~350 ms for a 4000x3000 phone photo
    (SPAQ: up to ~1 h). Run the full check once after getting a dataset.
    """
    bad: list[BadRow] = []
    for record in records:
        reasons = []
        if not math.isfinite(record.mos):
            reasons.append(
                f"score is not a finite number ({record.mos}): the CSV cell is empty or not a number"
            )
        problem = _image_problem(record.path, full)
        if problem:
            reasons.append(problem)
        if reasons:
            bad.append(BadRow(record.row, record.path, "; ".join(reasons)))
    return bad


def _image_problem(path: Path, full: bool) -> str | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return "image file not found"
    except OSError as error:
        return f"cannot access the image file ({error.strerror or error})"
    if stat.S_ISDIR(info.st_mode):
        return "path is a folder, not an image file (is the CSV's path cell empty?)"
    if not stat.S_ISREG(info.st_mode):
        return "path is not a regular file"
    if info.st_size == 0:
        return "image file is empty (0 bytes)"
    try:
        with Image.open(path) as image:
            if full:
                image.load()
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad data
        return f"not readable as an image ({type(error).__name__}: {error})"
    return None


# ------------------------------------------------------------------- scale


@dataclass(frozen=True)
class MOSScale:
    """Linear map between raw scores in [low, high] and [0, 1], 1 = best.

    With ``lower_better`` (DMOS) the map is flipped: ``1 - (x - low) / (high - low)``.
    Values outside [low, high] (e.g. in a validation set) map outside [0, 1];
    nothing is clipped.
    """

    low: float
    high: float
    lower_better: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.lower_better, (bool, np.bool_)):
            raise TypeError(
                f"lower_better must be True or False, got {self.lower_better!r}"
            )
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(
                value, (int, float, np.number)
            ):
                raise TypeError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "lower_better", bool(self.lower_better))
        if not self.high > self.low:
            raise ValueError(
                f"high must be greater than low, got low={self.low}, high={self.high}; "
                f"fit on at least two different scores"
            )

    @classmethod
    def fit(
        cls, records: Sequence[IQARecord], *, lower_better: bool = False
    ) -> MOSScale:
        """Scale from the min and max score of ``records`` (use the training set)."""
        if not records:
            raise ValueError("cannot fit a MOSScale on no records")
        scores = np.array([r.mos for r in records], dtype=np.float64)
        bad = ~np.isfinite(scores)
        if bad.any():
            first = records[int(np.flatnonzero(bad)[0])]
            raise ValueError(
                f"{int(bad.sum())} record(s) have a non-finite score, first at CSV row "
                f"{first.row}; drop the rows reported by check_records first"
            )
        return cls(float(scores.min()), float(scores.max()), lower_better)

    def normalise(self, values: Any) -> Any:
        """Raw scores -> [0, 1], higher = better. Same type as a float/array/tensor input."""
        unit = (_as_numeric(values) - self.low) / (self.high - self.low)
        return 1.0 - unit if self.lower_better else unit

    def denormalise(self, values: Any) -> Any:
        """Inverse of ``normalise``: [0, 1] -> raw scores in the dataset's direction."""
        unit = _as_numeric(values)
        if self.lower_better:
            unit = 1.0 - unit
        return unit * (self.high - self.low) + self.low

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints/JSON: ``{"low", "high", "lower_better"}``."""
        return {"low": self.low, "high": self.high, "lower_better": self.lower_better}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MOSScale:
        """Rebuild from ``to_dict`` output."""
        missing = {"low", "high", "lower_better"} - set(data)
        if missing:
            raise ValueError(
                f"MOSScale dict is missing {sorted(missing)}; got keys {sorted(data)}"
            )
        return cls(data["low"], data["high"], data["lower_better"])


def _as_numeric(values: Any) -> Any:
    if isinstance(values, torch.Tensor):
        return values if values.is_floating_point() else values.double()
    if isinstance(values, (int, float, np.number)) and not isinstance(values, bool):
        return float(values)
    return np.asarray(values, dtype=np.float64)


# ----------------------------------------------------------------- dataset


class IQADataset(torch.utils.data.Dataset):
    """Records -> ``(image, normalised_mos, index)`` for a DataLoader.

    Holds only the records and the scale; each item calls ``load(path)`` (which
    returns the image tensor, e.g. ``(3, H, W)`` float) so no decoded image is
    kept. ``normalised_mos`` is a float32 scalar tensor in [0, 1] for the
    training set (1 = best); ``index`` is the item's position in ``records``.
    """

    def __init__(
        self,
        records: Sequence[IQARecord],
        load: Callable[[Path], torch.Tensor],
        scale: MOSScale,
    ) -> None:
        if not callable(load):
            raise TypeError(
                f"load must be a function Path -> Tensor, got {type(load).__name__}"
            )
        if not isinstance(scale, MOSScale):
            raise TypeError(f"scale must be a MOSScale, got {type(scale).__name__}")
        records = tuple(records)
        for position, record in enumerate(records):
            if not isinstance(record, IQARecord):
                raise TypeError(
                    f"records[{position}] is a {type(record).__name__}, expected IQARecord"
                )
            if not math.isfinite(record.mos):
                raise ValueError(
                    f"record from CSV row {record.row} ({record.path}) has score {record.mos}; "
                    f"remove the rows reported by check_records before building the dataset"
                )
        self.records = records
        self.load = load
        self.scale = scale

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if index < 0:
            index += len(self.records)
        record = self.records[index]
        image = self.load(record.path)
        if not isinstance(image, torch.Tensor):
            raise TypeError(
                f"load({record.path}) returned {type(image).__name__}; it must return a torch.Tensor"
            )
        target = torch.tensor(self.scale.normalise(record.mos), dtype=torch.float32)
        return image, target, index
