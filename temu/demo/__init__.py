"""``temu.demo``: a web page to score images, look at their maps and compare two (extra ``temu-iqa[demo]``: gradio).

>>> import temu.demo
>>> demo = temu.demo.build(model=["temu-iqa-s", "runs/koniq-s"])  # gradio.Blocks; the first model is the default
>>> demo.launch()                                                 # or mount it in your own app

``temu demo`` on the command line runs :func:`serve`. Importing this package imports gradio, not
torch (the models load on first use); ``import temu`` and scoring never import gradio.
"""

from __future__ import annotations

from .app import build, serve
from .results import DemoError

__all__ = ["DemoError", "build", "serve"]
