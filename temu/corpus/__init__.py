"""Corpus runs: millions of images, one Parquet file of scores per shard, resumable.

The layer between the scoring core and the engines that drive it (``temu score --output DIR/``
in one process or one ``--shard I/N`` of several, and :mod:`temu.ray` on Ray Data):

- :mod:`~temu.corpus.names`: which kind of input a name is, and brace patterns (no pyarrow);
- :mod:`~temu.corpus.uris`: local paths and remote URIs through pyarrow's filesystems;
- :mod:`~temu.corpus.listing`: inputs (folders, ``.txt`` path lists, ``.parquet`` tables, WebDataset
  ``.tar`` shards, brace patterns) -> the shard plan;
- :mod:`~temu.corpus.plan`: the plan, the settings a resumed run must share, the output folder;
- :mod:`~temu.corpus.read`: one shard -> Arrow row chunks (id, encoded bytes or a path);
- :mod:`~temu.corpus.scorer`: rows -> scores or error messages, decoding ahead on a thread pool;
- :mod:`~temu.corpus.run`: the shards of a plan scored in this process, and the run's report.

It imports the core and pyarrow, never ray (only :mod:`temu.ray` does) nor the command line.
"""
