"""Selections from a corpus output: :func:`select` keeps the best rows by one rule (``temu select``).

A selection reads only the columns it needs, shard file by shard file, with ``pyarrow.compute``:
pass 1 reads the ranking column and ``error`` and finds the threshold (for ``top`` / ``top_k``,
the k-th largest value); pass 2 reads the ids of the rows at or above it. Ties are broken by id
(then by the exact bytes of the id, the shard's place in the plan and the row's place in its
shard), so a selection is deterministic. Error rows are never kept; they are counted.

The ranking column is any float column of the shard outputs (``score``, a calibrated ``mos`` or
``percentile`` of a run with ``scale=``, an attribute column; :func:`ranking_columns`); higher is
better.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import posixpath
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .._version import __version__
from ..errors import CorpusError, TeMuWarning, os_reason
from ..files import temporary_name
from .names import name_of
from .output import exact_ids, write_lines
from .plan import SUCCESS_NAME, OutputFolder, Plan
from .reshard import check_sources
from .reshard import write_shards as reshard
from .uris import Filesystems

#: What an ``output=`` file may end in.
OUTPUT_SUFFIXES = (".txt", ".csv", ".parquet")
SELECTION_NAME = "selection.json"
DEFAULT_SAMPLES_PER_SHARD = 10_000
#: columns of a shard output that are never a ranking column
_NOT_RANKING = frozenset({"id", "error", "shard", "id_bytes"})


@dataclass
class Selection:
    """The report of :func:`select`.

    ``kept`` rows of ``scored`` (rows with a value of ``by``), ``dropped`` = scored - kept,
    ``errors`` (error rows, never kept); ``threshold``: the lowest value kept (``top``, ``top_k``)
    or ``min_score``; ``complete``: the scores were a finished run (``missing_shards`` otherwise).
    ``table``: the kept rows, best first (``id``, the ``by`` column, ``rank`` from 1, ``shard``,
    ``id_bytes``). ``files``: what was written; ``notes``: what the caller should be told.
    """

    rule: str
    value: float
    by: str
    scores: str
    kept: int = 0
    scored: int = 0
    errors: int = 0
    threshold: float | None = None
    complete: bool = True
    missing_shards: int = 0
    table: pa.Table | None = field(default=None, repr=False)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return self.scored - self.kept

    def summary(self) -> str:
        threshold = "none" if self.threshold is None else f"{self.by} >= {self.threshold:.6g}"
        return f"kept {self.kept} of {self.scored} (threshold {threshold}), errors {self.errors}"

    def record(self) -> dict[str, Any]:
        """What ``selection.json`` holds (without the files)."""
        return {
            "rule": {self.rule: self.value, "by": self.by},
            "threshold": self.threshold,
            "kept": self.kept,
            "dropped": self.dropped,
            "errors": self.errors,
            "scored": self.scored,
            "scores": {"location": self.scores, "complete": self.complete, "missing_shards": self.missing_shards},
            "temu_version": __version__,
        }


def ranking_columns(schema: pa.Schema) -> list[str]:
    """What ``by=`` may name in shard outputs of this schema: its float columns (``score``, attributes)."""
    return [f.name for f in schema if f.name not in _NOT_RANKING and pa.types.is_floating(f.type)]


def select(
    scores: str | os.PathLike[str],
    *,
    top: float | None = None,
    top_k: int | None = None,
    min_score: float | None = None,
    by: str = "score",
    output: str | os.PathLike[str] | None = None,
    write_shards: str | os.PathLike[str] | None = None,
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD,
    require_complete: bool = False,
    overwrite: bool = False,
) -> Selection:
    """Keep the best rows of a corpus output (``temu score --output DIR/``) by one rule.

    Args:
        scores: the output folder of a corpus run (local or a URI).
        top: keep this fraction of the scored rows, in (0, 1] (``ceil(top * scored)`` rows).
        top_k: keep this many rows (all when fewer are scored).
        min_score: keep the rows whose ``by`` value is at least this.
        by: the column to rank by: ``score``, ``mos`` / ``percentile`` (a run with ``scale=``) or an
            attribute column.
        output: also write the kept ids, best first: ``.txt`` (one id per line, exact bytes),
            ``.csv`` or ``.parquet`` (id, the ``by`` column, rank), with ``NAME.selection.json`` beside it.
        write_shards: a new folder: WebDataset inputs -> new ``.tar`` s holding every member of each
            kept sample, byte-identical, in input order; Parquet tables -> new ``.parquet`` files of
            the kept rows; folders and lists -> ``.txt`` lists of the kept paths; and ``selection.json``.
        samples_per_shard: kept samples (rows) per new tar (Parquet file).
        require_complete: refuse scores of an unfinished run (else a :class:`~temu.errors.TeMuWarning`
            says how many shards are missing, and those shards' rows are not considered).
        overwrite: replace an existing ``output`` (and a ``write_shards`` folder of an earlier selection).

    Returns:
        :class:`Selection`.

    Raises:
        CorpusError: a bad argument (named), a folder that is not a corpus output, a missing ``by``
            column, an unfinished run with ``require_complete``, an output in the way, an input tar
            or table that changed since scoring. Nothing is written then.
    """
    rule, value = _rule(top, top_k, min_score)
    if not isinstance(by, str) or not by:
        raise CorpusError(f"by={by!r}: expected a column name such as 'score'")
    if isinstance(samples_per_shard, bool) or not isinstance(samples_per_shard, int) or samples_per_shard < 1:
        raise CorpusError(f"samples_per_shard={samples_per_shard!r}: expected a positive integer")
    location = os.fspath(scores)
    filesystems = Filesystems()
    folder = OutputFolder(location, filesystems)
    plan = folder.read_plan()
    if plan is None:
        raise CorpusError(f"{location}: not the output folder of a corpus run (no _temu/plan.json); give scores=DIR")
    names = folder.names()
    done = [(k, s) for k, s in enumerate(plan.shards) if s.file_name in names]
    missing = len(plan.shards) - len(done)
    report = Selection(rule, value, by, location, complete=SUCCESS_NAME in names and not missing)
    report.missing_shards = missing
    if not report.complete:
        what = f"{missing} of {len(plan.shards)} shards have no output yet" if missing else "there is no _SUCCESS"
        if require_complete:
            raise CorpusError(
                f"{location} is not a finished run ({what}); finish it, or leave out require_complete=True"
            )
        warnings.warn(
            f"{location} is not a finished run ({what}); selecting from the {len(done)} shard(s) done",
            TeMuWarning,
            stacklevel=2,
        )
    if done:
        available = ranking_columns(pq.read_schema(folder.path(done[0][1].file_name), filesystem=folder.fs))
        if by not in available:
            hint = f" (score it with scale={by!r} and a calibrated head)" if by in ("mos", "percentile") else ""
            raise CorpusError(f"by={by!r}: {location} has no such column{hint}; it ranks by {', '.join(available)}")
    if by == "mos" and plan.settings.get("mos_lower_better"):
        raise CorpusError(
            f"by='mos': the MOS of {location} is a DMOS (lower is better) and a selection keeps the highest values; "
            "give by='score' or by='percentile', which rank the inputs in the same order"
        )
    try:
        targets = _targets(filesystems, output, write_shards, overwrite)
    except CorpusError:
        raise
    except (OSError, ValueError) as err:  # a location that cannot be looked at, a URI scheme pyarrow does not know
        where = ", ".join(f"{k}={os.fspath(v)!r}" for k, v in (("output", output), ("write_shards", write_shards)) if v)
        raise CorpusError(f"{where}: cannot be used ({os_reason(err) if isinstance(err, OSError) else err})") from None
    threshold, cut = _threshold(folder, done, by, rule, value, report)
    kept = _kept(folder, done, [s.name for s in plan.shards], by, threshold, cut)
    if write_shards is not None:  # before anything is written
        check_sources(plan, folder, pc.unique(kept.column("order")).to_pylist(), filesystems)
    report.table = kept.drop_columns(["row", "order"])
    report.kept = kept.num_rows
    if report.kept:
        report.threshold = float(value) if rule == "min_score" else float(kept.column(by)[-1].as_py())

    record = {**report.record(), "source": _source(plan)}
    if output is not None:
        path = os.fspath(output)
        _write_ids(filesystems, path, report.table, by)
        json_path = selection_json_path(path)
        _write_json(filesystems, json_path, {**record, "files": [path]})
        report.files += [path, json_path]
    if write_shards is not None:
        directory = os.fspath(write_shards)
        files, notes = reshard(kept, plan, folder, filesystems, directory, samples_per_shard, targets["old_files"])
        json_path = posixpath.join(directory.rstrip("/"), SELECTION_NAME)
        _write_json(filesystems, json_path, {**record, "files": files, "samples_per_shard": samples_per_shard})
        report.files += [*files, json_path]
        report.notes += notes
    return report


def selection_json_path(output: str) -> str:
    """Where the record of a selection written to ``output`` goes: ``keep.txt`` -> ``keep.selection.json``."""
    stem, _ = posixpath.splitext(output)
    return f"{stem}.{SELECTION_NAME}"


def _rule(top: Any, top_k: Any, min_score: Any) -> tuple[str, float]:
    given = [(n, v) for n, v in (("top", top), ("top_k", top_k), ("min_score", min_score)) if v is not None]
    if len(given) != 1:
        names = ", ".join(f"{n}=" for n, _ in given) if given else "none"
        raise CorpusError(f"give exactly one rule: top=FRACTION, top_k=N or min_score=X (given: {names})")
    name, value = given[0]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "top" and not (number and 0 < value <= 1):
        raise CorpusError(f"top={value!r}: expected a fraction in (0, 1], e.g. 0.1 for the best 10%")
    if name == "top_k" and not (number and isinstance(value, int) and value >= 1):
        raise CorpusError(f"top_k={value!r}: expected a positive integer")
    if name == "min_score" and not (number and math.isfinite(value)):
        raise CorpusError(f"min_score={value!r}: expected a finite number")
    return name, value


def _targets(filesystems: Filesystems, output: Any, write_shards: Any, overwrite: bool) -> dict[str, Any]:
    """Refuse outputs in the way before anything is read at length or written; what the shards' folder holds."""
    targets: dict[str, Any] = {"old_files": []}
    if output is not None:
        path = os.fspath(output)
        if not path.lower().endswith(OUTPUT_SUFFIXES) or path.endswith("/"):
            raise CorpusError(f"output={path!r}: expected a file ending in {', '.join(OUTPUT_SUFFIXES)}")
        for where in (path, selection_json_path(path)):
            kind = _kind(filesystems, where)
            if kind == pafs.FileType.Directory:
                raise CorpusError(f"output={where!r} is a folder; give a file name")
            if kind == pafs.FileType.File and not overwrite:
                raise CorpusError(f"output={where!r} exists; pass overwrite=True to replace it, or give another name")
    if write_shards is not None:
        directory = os.fspath(write_shards)
        fs, base = filesystems.resolve(directory)
        kind = fs.get_file_info(base).type
        if kind == pafs.FileType.File:
            raise CorpusError(f"write_shards={directory!r} is a file; give a new folder")
        if kind == pafs.FileType.Directory:
            entries = fs.get_file_info(pafs.FileSelector(base, recursive=False))
            if entries:
                previous = posixpath.join(base, SELECTION_NAME)
                if not overwrite:
                    raise CorpusError(
                        f"write_shards={directory!r} is not empty; pass overwrite=True to replace an earlier "
                        "selection there, or give a new folder"
                    )
                if fs.get_file_info(previous).type != pafs.FileType.File:
                    raise CorpusError(
                        f"write_shards={directory!r} holds files that are not a temu selection; give a new folder"
                    )
                with fs.open_input_stream(previous) as stream:
                    try:
                        files = json.loads(stream.read().decode("utf-8")).get("files", [])
                    except (ValueError, AttributeError):
                        files = []
                targets["old_files"] = [f for f in files if isinstance(f, str)] + [previous]
    return targets


def _kind(filesystems: Filesystems, location: str) -> pafs.FileType:
    fs, path = filesystems.resolve(location)
    return fs.get_file_info(path).type


def _threshold(
    folder: OutputFolder, done: list[tuple[int, Any]], by: str, rule: str, value: float, report: Selection
) -> tuple[float, int | None]:
    """Pass 1 (``by`` and ``error`` only): counts, and ``(threshold, rows to keep)``; ``None`` rows: all at or above it."""
    values = []
    for _, shard in done:
        table = pq.read_table(folder.path(shard.file_name), columns=[by, "error"], filesystem=folder.fs)
        report.errors += table.num_rows - table.column("error").null_count
        ranked = table.column(by)
        valid = pc.and_(pc.is_null(table.column("error")), pc.is_valid(ranked))
        values.append(pc.filter(ranked, valid).to_numpy(zero_copy_only=False))
    scored = np.concatenate(values) if values else np.zeros(0, np.float32)
    report.scored = len(scored)
    if rule == "min_score":
        return float(value), None
    k = min(len(scored), math.ceil(round(value * len(scored), 6)) if rule == "top" else int(value))
    if k == 0:
        return math.inf, 0
    return float(np.partition(scored, len(scored) - k)[len(scored) - k]), k


def _kept(
    folder: OutputFolder, done: list[tuple[int, Any]], names: list[str], by: str, threshold: float, cut: int | None
) -> pa.Table:
    """Pass 2: the rows at or above ``threshold``, best first, ties by id; the first ``cut`` of them,
    with ``shard`` (``names[order]``) and where each row is: ``order`` (the shard's place in the
    plan) and ``row`` (its place in the shard's output)."""
    parts = []
    for order, shard in done:
        table = pq.read_table(
            folder.path(shard.file_name), columns=["id", "id_bytes", by, "error"], filesystem=folder.fs
        )
        values = table.column(by)
        mask = pc.and_(pc.is_null(table.column("error")), pc.greater_equal(values, pa.scalar(threshold, values.type)))
        mask = pc.fill_null(mask, False)
        rows = pc.indices_nonzero(mask)
        if not len(rows):
            continue
        part = table.select(["id", "id_bytes"]).filter(mask)
        part = part.append_column(by, pc.filter(values, mask)).append_column("row", rows.cast(pa.int64()))
        parts.append(part.append_column("order", pa.array(np.full(len(rows), order, np.int64))))
    schema = pa.schema(
        [("id", pa.string()), ("id_bytes", pa.binary()), (by, pa.float32()), ("row", pa.int64()), ("order", pa.int64())]
    )
    table = pa.concat_tables(parts).combine_chunks() if parts else schema.empty_table()
    keys = [
        (by, "descending"),
        ("id", "ascending"),
        ("id_bytes", "ascending"),
        ("order", "ascending"),
        ("row", "ascending"),
    ]
    indices = pc.sort_indices(table, sort_keys=keys)
    if cut is not None:
        indices = indices[:cut]
    table = table.take(indices)
    return pa.table(
        {
            "id": table.column("id"),
            by: table.column(by),
            "rank": pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)),
            "shard": pa.array(names, pa.string()).take(table.column("order")),
            "id_bytes": table.column("id_bytes"),
            "row": table.column("row"),
            "order": table.column("order"),
        }
    )


