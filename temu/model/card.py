"""The model card (README.md) written beside a saved head."""

from __future__ import annotations

from .config import TeMuConfig

#: YAML front matter of every temu model card (Hugging Face reads library_name and tags).
CARD_HEADER = """---
library_name: temu
tags:
- image-quality-assessment
- no-reference-iqa
- temu-iqa
---
"""


def model_card(config: TeMuConfig, head_parameters: int) -> str:
    """A short Hugging Face model card saying what the head is, whether it is trained, and how to load it."""
    trained = config.mos_scale is not None
    status = (
        f"Fine-tuned head; MOS range seen in training: {config.mos_scale}."
        if trained
        else "**Untrained head**: this is the zero-shot TeMu-IQA scorer (uniform layer weights, equal patch weights)."
    )
    return (
        CARD_HEADER
        + f"""
# TeMu-IQA head

{status}

| | |
|---|---|
| backbone | `{config.backbone}` (pretrained: `{config.pretrained}`) |
| variant | {config.variant} |
| layers | {config.layers} |
| image size | {config.image_size} |
| prompts | {list(config.prompts)} |
| trainable parameters | {head_parameters:,} |

The file `model.safetensors` holds only the trainable head; the frozen CLIP backbone is
downloaded through open_clip on first use. Install temu with `pip install temu-iqa`
(the import name is `temu`), then:

```python
import temu
model = temu.load("path/or/repo-id")
print(temu.score("photo.jpg", model=model))
```
"""
    )
