"""Stored outputs (timm's manner): fixed weights, shipped photographs, numbers kept in tests/assets/.

A tiny backbone and S and I heads whose weights this test writes from seeded generators (by name
and shape only, see tests/temu_testing.py) score examples/images/coffee.jpg and rocket.jpg through
``temu.score``, and give the quality maps of coffee.jpg. The numbers must equal
tests/assets/stored_outputs.json, so a refactor that changes a number is caught even where no
formula pins it. When a change of the numbers is intended, regenerate the file with one command,
``python tests/make_stored_outputs.py``, and say why in the commit.

Tolerance: 5e-6 absolute. Scoring the two photographs one at a time instead of together moves the
values by up to 7e-7 (float summation order); a 0.1 % change of the [cls] token's weight moves
them by 1e-5, a positional-embedding resize without antialiasing by 4e-3.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from temu_testing import REGENERATE, STORED_OUTPUTS, stored_outputs, write_fixed_backbone

ATOL = 5e-6


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> tuple[dict, dict]:
    """(stored, computed now)."""
    checkpoint = write_fixed_backbone(tmp_path_factory.mktemp("fixed-backbone") / "open_clip_model.safetensors")
    return json.loads(STORED_OUTPUTS.read_text(encoding="utf-8")), stored_outputs(checkpoint)


def check(now, stored, what: str) -> None:
    now, stored = np.asarray(now, dtype=float), np.asarray(stored, dtype=float)
    assert now.shape == stored.shape, what
    worst = float(np.abs(now - stored).max())
    assert worst <= ATOL, (
        f"{what} moved by up to {worst:.2e} (tolerance {ATOL:g}) from tests/assets/stored_outputs.json; "
        f"if that is intended, regenerate it with `{REGENERATE}` and say why in the commit"
    )


@pytest.mark.parametrize("variant", ["S", "I"])
def test_scores_of_shipped_photographs_are_the_stored_ones(outputs, variant):
    stored, now = outputs
    assert now["images"] == stored["images"]
    check(now["scores"][variant], stored["scores"][variant], f"variant {variant}'s scores")


@pytest.mark.parametrize("kind", ["score_map", "weight_map"])
def test_quality_map_is_the_stored_one(outputs, kind):
    stored, now = outputs
    assert (now["maps"]["image"], now["maps"]["variant"]) == (stored["maps"]["image"], stored["maps"]["variant"])
    check(now["maps"][kind], stored["maps"][kind], f"the {kind} of {stored['maps']['image']}")


def test_stored_outputs_are_worth_comparing(outputs):
    """The stored numbers spread (not all 0, 1 or equal), so a change shows in them."""
    stored, _ = outputs
    scores = np.array(stored["scores"]["S"] + stored["scores"]["I"])
    score_map = np.array(stored["maps"]["score_map"])
    assert np.ptp(scores) > 0.1 and np.ptp(score_map) > 0.3 and 0.05 < score_map.min() and score_map.max() < 0.95
    assert np.array(stored["maps"]["weight_map"]).std() > 0.01
