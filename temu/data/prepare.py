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
from ..scale import MOSScale
from .checks import check_records
from .formats import DatasetFormat
from .records import BadRow, IQARecord, read_column, read_records, resolve_format
from .splits import apply_split, column_split, random_split

__all__ = [
    "DataOptions",
    "PreparedData",
    "drop_bad_rows",
    "prepare_eval_records",
    "prepare_training_data",
    "read_labelled",
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
    check_images: ``"header"`` opens each image's header, ``"full"`` decodes every image.
    skip_bad: leave unusable rows out (reported) instead of stopping.
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
) -> tuple[list[list[IQARecord]], list[BadRow]]:
    """Check every record of ``parts`` (:func:`~temu.data.checks.check_records`).

    Bad rows stop the run with their list (:class:`~temu.DataError`), or with ``options.skip_bad``
    are logged and left out. ``bad_file`` gets the full list either way. Returns the parts
    without the bad rows, and the bad rows.
    """
    bad = check_records([r for part in parts for r in part], full=options.check_images == "full")
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
    bad_ids = {(b.row, b.path) for b in bad}
    return [[r for r in part if (r.row, r.path) not in bad_ids] for part in parts], bad


@dataclass
class PreparedData:
    """Train and validation records after splitting and checks, the format and the MOS scale (fitted on train)."""

    train: list[IQARecord]
    val: list[IQARecord]
    format: DatasetFormat
    scale: MOSScale
    split: str
    skipped: list[BadRow] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format.name,
            "path_col": self.format.path_col,
            "mos_col": self.format.mos_col,
            "lower_better": self.format.lower_better,
            "split": self.split,
            "train_images": len(self.train),
            "val_images": len(self.val),
            "skipped_rows": len(self.skipped),
            "mos_scale": self.scale.to_dict(),
        }


def _reference_groups(options: DataOptions, fmt: DatasetFormat, records: Sequence[IQARecord]) -> list[str] | None:
    """Reference image of each record for full-reference datasets (KADID-10k, CSIQ, LIVE), else None."""
    if not fmt.ref_col:
        return None
    return read_column(options.csv, records, fmt.ref_col)


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
    if val_csv is not None:
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
        groups = _reference_groups(options, fmt, records)
        try:
            if groups is not None:
                by_record = dict(zip(records, groups))
                train, val = random_split(records, fraction, seed, group_key=by_record.__getitem__)
                split = f"random {fraction:g} of the reference images (seed {seed})"
            else:
                train, val = random_split(records, fraction, seed)
                split = f"random {fraction:g} (seed {seed})"
        except ValueError as err:
            raise DataError(str(err)) from None
    if not train:
        raise DataError(f"the training set is empty ({split})")
    what = f"{options.csv}" + (f" / {val_csv}" if val_csv else "")
    (train, val), bad = drop_bad_rows([train, val], options=options, what=what, log=log, bad_file=bad_file)
    if len(train) < 2 or not val:
        raise DataError(
            f"after leaving out bad rows, {len(train)} training and {len(val)} validation images remain; need >= 2 and >= 1"
        )
    try:
        scale = MOSScale.fit([r.mos for r in train], lower_better=fmt.lower_better)
    except ValueError as err:
        raise DataError(f"cannot normalise the training scores: {err}") from None
    return PreparedData(train, val, fmt, scale, split, bad)


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
    return records, fmt, bad
