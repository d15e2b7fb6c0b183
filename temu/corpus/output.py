"""The output file of a shard: its schema (one place), its rows, its counts.

``<shard>.parquet`` has :func:`output_schema`: ``id`` (text), ``score`` (float32 in [0, 1], null
when the image could not be read), one float32 column per attribute (in [0, 1], null with the
score), ``error`` (null when scored), ``shard``, and ``id_bytes``: the id's exact bytes when it
is not UTF-8 (a file or member name from an old disk), else null. In ``id`` such a name has each
byte that is not UTF-8 written as ``\\xNN``; ``os.fsdecode(id_bytes)`` gives the name as Python's
``os`` functions hold it. One row per image, in the shard's order. No value is NaN or infinite:
such a value makes its row an error row (:func:`temu.errors.non_finite_score`).

The file's Parquet metadata carries temu's record (key ``temu``, JSON: temu's version, the
shard's name, and for a tar its ``size`` and ``mtime_ns`` as it was read), by which temu knows
its own files (``overwrite=True``) and a selection knows whether a tar changed since scoring.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def output_schema(attributes: Sequence[str] = ()) -> pa.Schema:
    """The schema of every shard output of a run with these attribute columns (see the module docstring)."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("score", pa.float32()),
            *((name, pa.float32()) for name in attributes),
            ("error", pa.string()),
            ("shard", pa.string()),
            ("id_bytes", pa.binary()),
        ]
    )


@dataclass
class ShardResult:
    """What one shard gave: its images, how many could not be read, and the first few errors."""

    shard: str
    images: int
    errors: int
    first_errors: list[str] = field(default_factory=list)


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
) -> tuple[pa.Table, ShardResult]:
    """The output table of a shard (rows in the shard's order) and its counts. A reader's error
    (a tar that breaks off) takes the place of the scorer's; a non-finite score or attribute value
    makes its row an error row. ``attributes``: name -> one value per row. ``source``: what the
    reader recorded of a tar (size, mtime_ns)."""
    attributes = dict(attributes or {})
    scores, errors = list(scores), [r if r is not None else e for e, r in zip(errors, read_errors)]
    values = {name: list(column) for name, column in attributes.items()}
    for i, score in enumerate(scores):
        if errors[i] is not None:
            scores[i] = None
            for column in values.values():
                column[i] = None
            continue
        problem = non_finite_score(name_of(ids[i]), score) if score is not None else None
        for name, column in values.items():
            if problem is None and column[i] is not None:
                problem = non_finite_score(name_of(ids[i]), column[i], what=name)
        if problem is not None:
            errors[i], scores[i] = str(problem), None
            for column in values.values():
                column[i] = None
    errors = [None if e is None else clean_text(e) for e in errors]
    text, raw = id_columns(ids)
    record = {"version": __version__, "shard": shard.name, "source": dict(source) if source else None}
    schema = output_schema(list(values)).with_metadata({OUTPUT_MARKER: json.dumps(record).encode()})
    table = pa.Table.from_arrays(
        [
            pa.array(text, pa.string()),
            pa.array(scores, pa.float32()),
            *(pa.array(column, pa.float32()) for column in values.values()),
            pa.array(errors, pa.string()),
            pa.array([shard.name] * len(ids), pa.string()),
            pa.array(raw, pa.binary()),
        ],
        schema=schema,
    )
    failed = [e for e in errors if e is not None]
    return table, ShardResult(shard.name, len(ids), len(failed), failed[:5])


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
