"""Make docs/images/demo.png, the README's picture of the demo page, in a real browser.

    python docs/make_demo_screenshot.py

It serves ``temu.demo.build`` on this machine and lets a headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright with the helpers of tests/test_demo.py) drop
examples/images/coffee.jpg and rocket.jpg on it, then takes a screenshot of the whole page. No
CLIP weights exist on the machine that made the picture, so the model is a head on the tests'
tiny open_clip ViT (tests/assets/tiny-clip.json) with seeded random weights, at 224x224 (a 28x28
patch grid): the scores mean nothing, the picture shows the page.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "assets" / "tiny-clip.json"
PHOTOS = [REPO / "examples" / "images" / name for name in ("coffee.jpg", "rocket.jpg")]
OUT = REPO / "docs" / "images" / "demo.png"
HEAD = "tiny-random-head"  # the model's name on the page


def main() -> None:
    sys.path.insert(0, str(REPO / "tests"))
    import open_clip
    from demo_testing import browser_missing, chromium_page, free_port, upload_and_wait
    from safetensors.torch import save_file

    import temu.demo
    from temu import TeMuIQA

    if (missing := browser_missing()) is not None:
        raise SystemExit(f"cannot take the screenshot: {missing}")
    warnings.filterwarnings("ignore", message=".*random weights.*")
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # relative names, so the page shows "tiny-random-head", not a temporary folder
        shutil.copy(TINY, "tiny-clip.json")
        open_clip.add_model_config(Path("tiny-clip.json"))
        torch.manual_seed(1234)
        clip = open_clip.create_model("tiny-clip", pretrained=None)
        save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, "tiny-clip.safetensors")
        torch.manual_seed(0)
        TeMuIQA(backbone="tiny-clip.json", pretrained="tiny-clip.safetensors", image_size=224).save_pretrained(HEAD)
        page = temu.demo.build(HEAD, device="cpu")
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            with chromium_page(Path(tmp) / "profile", url) as (browser, outside):
                browser.goto(url, wait_until="load")
                print(upload_and_wait(browser, PHOTOS))
                browser.wait_for_timeout(500)  # let the last pictures fade in
                browser.screenshot(path=str(OUT), full_page=True)
            if outside:
                raise SystemExit(f"the page asked for things outside this machine: {outside}")
        finally:
            page.close()
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
