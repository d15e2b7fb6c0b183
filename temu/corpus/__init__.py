"""Corpus runs: millions of images, one Parquet file of scores per shard, resumable; and selections.

:func:`run` scores a corpus into a folder (``temu score --output DIR/``), :func:`select` keeps its
best rows (``temu select``), as ids or as new shards. The layer between the scoring core and the
engines that drive it:

- :mod:`~temu.corpus.names`: which kind of input a name is, brace patterns, names that are not UTF-8 (no pyarrow);
- :mod:`~temu.corpus.uris`: local paths and remote URIs through pyarrow's filesystems, file stamps;
- :mod:`~temu.corpus.listing`: inputs (folders, ``.txt`` path lists, ``.parquet`` tables, WebDataset
  ``.tar`` shards, brace patterns) -> the shard plan;
- :mod:`~temu.corpus.plan`: the plan, the settings a resumed run must share, the output folder;
- :mod:`~temu.corpus.read`: one shard -> Arrow row chunks (id, encoded bytes or a path);
- :mod:`~temu.corpus.scorer`: rows -> scores or error messages, decoding ahead on a thread pool;
- :mod:`~temu.corpus.output`: a shard's output table (the one schema), its counts;
- :mod:`~temu.corpus.engine`: :func:`run`, the engines' interface, the report;
- :mod:`~temu.corpus.local` and :mod:`~temu.corpus.ray`: the two engines (this process; Ray Data);
- :mod:`~temu.corpus.selection` and :mod:`~temu.corpus.reshard`: :func:`select`, and new shards of the kept samples.

It imports the core and pyarrow, never the command line; only :mod:`~temu.corpus.ray` imports ray.
The names below are imported on first use, so ``import temu.corpus.read`` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run": "engine",
    "CorpusRun": "engine",
    "Progress": "engine",
    "ProgressBar": "engine",
    "select": "selection",
    "Selection": "selection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'temu.corpus' has no attribute {name!r}")
    return getattr(importlib.import_module(f"temu.corpus.{module}"), name)
