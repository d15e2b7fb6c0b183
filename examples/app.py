"""temu's demo page as a Hugging Face Space (SDK: gradio).

Copy this file into the Space as ``app.py`` with a ``requirements.txt`` that holds ``temu-iqa[demo,video]``
(``video``: PyAV, for clips; without it the page scores images and says so for each video).
Locally, ``python examples/app.py`` serves the same page as ``temu demo --model temu-iqa-s temu-iqa-i``.
"""

import temu.demo

demo = temu.demo.build(model=["temu-iqa-s", "temu-iqa-i"])  # the first is the default; each loads when first used

if __name__ == "__main__":
    demo.launch()
