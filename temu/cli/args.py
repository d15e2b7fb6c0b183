"""Argument groups and value parsers shared by ``temu`` and ``temu-finetune``.

Only argparse and the standard library are imported here (plus temu's torch-free precision
names), so ``--help`` and ``--version`` answer without loading torch.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from ..model.attributes import DEFAULT_ATTRIBUTES, unknown_attribute_message
from ..precision import AUTO_RULE, PRECISIONS

#: Exit status of a usage error (bad option, unusable file), as argparse uses it.
USAGE_ERROR = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr: ``prog: error: message``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to options whose help does not mention a default and whose default is set."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.option_strings == []:
            return text
        return text + " (default: %(default)s)"


def usage_error(prog: str, message: str) -> int:
    """Print a one-line usage error (``prog: error: message``) and return the usage exit status."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


N = TypeVar("N", int, float)


def checked_number(convert: Callable[[str], N], ok: Callable[[N], bool], expected: str) -> Callable[[str], N]:
    """An argparse ``type``: ``convert(text)`` when it converts and ``ok`` accepts it, else the
    one-line error "expected <expected>, got '<text>'"."""

    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = checked_number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = checked_number(int, lambda v: v >= 0, "an integer >= 0")
#: A number strictly between 0 and 1.
fraction = checked_number(float, lambda v: 0.0 < v < 1.0, "a fraction between 0 and 1 (exclusive)")
positive_float = checked_number(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
non_negative_float = checked_number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")


def parse_layers(text: str | None) -> None | int | list[int]:
    """``--layers``: ``all`` / none, ``K`` (the first K layers), ``A-B`` or ``A,B,C`` (numbered from 1)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    text = text.strip()
    try:
        if text.isdigit():
            return int(text)
        chosen: list[int] = []
        for part in text.split(","):
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                chosen.extend(range(a, b + 1))
            else:
                chosen.append(int(part))
        return chosen
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers {text!r}: expected 'all', K (the first K layers), a range 'A-B' or a list 'A,B,C' (layers numbered from 1)"
        ) from None


def image_size(text: str) -> int | None:
    """``--image-size``: a positive int, or ``native`` for each image's own size."""
    if text.strip().lower() in ("native", "none", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 1:
        raise argparse.ArgumentTypeError(f"--image-size {text!r}: expected a positive int (e.g. 448) or 'native'")
    return value


def attribute_names(text: str) -> list[str]:
    """``--attributes``: ``all``, or default attribute names separated by commas (``sharpness,noise``)."""
    if text.strip().lower() == "all":
        return list(DEFAULT_ATTRIBUTES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected 'all' or names such as sharpness,noise, got {text!r}")
    for name in names:
        if name not in DEFAULT_ATTRIBUTES:
            raise argparse.ArgumentTypeError(
                unknown_attribute_message(name, custom_prompts=False)
                + " (give image paths before --attributes, or write --attributes all)"
            )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"an attribute is listed twice in {text!r}")
    return names


#: ``--scale`` values (:data:`temu.model.calibration.SCALES`, kept here so --help needs no numpy).
SCALE_NAMES = ("raw", "mos", "percentile")


def scale_names(text: str) -> list[str]:
    """``--scale``: ``raw``, ``mos``, ``percentile``, or calibrated scales separated by commas (``mos,percentile``)."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    bad = [name for name in names if name not in SCALE_NAMES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"expected raw, mos, percentile or mos,percentile, got {text!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a scale is listed twice in {text!r}")
    return names


def split_column(text: str) -> str | int:
    """``--split-column``: a column name, or K for pyiqa's ``ratio802_seed123_split_K``."""
    return int(text) if text.strip().isdigit() else text


# ---------------------------------------------------------------- library fields -> flags

#: The flags of the data options both commands share, by the library's field names
#: (:class:`temu.data.DataOptions`). A key ``name=value`` maps that exact spelling.
DATA_FLAGS: dict[str, str] = {
    "image_root": "--image-root",
    "format": "--format",
    "path_col": "--path-col",
    "mos_col": "--mos-col",
    "lower_better=True": "--lower-better",
    "lower_better=False": "no --lower-better",
    "split_file": "--split-file",
    "split_index": "--split-index",
    "split_column": "--split-column",
    "check_images": "--check-images",
    "skip_bad=True": "--skip-bad",
    "group_column": "--group-column",
    "group=False": "--no-group",
}

#: The flags of the run options both commands share.
RUNTIME_FLAGS: dict[str, str] = {
    "batch_size": "--batch-size",
    "device": "--device",
    "workers": "--workers",
    "precision": "--precision",
}


def flag_message(message: str, flags: Mapping[str, str], *, bare: Collection[str] = ()) -> str:
    """``message`` from the library (which names arguments) with a command's flags in their place.

    ``flags`` maps a field to its flag. ``name=value`` becomes ``--flag value`` (quotes dropped),
    and a bare field name with an underscore (``val_fraction``) or listed in ``bare`` becomes the
    flag, as do ``name=True`` and ``name=`` without a value (switches). A key that is not a plain
    name (``group=False``, ``the training CSV (csv)``) is replaced where it occurs as written. A
    name inside a path or a longer word is left alone.
    """
    exact = sorted((k for k in flags if not k.isidentifier()), key=len, reverse=True)
    names = sorted((k for k in flags if k.isidentifier()), key=len, reverse=True)
    if not exact and not names:
        return message
    alternatives = [re.escape(k) for k in exact]
    if names:
        alternatives.append(
            r"(?P<name>" + "|".join(map(re.escape, names)) + r")(?:(?P<eq>=)(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;)]+)?)?"
        )
    pattern = re.compile(r"(?<![\w./-])(?:" + "|".join(alternatives) + r")(?![\w/-])")

    def replace(match: re.Match[str]) -> str:
        name = match.group("name") if names else None
        if name is None:
            return flags[match.group(0)]
        value = match.group("value")
        if value is None and match.group("eq"):
            return flags[name]
        if value is None:
            return flags[name] if ("_" in name or name in bare) else match.group(0)
        if value == "True":
            return flags[name]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        return f"{flags[name]} {value}"

    return pattern.sub(replace, message)


class PerDataset(argparse.Action):
    """An option that belongs to the ``--data`` given before it (``temu eval``), or to every ``--data`` when
    given before the first one. Values go to ``namespace.datasets[-1]`` or ``namespace.dataset_defaults``."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        value = self.const if self.nargs == 0 else values
        datasets = getattr(namespace, "datasets", None)
        if datasets:
            target, where = datasets[-1], f"--data {datasets[-1]['csv']}"
        else:
            if getattr(namespace, "dataset_defaults", None) is None:
                namespace.dataset_defaults = {}
            target, where = namespace.dataset_defaults, "all --data (given before the first --data)"
        if self.dest in target:
            parser.error(f"{option} is given twice for {where}")
        target[self.dest] = value


class NewDataset(argparse.Action):
    """``--data CSV``: starts a dataset that the per-dataset options after it belong to."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        namespace.datasets = [*(getattr(namespace, "datasets", None) or []), {"csv": values}]


def _option(p: argparse._ActionsContainer, per_dataset: bool, *flags: str, **kwargs: Any) -> None:
    """``p.add_argument(*flags, **kwargs)``, or its :class:`PerDataset` form (defaults applied later)."""
    if per_dataset:
        action = kwargs.pop("action", "store")
        if action in ("store_true", "store_false"):
            kwargs.update(nargs=0, const=action == "store_true")
        kwargs.pop("required", None)
        kwargs.update(action=PerDataset, default=argparse.SUPPRESS)
    p.add_argument(*flags, **kwargs)


def data_options(values: Mapping[str, Any]) -> Any:
    """A :class:`temu.data.DataOptions` from parsed values named as its fields (missing ones keep their defaults)."""
    import dataclasses

    from ..data.prepare import DataOptions

    names = {f.name for f in dataclasses.fields(DataOptions)}
    return DataOptions(**{name: values[name] for name in names if name in values})


def add_data_arguments(
    p: argparse._ActionsContainer, *, csv_flag: str, per_dataset: bool = False, required: bool = True
) -> None:
    """The dataset options shared by ``temu-finetune`` (``--train``), ``temu eval`` (``--data``) and ``temu calibrate``.

    ``per_dataset``: ``csv_flag`` may be repeated, and every other option here belongs to the
    ``csv_flag`` before it (:class:`PerDataset`); ``--image-root`` is then checked by the caller.
    ``required=False``: the dataset is optional, and ``--image-root`` defaults to the CSV's folder.
    """
    if per_dataset:
        p.add_argument(
            csv_flag,
            dest="datasets",
            action=NewDataset,
            type=Path,
            required=True,
            metavar="CSV",
            help="CSV with an image path column and a score column; repeat it for several datasets",
        )
    else:
        p.add_argument(
            csv_flag,
            dest="csv",
            type=Path,
            required=required,
            default=None,
            metavar="CSV",
            help="CSV with an image path column and a score column",
        )

    def opt(*flags: str, **kwargs: Any) -> None:
        _option(p, per_dataset, *flags, **kwargs)

    opt(
        "--image-root",
        type=Path,
        required=required,
        default=None,
        metavar="DIR",
        help="folder the CSV's image paths are relative to" + ("" if required else " (default: the CSV's folder)"),
    )
    opt(
        "--format",
        default=None,
        metavar="NAME",
        help="a known dataset layout (koniq10k, spaq, livec, kadid10k, csiq, live, flive, agiqa3k); see temu.data.formats",
    )
    opt(
        "--path-col",
        "--path-column",
        default=None,
        metavar="NAME",
        help="image path column (default: detected from the header or given by --format)",
    )
    opt(
        "--mos-col",
        "--mos-column",
        default=None,
        metavar="NAME",
        help="score column (default: detected from the header or given by --format)",
    )
    opt(
        "--lower-better",
        action="store_true",
        default=None,
        help="the score is a DMOS (lower = better); only for CSVs without --format",
    )
    opt(
        "--skip-bad",
        action="store_true",
        help="leave out unusable rows (missing/unreadable image, bad score) instead of stopping",
    )
    opt(
        "--check-images",
        choices=["header", "full"],
        default="header",
        help="'header': open every image's header and check its pixel format (fast); 'full': read every image "
        "as training and evaluation will (slow, catches truncated files)",
    )


def add_group_arguments(p: argparse._ActionsContainer, *, what: str, per_dataset: bool = False) -> None:
    """``--group-column`` and ``--no-group``: random splits that keep all rows of one reference image together."""
    _option(
        p,
        per_dataset,
        "--group-column",
        default=None,
        metavar="NAME",
        help=f"keep the rows with the same value in this column together in {what} (default: the CSV's "
        "reference-image column: ref, reference, ref_img, ref_img_path, ref_name, ...; none if it has none)",
    )
    _option(
        p,
        per_dataset,
        "--no-group",
        dest="group",
        action="store_false",
        help=f"split single rows in {what}, even when the CSV has a reference-image column",
    )


def add_split_file_arguments(p: argparse._ActionsContainer, *, what: str, per_dataset: bool = False) -> None:
    """``--split-file``, ``--split-index`` and ``--split-column`` (pyiqa's split files and columns)."""
    _option(
        p,
        per_dataset,
        "--split-file",
        type=Path,
        default=None,
        metavar="F",
        help=f"pyiqa split pickle {{index: {{'train','val','test'}}}} over the CSV's rows; {what}",
    )
    _option(
        p,
        per_dataset,
        "--split-index",
        default="1",
        metavar="K",
        help="split of --split-file (pyiqa numbers them from 1)",
    )
    _option(
        p,
        per_dataset,
        "--split-column",
        type=split_column,
        default=None,
        metavar="NAME|K",
        help=f"pyiqa split column of the CSV (e.g. official_split; K = ratio802_seed123_split_K); {what}",
    )


def add_runtime_arguments(p: argparse._ActionsContainer) -> None:
    """``--batch-size``, ``--device``, ``--workers`` and ``--precision``."""
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per batch (default: 32)")
    p.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=None,
        help="DataLoader workers decoding images (default: 0 on CPU, up to 8 on GPU)",
    )
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help=f"autocast dtype; auto = {AUTO_RULE}")


def add_model_argument(p: argparse._ActionsContainer) -> None:
    p.add_argument(
        "--model", default="temu-iqa-s", help="preset name, head directory or Hub repo id (default: temu-iqa-s)"
    )
