"""Regenerate tests/assets/stored_outputs.json (checked by tests/test_stored_outputs.py).

    python tests/make_stored_outputs.py

Run it only when a change of temu's numbers is intended, and say why in the commit message.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from temu_testing import STORED_OUTPUTS, stored_outputs, write_fixed_backbone  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outputs = stored_outputs(write_fixed_backbone(Path(tmp) / "open_clip_model.safetensors"))
    text = json.dumps(outputs, indent=1)
    # one line per list of numbers (a score list, a row of a map), so a diff shows which values moved
    text = re.sub(
        r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text
    )
    STORED_OUTPUTS.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {STORED_OUTPUTS}")


if __name__ == "__main__":
    main()
