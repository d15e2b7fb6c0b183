"""``temu presets``: list the shipped presets, or (for maintainers) write them anew."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

PROG = "temu presets"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list the presets shipped with temu")
    p.add_argument(
        "--write",
        type=Path,
        default=None,
        metavar="DIR",
        help="(maintainers) write the presets' untrained heads and model cards into DIR/<name>/, e.g. the repo's weights/",
    )
    p.set_defaults(func=run)


def write_untrained_preset(name: str, directory: str | Path, *, load_backbone_weights: bool = False) -> Path:
    """Write the untrained head of preset ``name`` (config.json, model.safetensors, README.md) to ``directory``.

    The head does not depend on the backbone's weights (only on its shapes), so the backbone is
    built without downloading them. The random parts that start inert (the adapter's and
    meta-net's first layers, multiplied by zeros) come from the presets' fixed seed.
    """
    from ..model import untrained_model
    from ..model.presets import PRESETS, preset_card

    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    model = untrained_model(PRESETS[name], load_weights=load_backbone_weights)
    model.save_pretrained(directory)
    (directory / "README.md").write_text(preset_card(name, model.num_head_parameters), encoding="utf-8")
    return directory


def run(args: argparse.Namespace) -> int:
    if args.write is not None:
        from ..model.presets import PRESETS

        for name in PRESETS:
            print(write_untrained_preset(name, args.write / name))
        return 0
    from ..model.hub import list_presets, preset_root

    for name in list_presets():
        print(f"{name}\t{preset_root() / name}")
    return 0
