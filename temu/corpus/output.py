"""The output files of a shard: their schemas (one place), their rows, their counts.

``<shard>.parquet`` has :func:`output_schema`: ``id`` (text), ``score`` (float32 in [0, 1], null
when the input could not be scored; for a video its sampled frames' scores reduced), ``mos`` /
``percentile`` (float32, only when the run asked for those scales: the calibrated score, the raw
``score`` kept), one float32 column per attribute (in [0, 1], null with the score), ``frames``
(int32: a video's sampled frames; null for images and error rows; in every run's files, so all
shard files share one schema), ``error`` (null when scored), ``shard``, and ``id_bytes``: the id's
exact bytes when it is not UTF-8 (a file or member name from an old disk), else null. In ``id``
such a name has each byte that is not UTF-8 written as ``\\xNN``; ``os.fsdecode(id_bytes)`` gives
the name as Python's ``os`` functions hold it. One row per input, in the shard's order. No value
is NaN or infinite: such a value makes its row an error row (:func:`temu.errors.non_finite_score`).

With ``per_frame=True`` a run also writes ``_frames/<shard>.parquet`` (:func:`frames_schema`): one
row per sampled frame of each scored video, ``id``, ``frame`` (int32, from 0), ``time`` (float64,
seconds from the video's first frame), ``score`` (float32), ``id_bytes``. It is written before the
shard's own file, and a shard is done only when both are (:meth:`temu.corpus.plan.Plan.done`).
The ``_`` keeps it out of ``pyarrow.parquet.read_table(DIR)``; read it with ``read_table(DIR/_frames)``.

The files' Parquet metadata carries temu's record (key ``temu``, JSON: temu's version, the
shard's name, and for a tar its ``size`` and ``mtime_ns`` as it was read), by which temu knows
its own files (``overwrite=True``) and a selection knows whether a tar changed since scoring.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._version import __version__
from ..errors import non_finite_score
from .names import clean_text, name_of, shown
from .plan import OUTPUT_MARKER, OutputFolder, Shard

#: Columns of every shard output besides the attribute columns, and names no attribute may take.
#: (``rank``, ``mos``, ``percentile`` and ``frames`` are kept for selections and later columns.)
RESERVED_COLUMNS = frozenset({"id", "score", "error", "shard", "id_bytes", "rank", "mos", "percentile", "frames"})


def output_schema(attributes: Sequence[str] = (), scales: Sequence[str] = ()) -> pa.Schema:
    """The schema of every shard output of a run with these attribute columns and calibrated scales
    (``"mos"``, ``"percentile"``; see the module docstring)."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("score", pa.float32()),
            *((name, pa.float32()) for name in scales),
            *((name, pa.float32()) for name in attributes),
            ("frames", pa.int32()),
            ("error", pa.string()),
            ("shard", pa.string()),
            ("id_bytes", pa.binary()),
        ]
    )


