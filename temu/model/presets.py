"""The presets shipped in ``weights/``: their defining configs, their seed and their model cards.

Both presets hold an *untrained* head on OpenAI CLIP ViT-L/14 at 448x448. Untrained, TeMu-IQA
is the zero-shot scorer of docs/method.md, so the presets score images without any training.
Regenerate them with ``temu presets --write weights/``. A test checks that the shipped files
are what that command writes.
"""

from __future__ import annotations

from .card import CARD_HEADER
from .config import TeMuConfig

PRESETS: dict[str, TeMuConfig] = {
    "temu-iqa-s": TeMuConfig(backbone="ViT-L-14", pretrained="openai", variant="S", image_size=448),
    "temu-iqa-i": TeMuConfig(backbone="ViT-L-14", pretrained="openai", variant="I", image_size=448),
}

#: Seed of the presets' random initial values (the parts that start inert, multiplied by zeros).
PRESET_SEED = 0

_CARD = (
    CARD_HEADER
    + """
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

## Use it

`pip install temu-iqa` (the import name is `temu`), then `temu score --model {name} IMAGES...`
on the command line or `temu.score("photo.jpg", model="{name}")` in Python.

## Train a head

```bash
temu-finetune --train koniq10k.csv --image-root koniq10k/512x384 --variant {variant_lower} --output runs/koniq-{variant_lower}
```

Then load it with `temu.load("runs/koniq-{variant_lower}")` or `temu score --model runs/koniq-{variant_lower} IMAGES...`.
See the temu README, section "Fine-tuning".
"""
)


def preset_card(name: str, head_parameters: int) -> str:
    """The model card (README.md) of preset ``name``, whose head has ``head_parameters`` parameters."""
    config = PRESETS[name]
    return _CARD.format(
        name=name,
        variant=config.variant,
        variant_lower=config.variant.lower(),
        variant_name="static prompts" if config.variant == "S" else "CoCoOp instance-conditional prompts",
        variant_note="" if config.variant == "S" else ", and a zero CoCoOp context offset and meta-net output",
        params=head_parameters,
    )
