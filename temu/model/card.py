"""The model card (README.md) written beside a saved head."""

from __future__ import annotations

import re

from .calibration import Calibration
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


#: The calibration section of a model card sits between these two lines (:func:`with_calibration_section`).
CALIBRATION_BEGIN = "<!-- temu-calibration: written by temu calibrate -->"
CALIBRATION_END = "<!-- /temu-calibration -->"


def model_card(config: TeMuConfig, head_parameters: int, calibration: Calibration | None = None) -> str:
    """A short Hugging Face model card saying what the head is, whether it is trained, how to load it, and
    (for a calibrated head) what its calibrated scales are."""
    trained = config.mos_scale is not None
    status = (
        f"Fine-tuned head; MOS range seen in training: {config.mos_scale}."
        if trained
        else "**Untrained head**: this is the zero-shot TeMu-IQA scorer (uniform layer weights, equal patch weights)."
    )
    card = (
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
    return with_calibration_section(card, calibration)


def calibration_section(calibration: Calibration) -> str:
    """The model card's words for a calibration: what each scale means and how it was made."""
    lines = ["## Calibration", "", "`calibration.json` turns this head's raw score (in [0, 1]) into:", ""]
    mos = calibration.mos
    if mos is not None:
        m = mos.metrics
        direction = "lower is better (DMOS)" if mos.lower_better else "higher is better"
        lines.append(
            f'- **MOS** of `{mos.dataset}` (`scale="mos"`): {mos.method} map fitted on {mos.images:,} images, '
            f"values in [{mos.low:g}, {mos.high:g}], {direction}. On those images: SRCC {m.get('srcc_raw', float('nan')):.4f}, "
            f"PLCC {m.get('plcc_raw', float('nan')):.4f} (raw score); PLCC {m.get('plcc', float('nan')):.4f}, "
            f"RMSE {m.get('rmse', float('nan')):.4g} (calibrated)."
        )
    if calibration.percentiles is not None:
        ref = calibration.percentiles
        lines.append(
            f'- **percentile** of the reference corpus `{ref.reference}` (`scale="percentile"`, {ref.images:,} '
            "images): P means better than P % of it."
        )
    lines += ["", '`temu.score("photo.jpg", model=..., scale="mos")`; on the command line `temu score --scale mos`.']
    return "\n".join(lines)


def with_calibration_section(card: str, calibration: Calibration | None) -> str:
    """``card`` with its calibration section (between :data:`CALIBRATION_BEGIN` and :data:`CALIBRATION_END`)
    replaced by ``calibration``'s, appended if it had none, removed for None. The rest is kept as written."""
    pattern = re.compile(re.escape(CALIBRATION_BEGIN) + r".*?" + re.escape(CALIBRATION_END) + r"\n?", re.S)
    if calibration is None and pattern.search(card) is None:
        return card
    body = pattern.sub("", card).rstrip("\n") + "\n"
    if calibration is None:
        return body
    return f"{body}\n{CALIBRATION_BEGIN}\n{calibration_section(calibration)}\n{CALIBRATION_END}\n"