def _write_ids(filesystems: Filesystems, path: str, table: pa.Table, by: str) -> None:
    suffix = posixpath.splitext(path.lower())[1]
    if suffix == ".parquet":
        data = table.select(["id", by, "rank", "id_bytes"])
        _write(filesystems, path, lambda stream: pq.write_table(data, stream))
    elif suffix == ".csv":
        _write(filesystems, path, lambda stream: write_csv(stream, table, by))
    else:
        text = table.column("id")
        broken = pc.any(pc.match_substring_regex(text, r"[\r\n]")).as_py() if len(text) else False
        if broken:
            raise CorpusError(
                f"output={path!r}: an id holds a line break, which a .txt list cannot hold; use .csv or .parquet"
            )
        _write(filesystems, path, lambda stream: write_lines(stream, exact_ids(table)))


def write_csv(stream: Any, table: pa.Table, by: str, chunk: int = 1 << 16) -> None:
    """``id,<by>,rank`` rows; ids as their exact bytes (as ``temu score`` writes names: UTF-8 with
    surrogate escapes; read with ``errors="surrogateescape"``)."""
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(["id", by, "rank"])
    stream.write(header.getvalue().encode())
    ids = exact_ids(table)
    for start in range(0, table.num_rows, chunk):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
        names = [name_of(v) for v in ids.slice(start, chunk).to_pylist()]
        values = table.column(by).slice(start, chunk).to_pylist()
        ranks = table.column("rank").slice(start, chunk).to_pylist()
        for name, value, rank in zip(names, values, ranks):
            (quoted if "\r" in name else writer).writerow([name, f"{value:.6f}", rank])
        stream.write(buffer.getvalue().encode("utf-8", "surrogateescape"))


