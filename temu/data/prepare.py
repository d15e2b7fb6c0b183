"""From data options to checked records: shared by fine-tuning (one split or several) and evaluation.

Reading a labelled CSV, choosing a split part, checking every row that will be used, and
leaving out (``skip_bad``) or stopping on (:class:`~temu.DataError`) the rows that cannot be used
are written once here, so fine-tuning and evaluation accept and refuse exactly the same data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..model.scale import MOSScale
from .checks import find_bad_records
from .formats import DatasetFormat
from .records import (
    BadRow,
    IQARecord,
    find_column,
    norm_header,
    read_records,
    read_table,
    reference_columns,
    resolve_format,
)
from .splits import apply_split, column_split, random_split

__all__ = [
    "DataOptions",
    "PreparedData",
    "drop_bad_rows",
    "prepare_eval_records",
    "prepare_split_data",
    "prepare_training_data",
    "read_labelled",
    "reference_groups",
    "select_part",
]

#: How many bad rows a message lists before "... and N more".
SHOW_BAD = 50


@dataclass(frozen=True)
class DataOptions:
    """Where a labelled dataset is and how to read it (shared by fine-tuning and evaluation).

    Attributes:
        csv, image_root: the label CSV and the folder its image paths are relative to.
        format: a known dataset layout (:mod:`temu.data.formats`), or None for a generic CSV.
        path_col, mos_col, lower_better: a generic CSV's columns and score direction.
        split_file, split_index, split_column: a pyiqa split file (and which split) or split column.
        check_images: ``"header"`` opens each image's header, ``"full"`` reads every image as the loader does.
        skip_bad: leave unusable rows out (reported) instead of stopping.
        group_column, group: how a random split keeps related rows together (:func:`reference_groups`):
            the column naming each row's reference image (default: detected), or ``group=False`` for none.
    """

    csv: Path
    image_root: Path
    format: str | None = None
    path_col: str | None = None
    mos_col: str | None = None
    lower_better: bool | None = None
    split_file: Path | None = None
    split_index: str = "1"
    split_column: str | int | None = None
    check_images: str = "header"
    skip_bad: bool = False
    group_column: str | None = None
    group: bool = True


def read_labelled(options: DataOptions) -> tuple[list[IQARecord], DatasetFormat]:
    """Records of the CSV and the resolved format (columns and score direction)."""
    if options.lower_better is not None and options.format is not None:
        raise DataError(
            "lower_better is for CSVs without a format; the format already knows its score direction "
            f"(format={options.format!r})"
        )
    try:
        fmt = resolve_format(
            options.csv,
            format=options.format,
            path_col=options.path_col,
            mos_col=options.mos_col,
            lower_better=options.lower_better,
        )
        return read_records(options.csv, options.image_root, format=fmt), fmt
    except (ValueError, FileNotFoundError) as err:
        raise DataError(str(err)) from None


def select_part(records: Sequence[IQARecord], options: DataOptions) -> tuple[dict[str, list[IQARecord]], str] | None:
    """The train/val/test parts of the split file or split column in ``options``, with a description; None if it has neither."""
    if options.split_file is not None and options.split_column is not None:
        raise DataError("give split_file or split_column, not both")
    try:
        if options.split_file is not None:
            parts = apply_split(records, options.split_file, options.split_index)
            return parts, f"split_file={options.split_file} (split_index={options.split_index})"
        if options.split_column is not None:
            return column_split(options.csv, records, options.split_column), f"split_column={options.split_column}"
    except (ValueError, FileNotFoundError) as err:
        raise DataError(str(err)) from None
    return None


def drop_bad_rows(
    parts: Sequence[Sequence[IQARecord]],
    *,
    options: DataOptions,
    what: str,
    log: Callable[[str], None],
    bad_file: Path | None = None,
    sources: Sequence[str] | None = None,
    cache: dict[Path, str | None] | None = None,
) -> tuple[list[list[IQARecord]], list[BadRow]]:
    """Check every record of ``parts`` together (:func:`~temu.data.checks.check_records`).

    An image on rows of two parts is a bad row of the later part, so it never lands in both.

    Args:
        parts: the records of each part (train, val, ...).
        options: the data options (``options.skip_bad``: leave bad rows out instead of stopping).
        what: the parts' name in messages.
        log: where the skipped rows are reported.
        bad_file: gets the full list of bad rows either way.
        sources: each part's CSV, where the parts come from different files.
        cache: each image file's check, kept for the next call
            (:func:`~temu.data.checks.find_bad_records`).

    Returns:
        The parts without the bad rows, and the bad rows.

    Raises:
        DataError: bad rows without ``options.skip_bad``, listing them.
    """
    flat = [r for part in parts for r in part]
    labels = None if sources is None else [name for name, part in zip(sources, parts) for _ in part]
    found = find_bad_records(flat, full=options.check_images == "full", sources=labels, cache=cache)
    bad = [b for _, b in found]
    if not bad:
        return [list(part) for part in parts], []
    lines = [str(b) for b in bad]
    if bad_file is not None:
        bad_file.parent.mkdir(parents=True, exist_ok=True)
        bad_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    shown = "\n  ".join(lines[:SHOW_BAD])
    more = f"\n  ... and {len(lines) - SHOW_BAD} more" if len(lines) > SHOW_BAD else ""
    saved = f" (all listed in {bad_file})" if bad_file is not None else ""
    if not options.skip_bad:
        raise DataError(
            f"{len(bad)} row(s) of {what} cannot be used{saved}:\n  {shown}{more}\n"
            "Fix or remove these rows, or pass skip_bad=True to go on without them."
        )
    log(f"skip_bad=True: leaving out {len(bad)} unusable row(s) of {what}{saved}:\n  {shown}{more}")
    dropped = {position for position, _ in found}
    kept: list[list[IQARecord]] = []
    start = 0
    for part in parts:
        kept.append([r for i, r in enumerate(part, start) if i not in dropped])
        start += len(part)
    return kept, bad


@dataclass
class PreparedData:
    """Train and validation records after splitting and checks, the format and the MOS scale (fitted on train)."""

    train: list[IQARecord]
    val: list[IQARecord]
    format: DatasetFormat
    scale: MOSScale
    split: str
    skipped: list[BadRow] = field(default_factory=list)
    group_column: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format.name,
            "path_col": self.format.path_col,
            "mos_col": self.format.mos_col,
            "lower_better": self.format.lower_better,
            "split": self.split,
            "grouped_by": self.group_column,
            "train_images": len(self.train),
            "val_images": len(self.val),
            "skipped_rows": len(self.skipped),
            "mos_scale": self.scale.to_dict(),
        }


def reference_groups(
    options: DataOptions, fmt: DatasetFormat, records: Sequence[IQARecord]
) -> tuple[str, list[str]] | None:
    """``(column, group of each record)`` for a random split that keeps related rows together, or None.

    The column is ``options.group_column`` when given, else the format's reference column
    (KADID-10k, CSIQ, LIVE), else the one column of a generic CSV named like a reference image
    (:data:`~temu.data.records.REFERENCE_CANDIDATES`: ``ref``, ``reference``, ``ref_img_path``, ...);
    two such columns are an error. ``options.group`` False gives None. A row with an empty cell
    is a group of its own.
    """
    if not options.group:
        if options.group_column is not None:
            raise DataError(f"group_column={options.group_column!r} and group=False contradict each other; give one")
        return None
    try:
        header, rows = read_table(options.csv)
        if options.group_column is not None:
            column = header[find_column(header, options.group_column, "group", options.csv, "group_column")]
        elif fmt.ref_col is not None and any(norm_header(h) == norm_header(fmt.ref_col) for h in header):
            column = header[find_column(header, fmt.ref_col, "reference", options.csv)]
        else:
            used = {fmt.path_col, fmt.mos_col}
            found = [name for name in reference_columns(header) if name not in used]
            if not found:
                return None
            if len(found) > 1:
                raise DataError(
                    f"{options.csv}: {len(found)} columns could name each row's reference image: {found}. "
                    "Choose the one to keep together in a split with group_column=NAME, or pass group=False"
                )
            column = found[0]
    except (ValueError, FileNotFoundError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(str(err)) from None
    index = header.index(column)
    cells = {line: (cells[index].strip() if index < len(cells) else "") for line, cells in rows}
    return column, [cells.get(r.row) or f"\0row {r.row}" for r in records]


@dataclass(frozen=True)
class _Split:
    """One train/validation split before the rows are checked."""

    train: list[IQARecord]
    val: list[IQARecord]
    split: str
    group_column: str | None
    val_csv: Path | None = None


def prepare_training_data(
    options: DataOptions,
    *,
    val_csv: Path | None = None,
    val_image_root: Path | None = None,
    val_part: str = "val",
    val_fraction: float | None = None,
    seed: int = 0,
    log: Callable[[str], None],
    bad_file: Path | None = None,
) -> PreparedData:
    """Read the training CSV (and ``val_csv``), split, check every used row, fit the MOS scale on train.

    The validation set comes from exactly one of: ``val_csv``, the split file / column of
    ``options`` (its ``val_part``), or a seeded random ``val_fraction`` (default 0.2; whole
    reference images for full-reference datasets, see :func:`reference_groups`).

    Args:
        options: the training CSV and how to read it.
        val_csv, val_image_root: a validation CSV (same columns) and its image root (default ``options.image_root``).
        val_part: the part of the split file / column to validate on (``"val"`` or ``"test"``).
        val_fraction: share of the rows (or reference images) held out at random, in (0, 1).
        seed: seed of the random split.
        log: where notes go (bad rows left out with ``skip_bad``).
        bad_file: a file that gets the list of bad rows, if any.

    Returns:
        The checked train and validation records, the format and the MOS scale fitted on train.

    Raises:
        DataError: conflicting options, an unusable CSV or split, bad rows (without ``skip_bad``),
            fewer than 2 training or validation images, constant validation scores.
    """
    records, fmt = read_labelled(options)
    given = [
        name
        for name, value in (
            ("val_csv", val_csv),
            ("split_file", options.split_file),
            ("split_column", options.split_column),
        )
        if value is not None
    ]
    if len(given) > 1 or (given and val_fraction is not None):
        also = ["val_fraction"] if val_fraction is not None else []
        raise DataError(f"choose one way to get the validation set, got {', '.join(given + also)}")
    if val_csv is not None:
        if Path(val_csv).resolve() == Path(options.csv).resolve():
            raise DataError(
                f"val_csv={val_csv} is the training CSV (csv): every validation image would also be trained on. Give "
                "another CSV, or leave val_csv out to hold out a random val_fraction"
            )
        generic = fmt.name == "generic"
        val_options = DataOptions(
            csv=val_csv,
            image_root=val_image_root or options.image_root,
            format=None if generic else fmt.name,
            path_col=fmt.path_col,
            mos_col=fmt.mos_col,
            lower_better=fmt.lower_better if generic else None,
        )
        val, _ = read_labelled(val_options)
        split = _Split(records, val, f"val_csv={val_csv}", None, Path(val_csv))
    else:
        split = _split(records, fmt, options, val_part=val_part, val_fraction=val_fraction, seed=seed)
    return _checked(split, fmt, options, log=log, bad_file=bad_file)


def prepare_split_data(
    options: DataOptions,
    *,
    splits: int,
    seed: int = 0,
    val_fraction: float | None = None,
    val_part: str = "val",
    log: Callable[[str], None],
    bad_file: Path | None = None,
) -> list[PreparedData]:
    """The data of ``splits`` training runs on different splits of one dataset, all checked before any is used.

    Split ``k`` (``k = 0..splits-1``) is what :func:`prepare_training_data` gives for that run:
    with ``options.split_file``, split number ``split_index + k`` of the file; with an int
    ``options.split_column`` K, pyiqa's split column ``K + k``; otherwise the random split with
    seed ``seed + k`` (``val_fraction``, grouped by reference image as :func:`reference_groups`
    says). The CSV is read once and each image file is checked once.

    Args:
        options: the CSV and how to read and split it.
        splits: how many splits, >= 1.
        seed: seed of the first random split.
        val_fraction: share held out at random (default 0.2); not with a split file or column.
        val_part: the part of a split file / column to validate on.
        log: where notes go; bad_file: gets the bad rows of all splits, if any.

    Returns:
        ``splits`` prepared data, in split order.

    Raises:
        DataError: everything :func:`prepare_training_data` refuses, for any split; a split file
            or column without ``splits`` numbered splits; a dataset too small for ``splits``
            different validation sets; two splits with the same validation set.
    """
    if not isinstance(splits, int) or isinstance(splits, bool) or splits < 1:
        raise DataError(f"splits must be an int >= 1, got {splits!r}")
    if (options.split_file is not None or options.split_column is not None) and val_fraction is not None:
        given = "split_file" if options.split_file is not None else "split_column"
        raise DataError(f"choose one way to get the validation set, got {given}, val_fraction")
    records, fmt = read_labelled(options)
    variants = _split_options(options, splits)
    if options.split_file is None and options.split_column is None:
        _check_enough_units(records, fmt, options, splits, 0.2 if val_fraction is None else val_fraction)
    parts = [
        _split(records, fmt, opts, val_part=val_part, val_fraction=val_fraction, seed=seed + k)
        for k, opts in enumerate(variants)
    ]
    seen: dict[frozenset[int], int] = {}
    for k, part in enumerate(parts):
        key = frozenset(r.row for r in part.val)
        if key in seen:
            raise DataError(
                f"splits {seen[key] + 1} and {k + 1} have the same validation set ({part.split}); "
                f"{splits} splits need {splits} different ones: lower splits, or use more data"
            )
        seen[key] = k
    cache: dict[Path, str | None] = {}
    out: list[PreparedData] = []
    for k, (part, opts) in enumerate(zip(parts, variants)):
        quiet = k > 0  # the first split lists the bad rows; the others say how many they leave out
        data = _checked(
            part, fmt, opts, log=(lambda msg: None) if quiet else log, bad_file=None if quiet else bad_file, cache=cache
        )
        if quiet and data.skipped:
            log(f"split {k + 1}: skip_bad=True: leaving out {len(data.skipped)} unusable row(s) (listed above)")
        out.append(data)
    if bad_file is not None and any(d.skipped for d in out):
        every = {(b.row, str(b.path)): b for d in out for b in d.skipped}
        bad_file.write_text("\n".join(str(every[key]) for key in sorted(every)) + "\n", encoding="utf-8")
    return out


def _split_options(options: DataOptions, splits: int) -> list[DataOptions]:
    """The options of each of ``splits`` runs: the split file's / column's numbered splits, or ``options`` itself."""
    if splits == 1:
        return [options]
    if options.split_file is not None:
        try:
            first = int(str(options.split_index).strip())
        except ValueError:
            raise DataError(
                f"splits={splits} takes numbered splits of the split file; split_index={options.split_index!r} "
                "is not a number"
            ) from None
        return [dataclasses.replace(options, split_index=str(first + k)) for k in range(splits)]
    if options.split_column is not None:
        if not isinstance(options.split_column, int):
            raise DataError(
                f"split_column={options.split_column} is one split; splits={splits} needs numbered split columns: "
                f"give split_column=K for pyiqa's ratio802_seed123_split_K columns K..K+{splits - 1}"
            )
        return [dataclasses.replace(options, split_column=options.split_column + k) for k in range(splits)]
    return [options] * splits


def _check_enough_units(
    records: Sequence[IQARecord], fmt: DatasetFormat, options: DataOptions, splits: int, fraction: float
) -> None:
    """Refuse a dataset whose rows (or reference images) cannot give ``splits`` different random validation sets."""
    grouped = reference_groups(options, fmt, records)
    units = len(set(grouped[1])) if grouped is not None else len(records)
    what = f"values of column {grouped[0]!r}" if grouped is not None else "rows"
    if units < 2:
        return  # random_split refuses it, with its own message
    n_val = min(max(1, round(fraction * units)), units - 1)
    different = math.comb(units, n_val)
    if different < splits:
        raise DataError(
            f"the dataset is too small for splits={splits} different validation sets: its {units} {what} give "
            f"{different} different sets of {n_val} (val_fraction={fraction:g}); lower splits, or use more data"
        )


def _split(
    records: list[IQARecord],
    fmt: DatasetFormat,
    options: DataOptions,
    *,
    val_part: str,
    val_fraction: float | None,
    seed: int,
) -> _Split:
    """The train and validation records of the split file / column of ``options``, or of a random split."""
    if (options.split_file is not None or options.split_column is not None) and val_fraction is not None:
        given = "split_file" if options.split_file is not None else "split_column"
        raise DataError(f"choose one way to get the validation set, got {given}, val_fraction")
    grouped: tuple[str, list[str]] | None = None
    if (selected := select_part(records, options)) is not None:
        parts, split = selected
        train, val = parts["train"], parts[val_part]
        if not val:
            other = "test" if val_part == "val" else "val"
            hint = f"; it has {len(parts[other])} '{other}' items: pass val_part={other!r}" if parts[other] else ""
            raise DataError(f"{split} has no '{val_part}' items{hint}")
        split += f", validating on its '{val_part}' part"
        if options.group_column is not None:
            given = "split_file" if options.split_file is not None else "split_column"
            raise DataError(f"group_column is for the random validation split; {given} already decides the split")
    else:
        fraction = 0.2 if val_fraction is None else val_fraction
        grouped = reference_groups(options, fmt, records)
        try:
            if grouped is not None:
                column, groups = grouped
                keys = dict(zip(map(id, records), groups))
                train, val = random_split(records, fraction, seed, group_key=lambda r: keys[id(r)])
                n_groups = len(set(groups))
                split = (
                    f"random {fraction:g} of the {n_groups} values of column {column!r} (reference images), "
                    f"each with all its rows (seed {seed}; group=False splits single rows)"
                )
            else:
                train, val = random_split(records, fraction, seed)
                split = f"random {fraction:g} (seed {seed})"
        except ValueError as err:
            raise DataError(str(err)) from None
    if not train:
        raise DataError(f"the training set is empty ({split})")
    return _Split(train, val, split, grouped[0] if grouped is not None else None)


def _checked(
    split: _Split,
    fmt: DatasetFormat,
    options: DataOptions,
    *,
    log: Callable[[str], None],
    bad_file: Path | None,
    cache: dict[Path, str | None] | None = None,
) -> PreparedData:
    """``split`` without its bad rows, checked for what training needs, with the MOS scale fitted on train."""
    if options.group_column is not None and split.val_csv is not None:
        raise DataError("group_column is for the random validation split; val_csv already decides the split")
    what = f"{options.csv}" + (f" / {split.val_csv}" if split.val_csv else "")
    sources = None
    if split.val_csv is not None:
        sources = [f"the training CSV {options.csv}", f"the validation CSV {split.val_csv}"]
    (train, val), bad = drop_bad_rows(
        [split.train, split.val], options=options, what=what, log=log, bad_file=bad_file, sources=sources, cache=cache
    )
    left = "after leaving out bad rows, " if bad else ""
    if len(train) < 2:
        raise DataError(f"{left}the training set has {len(train)} image(s) ({split.split}); at least 2 are needed")
    if len(val) < 2:
        raise DataError(
            f"{left}the validation set has {len(val)} image(s) ({split.split}); SRCC and PLCC need at least 2 "
            "to choose the best epoch: give more validation images (e.g. a larger val_fraction)"
        )
    if len({r.mos for r in val}) == 1:
        raise DataError(
            f"all {len(val)} validation images have the same score ({val[0].mos!r}; {split.split}): SRCC and PLCC "
            "are undefined on them, so the best epoch could not be chosen. Validate on images with different scores"
        )
    try:
        scale = MOSScale.fit([r.mos for r in train], lower_better=fmt.lower_better)
    except ValueError as err:
        raise DataError(f"cannot normalise the training scores: {err}") from None
    return PreparedData(train, val, fmt, scale, split.split, bad, split.group_column)


def prepare_eval_records(
    options: DataOptions, *, part: str, log: Callable[[str], None]
) -> tuple[list[IQARecord], DatasetFormat, list[BadRow]]:
    """The records ``temu eval`` scores: the CSV's rows, or the ``part`` of its split file / column, checked."""
    records, fmt = read_labelled(options)
    selected = select_part(records, options)
    if selected is not None:
        records = selected[0][part]
        if not records:
            raise DataError(f"{selected[1]} has no {part!r} items (part={part!r}); choose another part")
    (records,), bad = drop_bad_rows([records], options=options, what=str(options.csv), log=log)
    if len(records) < 2:
        raise DataError(f"{len(records)} usable row(s) left; at least 2 are needed for a correlation")
    if len({r.mos for r in records}) == 1:
        raise DataError(
            f"all {len(records)} rows have the same score ({records[0].mos!r}): SRCC, PLCC and KRCC are undefined"
        )
    return records, fmt, bad
