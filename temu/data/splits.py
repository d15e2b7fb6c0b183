"""Train / validation / test splits: pyiqa split files and split columns, and seeded random splits."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from .records import IQARecord, find_column, norm_header, read_table

__all__ = ["SPLIT_PARTS", "apply_split", "column_split", "random_split", "write_split_file"]

SPLIT_PARTS: tuple[str, ...] = ("train", "val", "test")


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
        raise pickle.UnpicklingError(f"split files may only hold dicts, lists and integers, found {module}.{name}")


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
        found = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(
            f"{where}: split {split_index!r} should map 'train'/'val'/'test' to index lists, found {found}"
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
            if isinstance(raw, (bool, np.bool_)) or not isinstance(raw, (int, np.integer)):
                raise ValueError(  # noqa: TRY004 - a malformed file, not a wrong argument
                    f"{split_file}: split {split_index!r} {part} holds {raw!r}; expected row indices"
                )
            i = int(raw)
            if not 0 <= i < len(records):
                raise ValueError(
                    f"{split_file}: split {split_index!r} {part} has index {i}, but there are "
                    f"{len(records)} records (valid 0..{len(records) - 1}). Is this the split "
                    f"file of this CSV, read with the same format?"
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
            raise ValueError(f"split {key!r} has parts {sorted(unknown)}; allowed: {SPLIT_PARTS}")
        clean[key] = {part: [int(i) for i in indices] for part, indices in entry.items()}
    with Path(path).open("wb") as handle:
        pickle.dump(clean, handle, protocol=4)


def column_split(
    csv_path: str | os.PathLike[str],
    records: Sequence[IQARecord],
    column: str | int,
    *,
    split_ratio: str = "802",
) -> dict[str, list[IQARecord]]:
    """Train/val/test records from a split column of a pyiqa meta-info CSV.

    Newer pyiqa CSVs hold their splits as columns (``official_split``, ``ratio802_seed123_split_01``,
    ...) whose cells are ``train``, ``val`` or ``test``. As in pyiqa, record ``i`` takes the label of
    data row ``i`` of the CSV (for LIVE Challenge, 7 rows skipped, that is pyiqa's behaviour, not a
    row-by-row match). Rows with other labels are in no part.

    Args:
        csv_path: the meta-info CSV.
        records: its records, in file order.
        column: the column's name, or k for pyiqa's ``ratio{split_ratio}_seed123_split_{k:02d}``.
        split_ratio: the ratio in that name.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.
    """
    header, rows = read_table(csv_path)
    name = f"ratio{split_ratio}_seed123_split_{column:02d}" if isinstance(column, int) else column
    split_columns = [h for h in header if "split" in h.lower()]
    if not any(norm_header(h) == norm_header(name) for h in header):
        raise ValueError(f"{csv_path} has no split column {name!r}; its split columns are {split_columns}")
    idx = find_column(header, name, "split", csv_path, "split_column")
    if len(records) > len(rows):
        raise ValueError(
            f"{len(records)} records but {csv_path} has only {len(rows)} data rows; "
            f"were the records read from this CSV?"
        )
    labels = [(cells[idx].strip().lower() if idx < len(cells) else "") for _, cells in rows]
    result: dict[str, list[IQARecord]] = {part: [] for part in SPLIT_PARTS}
    for record, label in zip(records, labels):
        if label in result:
            result[label].append(record)
    if not any(result.values()):
        found = sorted(set(labels))[:10]
        raise ValueError(f"{csv_path}: column {name!r} has no 'train'/'val'/'test' cells (found {found})")
    return result


_T = TypeVar("_T")


def random_split(
    records: Sequence[_T],
    val_fraction: float,
    seed: int,
    *,
    group_key: Callable[[_T], Hashable] | None = None,
) -> tuple[list[_T], list[_T]]:
    """Deterministic random (train, val) split; both parts keep the input order.

    Args:
        records: the items to split.
        val_fraction: ``round(val_fraction * N)`` items go to val (at least 1, and at least 1 stays in train).
        seed: the same records, fraction and seed always give the same split.
        group_key: whole groups move together (e.g. all distorted versions of one reference image),
            and the fraction counts groups.

    Returns:
        ``(train, val)``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    keys: list[Hashable] = list(range(len(records))) if group_key is None else [group_key(r) for r in records]
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
