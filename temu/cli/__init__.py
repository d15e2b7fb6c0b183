"""The ``temu`` command: ``temu score``, ``temu select``, ``temu eval``, ``temu calibrate``, ``temu presets`` and ``temu demo``
(``temu-finetune``: :mod:`temu.cli.finetune`).

Exit status: 0 on success (unreadable images are reported on stderr and in the output file, and
do not fail the run), 1 when ``--strict`` is given and some image could not be scored, 2 for a
usage error (one line on stderr) or when the model cannot be loaded.

Each command lives in its own module and imports torch only when it runs, so ``temu --version``
and ``temu --help`` answer at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .._version import __version__
from . import calibrate as calibrate_command
from . import demo as demo_command
from . import eval as eval_command
from . import presets as presets_command
from . import score as score_command
from . import select as select_command
from .args import Parser

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="temu", description="TeMu-IQA no-reference image quality assessment.")
    parser.add_argument("--version", action="version", version=f"temu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    score_command.add_parser(sub)
    select_command.add_parser(sub)
    eval_command.add_parser(sub)
    calibrate_command.add_parser(sub)
    presets_command.add_parser(sub)
    demo_command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``temu`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
