"""``temu demo``: serve the demo page (:func:`temu.demo.build`) on this machine; needs the extra ``temu-iqa[demo]``."""

from __future__ import annotations

import argparse
import sys

from ..errors import TeMuError
from .args import USAGE_ERROR, checked_number, usage_error

PROG = "temu demo"
INSTALL_EXTRA = 'pip install "temu-iqa[demo]"'
DEFAULT_MODEL = "temu-iqa-s"

port_number = checked_number(int, lambda v: 0 < v < 65536, "a port number from 1 to 65535")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="a local web page: score images and videos, see their quality maps and attributes, compare two "
        "(temu-iqa[demo])",
    )
    p.add_argument(
        "--model",
        action="extend",
        nargs="+",
        default=None,
        metavar="M",
        help="preset name, head directory or Hub repo id; repeat it or give several to offer a choice on the page, "
        f"the first being the default (default: {DEFAULT_MODEL})",
    )
    p.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every network interface)",
    )
    p.add_argument(
        "--port", type=port_number, default=None, help="port to listen on (default: 7860, or the next free one)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..demo import DemoError, serve
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "gradio":
            raise
        return usage_error(PROG, f"the demo page needs gradio, which is not installed: {INSTALL_EXTRA}")
    models = args.model or [DEFAULT_MODEL]
    try:
        serve(models, device=args.device, host=args.host, port=args.port)
    except DemoError as err:
        return usage_error(PROG, str(err))
    except TeMuError as err:
        print(f"{PROG}: error: cannot load model {models[0]!r}: {err}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as err:  # the port is taken, the address is not this machine's, or the model's files cannot be read
        return usage_error(PROG, str(err))
    return 0
