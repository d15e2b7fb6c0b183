"""Quality attributes: named pairs of antonym prompts, judged zero-shot by CLIP on every token.

The default set below is part of the API (names and prompts; README "Explain a score"). An
attribute's score is the zero-shot rule (docs/method.md, "Attributes") with its own prompts: each token's
``softmax(logit_scale * [p.t_pos, p.t_neg])[pos]``, averaged over the [cls] and patch tokens,
with ``p`` the plain mean over the chosen layers. So it is in [0, 1], higher = more of the
positive prompt, and it does not depend on a trained head.

This module imports nothing heavy, so the command line can check attribute names before torch loads.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from ..errors import InvalidAttributesError

#: name -> (positive prompt, negative prompt); the set ``temu.explain`` uses by default.
DEFAULT_ATTRIBUTES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "sharpness": ("Sharp photo.", "Blurry photo."),
        "noise": ("Clean photo.", "Noisy photo."),
        "exposure": ("Well-exposed photo.", "Badly exposed photo."),
        "brightness": ("Bright photo.", "Dark photo."),
        "contrast": ("High contrast photo.", "Low contrast photo."),
        "colourfulness": ("Colorful photo.", "Dull photo."),
        "compression": ("Uncompressed photo.", "Compressed photo."),
    }
)

#: Names an attribute may not take: the two other maps of an explanation, and the columns of ``temu score``.
RESERVED_NAMES = frozenset({"quality", "weight", "path", "score", "error"})

#: What ``attributes=`` accepts: None (the default set), default names, or name -> (positive, negative).
AttributeSpec = Sequence[str] | Mapping[str, Sequence[str]] | None


def resolve_attributes(attributes: AttributeSpec) -> dict[str, tuple[str, str]]:
    """``attributes`` as an ordered dict name -> (positive prompt, negative prompt).

    None gives :data:`DEFAULT_ATTRIBUTES`; a list of names picks from it (in the list's order);
    a dict gives its own prompt pairs. Raises :class:`~temu.InvalidAttributesError` for an
    unknown or repeated name, a reserved name, an empty set, or a value that is not two prompts.
    """
    if attributes is None:
        return dict(DEFAULT_ATTRIBUTES)
    if isinstance(attributes, str):
        raise InvalidAttributesError(
            f"attributes={attributes!r}: pass a list of names, e.g. [{attributes!r}], or a dict name -> (positive, negative)"
        )
    if isinstance(attributes, Mapping):
        chosen = {}
        for name, pair in attributes.items():
            _check_name(name)
            if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise InvalidAttributesError(
                    f"attribute {name!r}: expected a (positive prompt, negative prompt) pair, got {pair!r}"
                )
            pos, neg = pair
            if not (isinstance(pos, str) and isinstance(neg, str) and pos.strip() and neg.strip()):
                raise InvalidAttributesError(
                    f"attribute {name!r}: both prompts must be non-empty strings, got {pair!r}"
                )
            if pos == neg:
                raise InvalidAttributesError(f"attribute {name!r}: the two prompts are the same ({pos!r})")
            chosen[name] = (pos, neg)
    else:
        chosen = {}
        for name in attributes:
            if name not in DEFAULT_ATTRIBUTES:
                raise InvalidAttributesError(unknown_attribute_message(name))
            if name in chosen:
                raise InvalidAttributesError(f"attribute {name!r} is listed twice")
            chosen[name] = DEFAULT_ATTRIBUTES[name]
    if not chosen:
        raise InvalidAttributesError("no attributes given; pass None for the default set")
    return chosen


def unknown_attribute_message(name: object, *, custom_prompts: bool = True) -> str:
    """Why ``name`` is not a default attribute, with the closest names and the full list.

    ``custom_prompts=False`` leaves out the advice to pass a dict of prompts, for callers that
    cannot (the ``--attributes`` option of ``temu score``).
    """
    close = difflib.get_close_matches(str(name), list(DEFAULT_ATTRIBUTES), n=2)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    custom = "; for other prompts pass a dict name -> (positive prompt, negative prompt)" if custom_prompts else ""
    return f"unknown attribute {name!r}.{hint} The default attributes are {', '.join(DEFAULT_ATTRIBUTES)}{custom}"


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidAttributesError(f"attribute names must be non-empty strings, got {name!r}")
    if name in RESERVED_NAMES:
        raise InvalidAttributesError(
            f"attribute name {name!r} is reserved (taken: {', '.join(sorted(RESERVED_NAMES))}); choose another"
        )
