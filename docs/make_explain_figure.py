"""Make docs/images/explain-panel.png, the README's attribute panel, with the shipped command line.

    python docs/make_explain_figure.py

It runs ``temu score examples/images/coffee.jpg --attributes --maps DIR``. No CLIP weights exist on
the machine that made the figure, so the backbone is the tests' tiny open_clip ViT
(tests/assets/tiny-clip.json) with seeded random weights, at 224x224 (a 28x28 patch grid). The
figure shows the panel's layout, not real judgements.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "assets" / "tiny-clip.json"
PHOTO = REPO / "examples" / "images" / "coffee.jpg"
OUT = REPO / "docs" / "images" / "explain-panel.png"


def main() -> None:
    import open_clip
    from safetensors.torch import save_file

    from temu import TeMuIQA
    from temu.cli import main as temu_main

    warnings.filterwarnings("ignore", message=".*random weights.*")
    open_clip.add_model_config(TINY)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(1234)
        clip = open_clip.create_model("tiny-clip", pretrained=None)
        checkpoint = Path(tmp) / "tiny-clip.safetensors"
        save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(checkpoint))
        head = TeMuIQA(backbone=str(TINY), pretrained=str(checkpoint), image_size=224).save_pretrained(
            Path(tmp) / "head"
        )
        maps = Path(tmp) / "maps"
        rows = Path(tmp) / "scores.csv"
        args = ["score", str(PHOTO), "--model", str(head), "--attributes", "--maps", str(maps), "--output", str(rows)]
        code = temu_main([*args, "-q"])
        if code != 0:
            raise SystemExit(code)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(maps / f"{PHOTO.stem}.png", OUT)
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
