"""What kind of corpus input a name is, from the name alone (no pyarrow: the command line uses it in file mode)."""

from __future__ import annotations

import re

from ..images.names import is_media_name

#: Corpus-run settings the command line shows in its help without importing pyarrow (:func:`temu.corpus.run`).
ENGINES = ("local", "ray")
DEFAULT_SHARD_SIZE = 10_000
#: An image (tar member, table cell, listed file or URI) larger than this is an error row, never read.
DEFAULT_MAX_MEMBER_SIZE = 256 << 20
RAY_OPTIONS = ("address", "gpus_per_worker", "cpus_per_worker", "max_workers")

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
LIST_SUFFIX = ".txt"
TABLE_SUFFIX = ".parquet"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def expand_braces(pattern: str) -> list[str]:
    """``a{1..3}b`` -> a1b a2b a3b; ``{00..02}`` keeps the zero padding; ``{x,y}`` -> x y; nesting works."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth, end = 0, -1
    for i in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[i], 0)
        if depth == 0:
            end = i
            break
    if end < 0:  # unbalanced: literal
        return [pattern]
    head, body, tail = pattern[:start], pattern[start + 1 : end], pattern[end + 1 :]
    rests = expand_braces(tail)
    match = _RANGE.match(body)
    if match:
        a, b = match.groups()
        padded = any(len(x.lstrip("-")) > 1 and x.lstrip("-").startswith("0") for x in (a, b))
        width = max(len(a), len(b)) if padded else 0
        lo, hi = int(a), int(b)
        step = 1 if hi >= lo else -1
        options = [str(v).zfill(width) for v in range(lo, hi + step, step)]
    else:
        options = _split_top_level(body)
        if len(options) == 1:  # "{x}" is not a pattern; keep the braces
            return [head + "{" + body + "}" + rest for rest in rests]
        options = [x for option in options for x in expand_braces(option)]
    return [head + option + rest for option in options for rest in rests]


def _split_top_level(body: str) -> list[str]:
    parts, depth, current = [], 0, []
    for c in body:
        if c == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        current.append(c)
    parts.append("".join(current))
    return parts


def is_uri(text: str) -> bool:
    """True for ``scheme://...`` (a remote or ``file://`` URI), False for a plain local path."""
    return bool(_SCHEME.match(text))


def input_kind(text: str) -> str | None:
    """``"tar"``, ``"parquet"``, ``"list"`` or ``"image"`` (an image or a video file) from the name; None
    otherwise (a folder, or not an input)."""
    name = text.lower().rstrip("/")
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if name.endswith(TABLE_SUFFIX):
        return "parquet"
    if name.endswith(LIST_SUFFIX):
        return "list"
    if is_media_name(name):
        return "image"
    return None


def is_corpus_input(text: str) -> bool:
    """True for inputs only a corpus run reads: WebDataset tars, Parquet tables, path lists and URIs."""
    return is_uri(text) or input_kind(text) in ("tar", "parquet", "list")


# ---------------------------------------------------------------- names that are not UTF-8
#
# File and member names are Python strings in which every byte that is not UTF-8 is one surrogate
# escape (U+DC80..U+DCFF, ``os.fsdecode``'s convention). Inside a corpus run an id is its exact
# bytes; a shard output holds ``id`` (text: each such byte written as ``\xNN``) and ``id_bytes``
# (the exact bytes, null when the name is UTF-8), see :mod:`temu.corpus.output`.


def name_bytes(name: str) -> bytes:
    """The exact bytes of a name (surrogate escapes back to their bytes)."""
    return name.encode("utf-8", "surrogateescape")


def name_of(raw: bytes) -> str:
    """Bytes -> the name as Python holds it (bytes that are not UTF-8 as surrogate escapes); lossless."""
    return raw.decode("utf-8", "surrogateescape")


def shown(raw: bytes) -> str:
    """Bytes -> valid UTF-8 text for display and text columns: each byte that is not UTF-8 as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


def clean_text(text: str) -> str:
    """``text`` (a message naming a file, say) as valid UTF-8 text: surrogate escapes as ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return shown(name_bytes(text))
        except UnicodeEncodeError:  # surrogates that are not escapes of bytes
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