def frames_schema() -> pa.Schema:
    """The schema of a shard's per-frame file, ``_frames/<shard>.parquet`` (see the module docstring)."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("frame", pa.int32()),
            ("time", pa.float64()),
            ("score", pa.float32()),
            ("id_bytes", pa.binary()),
        ]
    )


@dataclass
class ShardResult:
    """What one shard gave: its inputs (images and videos), how many could not be read, and the first few errors."""

    shard: str
    images: int
    errors: int
    first_errors: list[str] = field(default_factory=list)
    #: the shard's per-frame table (:func:`frames_output`) when the run writes one, else None
    frames: pa.Table | None = field(default=None, repr=False)


def id_columns(ids: Sequence[bytes]) -> tuple[list[str], list[bytes | None]]:
    """Ids as bytes -> the ``id`` (text) and ``id_bytes`` (null for UTF-8 ids) columns."""
    text: list[str] = []
    raw: list[bytes | None] = []
    for value in ids:
        try:
            text.append(value.decode("utf-8"))
            raw.append(None)
        except UnicodeDecodeError:
            text.append(shown(value))
            raw.append(value)
    return text, raw


def shard_output(
    shard: Shard,
    ids: Sequence[bytes],
    scores: Sequence[float | None],
    errors: Sequence[str | None],
    read_errors: Sequence[str | None],
    attributes: Mapping[str, Sequence[float | None]] | None = None,
    source: Mapping[str, Any] | None = None,
    *,
    frames: Sequence[int | None] | None = None,
    scales: Mapping[str, Sequence[float | None]] | None = None,
    frame_times: Sequence[Sequence[float] | None] | None = None,
    frame_scores: Sequence[Sequence[float] | None] | None = None,
) -> tuple[pa.Table, ShardResult]:
    """The output table of a shard (rows in the shard's order) and its counts.

    A reader's error (a tar that breaks off) takes the place of the scorer's; a non-finite score,
    scaled score or attribute value makes its row an error row.

    Args:
        shard: the shard.
        ids: each row's id, as bytes.
        scores: each row's raw score (None: an error).
        errors: the scorer's error of each row.
        read_errors: the reader's error of each row.
        attributes: name -> one value per row.
        source: what the reader recorded of a tar (size, mtime_ns).
        frames: each row's sampled frames (None: an image).
        scales: ``mos`` / ``percentile`` -> one value per row.
        frame_times, frame_scores: each video's frames, for :func:`frames_output`; None: no per-frame file.

    Returns:
        The table and a :class:`ShardResult` (its ``frames`` holds the per-frame table, if asked).
    """
    n = len(ids)
    values = {name: list(column) for name, column in (scales or {}).items()}
    values.update((name, list(column)) for name, column in (attributes or {}).items())
    scores, errors = list(scores), [r if r is not None else e for e, r in zip(errors, read_errors)]
    counts = list(frames) if frames is not None else [None] * n
    for i, score in enumerate(scores):
        problem = None
        if errors[i] is None:
            problem = non_finite_score(name_of(ids[i]), score) if score is not None else None
            for name, column in values.items():
                if problem is None and column[i] is not None:
                    problem = non_finite_score(name_of(ids[i]), column[i], what=name)
            if problem is None:
                continue
            errors[i] = str(problem)
        scores[i] = counts[i] = None
        for column in values.values():
            column[i] = None
    errors = [None if e is None else clean_text(e) for e in errors]
    text, raw = id_columns(ids)
    schema = output_schema(list(attributes or {}), list(scales or {})).with_metadata(_record(shard, source))
    table = pa.Table.from_arrays(
        [
            pa.array(text, pa.string()),
            pa.array(scores, pa.float32()),
            *(pa.array(values[name], pa.float32()) for name in scales or {}),
            *(pa.array(values[name], pa.float32()) for name in attributes or {}),
            pa.array(counts, pa.int32()),
            pa.array(errors, pa.string()),
            pa.array([shard.name] * n, pa.string()),
            pa.array(raw, pa.binary()),
        ],
        schema=schema,
    )
    failed = [e for e in errors if e is not None]
    result = ShardResult(shard.name, n, len(failed), failed[:5])
    if frame_times is not None and frame_scores is not None:
        scored = [i for i in range(n) if errors[i] is None and frame_scores[i] is not None]
        result.frames = frames_output(
            shard, [ids[i] for i in scored], [frame_times[i] for i in scored], [frame_scores[i] for i in scored]
        )
    return table, result


def frames_output(
    shard: Shard, ids: Sequence[bytes], times: Sequence[Sequence[float]], scores: Sequence[Sequence[float]]
) -> pa.Table:
    """The per-frame table of a shard (:func:`frames_schema`): each video's frames, in the shard's order."""
    text, raw = id_columns(ids)
    counts = [len(s) for s in scores]
    repeat = pa.array(np.repeat(np.arange(len(ids)), counts), pa.int64())
    schema = frames_schema().with_metadata(_record(shard, None, frames=True))
    return pa.Table.from_arrays(
        [
            pa.array(text, pa.string()).take(repeat),
            pa.array([k for c in counts for k in range(c)], pa.int32()),
            pa.array([t for part in times for t in part], pa.float64()),
            pa.array([v for part in scores for v in part], pa.float32()),
            pa.array(raw, pa.binary()).take(repeat),
        ],
        schema=schema,
    )


def _record(shard: Shard, source: Mapping[str, Any] | None, *, frames: bool = False) -> dict[bytes, bytes]:
    record = {"version": __version__, "shard": shard.name, "source": dict(source) if source else None}
    if frames:
        record["frames"] = True
    return {OUTPUT_MARKER: json.dumps(record).encode()}


def output_record(folder: OutputFolder, shard: Shard) -> dict[str, Any]:
    """temu's record in the metadata of ``shard``'s output (see the module docstring); {} if it has none."""
    metadata = pq.read_schema(folder.path(shard.file_name), filesystem=folder.fs).metadata or {}
    try:
        return json.loads(metadata.get(OUTPUT_MARKER, b"{}"))
    except ValueError:
        return {}


def count_errors(folder: OutputFolder, shards: Sequence[Shard]) -> int:
    """Error rows in the outputs of ``shards`` that exist, read from the Parquet footers."""
    total = 0
    names = folder.names()
    for shard in shards:
        if shard.file_name not in names:
            continue
        meta = pq.read_metadata(folder.path(shard.file_name), filesystem=folder.fs)
        column = meta.schema.to_arrow_schema().get_field_index("error")
        groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
        stats = [g.column(column).statistics for g in groups]
        if all(s is not None and s.has_null_count for s in stats):
            total += sum(g.num_rows - s.null_count for g, s in zip(groups, stats))
        else:
            table = pq.read_table(folder.path(shard.file_name), columns=["error"], filesystem=folder.fs)
            total += table.num_rows - table.column("error").null_count
    return total


def exact_ids(table: pa.Table) -> pa.Array:
    """The ids' exact bytes (``id_bytes`` where set, else the UTF-8 of ``id``)."""
    text = table.column("id").combine_chunks().cast(pa.binary())
    raw = table.column("id_bytes").combine_chunks()
    return pc.if_else(pc.is_valid(raw), raw, text)


def write_lines(stream: Any, values: pa.Array, chunk: int = 1 << 20) -> None:
    """One value per line (exact bytes), joined by pyarrow in chunks (no Python string per row)."""
    for start in range(0, len(values), chunk):
        part = values.slice(start, chunk)
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(part)], pa.int32()), part), b"\n")
        stream.write(joined[0].as_py() + b"\n")
