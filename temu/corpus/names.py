"""What kind of corpus input a name is, from the name alone (no pyarrow: the command line uses it in file mode)."""

from __future__ import annotations

import posixpath
import re

from ..image_files import IMAGE_EXTENSIONS

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
LIST_SUFFIX = ".txt"
TABLE_SUFFIX = ".parquet"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(text: str) -> bool:
    """True for ``scheme://...`` (a remote or ``file://`` URI), False for a plain local path."""
    return bool(_SCHEME.match(text))


def input_kind(text: str) -> str | None:
    """``"tar"``, ``"parquet"``, ``"list"`` or ``"image"`` from the name; None otherwise (a folder, or not an input)."""
    name = text.lower().rstrip("/")
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if name.endswith(TABLE_SUFFIX):
        return "parquet"
    if name.endswith(LIST_SUFFIX):
        return "list"
    if posixpath.splitext(name)[1] in IMAGE_EXTENSIONS:
        return "image"
    return None


def is_corpus_input(text: str) -> bool:
    """True for inputs only a corpus run reads: WebDataset tars, Parquet tables, path lists and URIs."""
    return is_uri(text) or input_kind(text) in ("tar", "parquet", "list")