def _write(filesystems: Filesystems, location: str, write: Callable[[Any], None]) -> None:
    """``write(stream)`` into a hidden temporary file beside ``location``, then renamed to it."""
    fs, path = filesystems.resolve(location)
    tmp = temporary_name(path)
    try:
        fs.create_dir(posixpath.dirname(path) or ".", recursive=True)
        with fs.open_output_stream(tmp) as stream:
            write(stream)
        fs.move(tmp, path)
    except OSError as err:
        raise CorpusError(f"{location}: cannot be written ({os_reason(err)})") from err
    finally:
        try:
            if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                fs.delete_file(tmp)
        except OSError:
            pass


def _write_json(filesystems: Filesystems, location: str, body: dict[str, Any]) -> None:
    data = (json.dumps(body, indent=1) + "\n").encode("ascii")
    _write(filesystems, location, lambda stream: stream.write(data))


def _source(plan: Plan) -> dict[str, Any]:
    model = plan.settings.get("model", {})
    return {
        "inputs": plan.inputs,
        "model": {k: model.get(k) for k in ("backbone", "pretrained", "variant", "image_size") if k in model},
        "head_sha256": plan.settings.get("head_sha256"),
        "precision": plan.settings.get("precision"),
        "attributes": plan.options.get("attributes"),
        "scale": plan.options.get("scale"),
    }
