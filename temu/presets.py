"""The presets shipped in ``weights/``: how they are made, and their model cards.

Both presets hold an *untrained* head on OpenAI CLIP ViT-L/14 at 448x448. Untrained, TeMu-IQA
is the zero-shot scorer of METHOD.md step 9, so the presets score images without any training.
Regenerate them with ``python -m temu.presets weights/``. A test checks that the shipped files
are what this module writes.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .card import CARD_HEADER
from .config import TeMuConfig

if TYPE_CHECKING:
    from .model import TeMuIQA

PRESETS: dict[str, TeMuConfig] = {
    "temu-iqa-s": TeMuConfig(backbone="ViT-L-14", pretrained="openai", variant="S", image_size=448),
    "temu-iqa-i": TeMuConfig(backbone="ViT-L-14", pretrained="openai", variant="I", image_size=448),
}

_SEED = 0

_CARD = CARD_HEADER + """
# {name}: untrained TeMu-IQA-{variant} head (zero-shot scorer)

**This head is untrained.** Its weights are the initial values: uniform weights over the 24
layers of OpenAI CLIP ViT-L/14, a zero adapter, and equal patch weights{variant_note}. With them,
TeMu-IQA is a *zero-shot* quality scorer. Every [cls] and patch token of every layer goes
through CLIP's `ln_post` and `proj`, and the layers are averaged. Each token is scored against
"Good photo." / "Bad photo." with the CLIP-IQA softmax rule, and the image score is the plain
mean over tokens (see "How it scores" in the temu README).

What to expect: this is the paper's Fig. 9 option (c) applied to every token rather than to the
[cls] token alone. The paper reports for option (c) on the [cls] token (Tab. 11, ViT-L/14):
SRCC/PLCC 0.7743/0.7750 on KonIQ-10k, 0.7751/0.7732 on SPAQ and 0.6949/0.6803 on CLIVE. We have
not measured these presets on those datasets: no dataset or CLIP weights could be downloaded
where they were made. Expect zero-shot quality in that range, not the fine-tuned numbers
(0.94+ SRCC on KonIQ-10k). Those need a trained head.

| | |
|---|---|
| backbone | `ViT-L-14`, pretrained `openai` (QuickGELU, as trained), downloaded through open_clip on first use |
| variant | {variant} ({variant_name}) |
| layers | all 24 |
| input | 448x448, bicubic, antialiased; OpenAI CLIP mean/std |
| trainable parameters | {params:,} |

## Train a head

```bash
temu-finetune --train koniq10k.csv --image-root koniq10k/512x384 --variant {variant_lower} --output runs/koniq-{variant_lower}
```

Then load it with `temu.load("runs/koniq-{variant_lower}")` or `temu score --model runs/koniq-{variant_lower} IMAGES...`.
See the temu README, section "Fine-tuning".
"""


def untrained_model(config: TeMuConfig, *, load_weights: bool = True) -> "TeMuIQA":
    """A model with the initial (untrained) head for ``config``, from the presets' fixed seed.

    The caller's random state is left untouched.
    """
    from .model import TeMuIQA

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        return TeMuIQA.from_config(config, load_weights=load_weights)


def write_untrained_preset(name: str, directory: str | Path, *, load_backbone_weights: bool = False) -> Path:
    """Write the untrained head of preset ``name`` (config.json, model.safetensors, README.md) to ``directory``.

    The head does not depend on the backbone's weights (only on its shapes), so the backbone is
    built without downloading them. The random parts that start inert (the adapter's and
    meta-net's first layers, multiplied by zeros) come from a fixed seed, leaving the caller's RNG untouched.
    """
    config = PRESETS[name]
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    model = untrained_model(config, load_weights=load_backbone_weights)
    model.save_pretrained(directory)
    (directory / "README.md").write_text(
        _CARD.format(
            name=name,
            variant=config.variant,
            variant_lower=config.variant.lower(),
            variant_name="static prompts" if config.variant == "S" else "CoCoOp instance-conditional prompts",
            variant_note="" if config.variant == "S" else ", and a zero CoCoOp context offset and meta-net output",
            params=model.num_head_parameters,
        ),
        encoding="utf-8",
    )
    return directory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m temu.presets", description="Write temu's shipped presets.")
    parser.add_argument("root", type=Path, help="folder to write the preset folders into (the repo's weights/)")
    args = parser.parse_args(argv)
    for name in PRESETS:
        print(write_untrained_preset(name, args.root / name))


if __name__ == "__main__":
    main()
