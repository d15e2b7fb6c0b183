"""Argument groups and value parsers shared by ``temu`` and ``temu-finetune``.

Only argparse and the standard library are imported here (plus temu's torch-free precision
names), so ``--help`` and ``--version`` answer without loading torch.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

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


def split_column(text: str) -> str | int:
    """``--split-column``: a column name, or K for pyiqa's ``ratio802_seed123_split_K``."""
    return int(text) if text.strip().isdigit() else text


def add_data_arguments(p: argparse._ActionsContainer, *, csv_flag: str) -> None:
    """The dataset options shared by ``temu-finetune`` (``--train``) and ``temu eval`` (``--data``)."""
    p.add_argument(
        csv_flag,
        dest="csv",
        type=Path,
        required=True,
        metavar="CSV",
        help="CSV with an image path column and a score column",
    )
    p.add_argument(
        "--image-root", type=Path, required=True, metavar="DIR", help="folder the CSV's image paths are relative to"
    )
    p.add_argument(
        "--format",
        default=None,
        metavar="NAME",
        help="a known dataset layout (koniq10k, spaq, livec, kadid10k, csiq, live, flive, agiqa3k); see temu.data.formats",
    )
    p.add_argument(
        "--path-col",
        "--path-column",
        default=None,
        metavar="NAME",
        help="image path column (default: detected from the header or given by --format)",
    )
    p.add_argument(
        "--mos-col",
        "--mos-column",
        default=None,
        metavar="NAME",
        help="score column (default: detected from the header or given by --format)",
    )
    p.add_argument(
        "--lower-better",
        action="store_true",
        default=None,
        help="the score is a DMOS (lower = better); only for CSVs without --format",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unusable rows (missing/unreadable image, bad score) instead of stopping",
    )
    p.add_argument(
        "--check-images",
        choices=["header", "full"],
        default="header",
        help="'header': open every image's header and check its pixel format (fast); 'full': read every image "
        "as training and evaluation will (slow, catches truncated files)",
    )


def add_group_arguments(p: argparse._ActionsContainer, *, what: str) -> None:
    """``--group-column`` and ``--no-group``: random splits that keep all rows of one reference image together."""
    p.add_argument(
        "--group-column",
        default=None,
        metavar="NAME",
        help=f"keep the rows with the same value in this column together in {what} (default: the CSV's "
        "reference-image column: ref, reference, ref_img, ref_img_path, ref_name, ...; none if it has none)",
    )
    p.add_argument(
        "--no-group",
        dest="group",
        action="store_false",
        help=f"split single rows in {what}, even when the CSV has a reference-image column",
    )


def add_split_file_arguments(p: argparse._ActionsContainer, *, what: str) -> None:
    """``--split-file``, ``--split-index`` and ``--split-column`` (pyiqa's split files and columns)."""
    p.add_argument(
        "--split-file",
        type=Path,
        default=None,
        metavar="F",
        help=f"pyiqa split pickle {{index: {{'train','val','test'}}}} over the CSV's rows; {what}",
    )
    p.add_argument("--split-index", default="1", metavar="K", help="split of --split-file (pyiqa numbers them from 1)")
    p.add_argument(
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
