"""From command-line data options to checked records: shared by ``temu-finetune`` and ``temu eval``.

Reading a labelled CSV, choosing a split part, checking every row that will be used, and
leaving out (``skip_bad``) or stopping on (:class:`~temu.DataError`) the rows that cannot be used
are written once here, so fine-tuning and evaluation accept and refuse exactly the same data.
"""

from __future__ import annotations

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
    "prepare_training_data",
    "read_labelled",
    "reference_groups",
    "select_part",
]

#: How many bad rows a message lists before "... and N more".
SHOW_BAD = 50


@dataclass(frozen=True)
class DataOptions:
    """Where a labelled dataset is and how to read it (the options ``temu-finetune`` and ``temu eval`` share).

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

    @classmethod
    def from_namespace(cls, args: Any) -> DataOptions:
        """The options from an argparse namespace that has (some of) these fields."""
        names = cls.__dataclass_fields__
        return cls(**{name: getattr(args, name) for name in names if hasattr(args, name)})


def read_labelled(options: DataOptions) -> tuple[list[IQARecord], DatasetFormat]:
    """Records of the CSV and the resolved format (columns and score direction)."""
    if options.lower_better is not None and options.format is not None:
        raise DataError("--lower-better is for CSVs without --format; a --format already knows its score direction")
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
        raise DataError("give --split-file or --split-column, not both")
    try:
        if options.split_file is not None:
            parts = apply_split(records, options.split_file, options.split_index)
            return parts, f"--split-file {options.split_file} (split {options.split_index})"
        if options.split_column is not None:
            return column_split(options.csv, records, options.split_column), f"--split-column {options.split_column}"
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
) -> tuple[list[list[IQARecord]], list[BadRow]]:
    """Check every record of ``parts`` together (:func:`~temu.data.checks.check_records`).

    Bad rows stop the run with their list (:class:`~temu.DataError`), or with ``options.skip_bad``
    are logged and left out. An image on rows of two parts is a bad row of the later part, so
    it never lands in both. ``sources`` names each part's CSV where the parts come from different
    files. ``bad_file`` gets the full list either way. Returns the parts without the bad rows,
    and the bad rows.
    """
    flat = [r for part in parts for r in part]
    labels = None if sources is None else [name for name, part in zip(sources, parts) for _ in part]
    found = find_bad_records(flat, full=options.check_images == "full", sources=labels)
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
            "Fix or remove these rows, or pass --skip-bad to go on without them."
        )
    log(f"--skip-bad: leaving out {len(bad)} unusable row(s) of {what}{saved}:\n  {shown}{more}")
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
    two such columns are an error. ``options.group`` False (``--no-group``) gives None. A row
    with an empty cell is a group of its own.
    """
    if not options.group:
        if options.group_column is not None:
            raise DataError("--group-column and --no-group contradict each other; give one")
        return None
    try:
        header, rows = read_table(options.csv)
        if options.group_column is not None:
            column = header[find_column(header, options.group_column, "group", options.csv)]
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
                    "Choose the one to keep together in a split with --group-column, or pass --no-group"
                )
            column = found[0]
    except (ValueError, FileNotFoundError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(str(err)) from None
    index = header.index(column)
    cells = {line: (cells[index].strip() if index < len(cells) else "") for line, cells in rows}
    return column, [cells.get(r.row) or f"\0row {r.row}" for r in records]


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
    reference images for full-reference datasets).
    """
    records, fmt = read_labelled(options)
    given = [
        name
        for name, value in (
            ("--val", val_csv),
            ("--split-file", options.split_file),
            ("--split-column", options.split_column),
        )
        if value is not None
    ]
    if len(given) > 1 or (given and val_fraction is not None):
        raise DataError(
            f"choose one way to get the validation set, got {', '.join(given + (['--val-fraction'] if val_fraction is not None else []))}"
        )
    grouped: tuple[str, list[str]] | None = None
    if val_csv is not None:
        if Path(val_csv).resolve() == Path(options.csv).resolve():
            raise DataError(
                f"--val {val_csv} is the --train CSV: every validation image would also be trained on. Give "
                "another CSV, or leave --val out to hold out a random --val-fraction"
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
        train, split = records, f"--val {val_csv}"
    elif (selected := select_part(records, options)) is not None:
        parts, split = selected
        train, val = parts["train"], parts[val_part]
        if not val:
            other = "test" if val_part == "val" else "val"
            hint = f"; it has {len(parts[other])} '{other}' items: pass --val-part {other}" if parts[other] else ""
            raise DataError(f"{split} has no '{val_part}' items{hint}")
        split += f", validating on its '{val_part}' part"
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
                    f"each with all its rows (seed {seed}; --no-group splits single rows)"
                )
            else:
                train, val = random_split(records, fraction, seed)
                split = f"random {fraction:g} (seed {seed})"
        except ValueError as err:
            raise DataError(str(err)) from None
    if options.group_column is not None and grouped is None:
        raise DataError(f"--group-column is for the random validation split; {given[0]} already decides the split")
    if not train:
        raise DataError(f"the training set is empty ({split})")
    what = f"{options.csv}" + (f" / {val_csv}" if val_csv else "")
    sources = [f"--train {options.csv}", f"--val {val_csv}"] if val_csv is not None else None
    (train, val), bad = drop_bad_rows(
        [train, val], options=options, what=what, log=log, bad_file=bad_file, sources=sources
    )
    left = "after leaving out bad rows, " if bad else ""
    if len(train) < 2:
        raise DataError(f"{left}the training set has {len(train)} image(s) ({split}); at least 2 are needed")
    if len(val) < 2:
        raise DataError(
            f"{left}the validation set has {len(val)} image(s) ({split}); SRCC and PLCC need at least 2 "
            "to choose the best epoch: give more validation images (e.g. a larger --val-fraction)"
        )
    if len({r.mos for r in val}) == 1:
        raise DataError(
            f"all {len(val)} validation images have the same score ({val[0].mos!r}; {split}): SRCC and PLCC "
            "are undefined on them, so the best epoch could not be chosen. Validate on images with different scores"
        )
    try:
        scale = MOSScale.fit([r.mos for r in train], lower_better=fmt.lower_better)
    except ValueError as err:
        raise DataError(f"cannot normalise the training scores: {err}") from None
    return PreparedData(train, val, fmt, scale, split, bad, grouped[0] if grouped is not None else None)


def prepare_eval_records(
    options: DataOptions, *, part: str, log: Callable[[str], None]
) -> tuple[list[IQARecord], DatasetFormat, list[BadRow]]:
    """The records ``temu eval`` scores: the CSV's rows, or the ``part`` of its split file / column, checked."""
    records, fmt = read_labelled(options)
    selected = select_part(records, options)
    if selected is not None:
        records = selected[0][part]
        if not records:
            raise DataError(f"the split has no '{part}' items; choose another --part")
    (records,), bad = drop_bad_rows([records], options=options, what=str(options.csv), log=log)
    if len(records) < 2:
        raise DataError(f"{len(records)} usable row(s) left; at least 2 are needed for a correlation")
    if len({r.mos for r in records}) == 1:
        raise DataError(
            f"all {len(records)} rows have the same score ({records[0].mos!r}): SRCC, PLCC and KRCC are undefined"
        )
    return records, fmt, bad
