"""Scoring the shards of a plan: the output table of a shard, this process's engine, the run's report.

An output file ``<shard>.parquet`` has :data:`OUTPUT_SCHEMA`: ``id``, ``score`` (float32 in
[0, 1], null when the image could not be read), ``error`` (null when scored) and ``shard``, one
row per image in the shard's order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .plan import SUCCESS_NAME, OutputFolder, Plan, Shard
from .read import read_shard
from .scorer import BatchScorer
from .uris import Filesystems

OUTPUT_SCHEMA = pa.schema(
    [("id", pa.string()), ("score", pa.float32()), ("error", pa.string()), ("shard", pa.string())]
)


@dataclass
class ShardResult:
    """What one shard gave: its images, how many could not be read, and the first few errors."""

    shard: str
    images: int
    errors: int
    first_errors: list[str] = field(default_factory=list)


def shard_output(
    shard: Shard,
    ids: Sequence[str | None],
    scores: Sequence[float | None],
    errors: Sequence[str | None],
    read_errors: Sequence[str | None],
) -> tuple[pa.Table, ShardResult]:
    """The output table of a shard (rows in the shard's order) and its counts. A reader's error
    (a tar that breaks off) takes the place of the scorer's."""
    errors = [r if r is not None else e for e, r in zip(errors, read_errors)]
    table = pa.Table.from_arrays(
        [
            pa.array(ids, pa.string()),
            pa.array(scores, pa.float32()),
            pa.array(errors, pa.string()),
            pa.array([shard.name] * len(ids), pa.string()),
        ],
        schema=OUTPUT_SCHEMA,
    )
    failed = [e for e in errors if e is not None]
    return table, ShardResult(shard.name, len(ids), len(failed), failed[:5])


def score_shard(shard: Shard, scorer: BatchScorer, filesystems: Filesystems) -> tuple[pa.Table, ShardResult]:
    """Read, decode and score one shard in this process."""
    ids: list[str | None] = []
    read_errors: list[str | None] = []

    def items() -> Iterator[tuple[Any, str]]:
        for chunk in read_shard(shard, filesystems):
            columns = {name: chunk.column(name).to_pylist() for name in ("id", "image", "path", "read_error")}
            for key, image, path, error in zip(*columns.values()):
                ids.append(key)
                read_errors.append(error)
                yield (image if image is not None else path), key

    results = list(scorer.score(items()))
    return shard_output(shard, ids, [r.score for r in results], [r.error for r in results], read_errors)


def score_shards(
    shards: Sequence[Shard],
    folder: OutputFolder,
    scorer: BatchScorer,
    filesystems: Filesystems,
    on_shard: Callable[[ShardResult], None],
) -> None:
    """Score ``shards`` one after another in this process, writing each one's output when it is complete."""
    for shard in shards:
        table, result = score_shard(shard, scorer, filesystems)
        folder.write_table(shard.file_name, table)
        on_shard(result)


def pending_shards(plan: Plan, folder: OutputFolder, index: int = 0, count: int = 1) -> tuple[list[Shard], int]:
    """Shard ``index`` of ``count`` of the plan (every count-th shard), less those already written:
    ``(shards to score, shards already done)``. Temporary files a killed run left for them are removed."""
    names = folder.names()
    mine = plan.shards_of(index, count)
    todo = [s for s in mine if s.file_name not in names]
    folder.delete(folder.stale_files(todo, names))
    return todo, len(mine) - len(todo)


def finish(plan: Plan, folder: OutputFolder) -> bool:
    """Write ``_SUCCESS`` if every shard of the plan has its output; True if the run is complete."""
    names = folder.names()
    if all(s.file_name in names for s in plan.shards):
        if SUCCESS_NAME not in names:
            folder.write_bytes(SUCCESS_NAME, b"")
        return True
    return False


def count_errors(folder: OutputFolder, shards: Sequence[Shard]) -> int:
    """Error rows in the outputs of ``shards`` that exist, read from the Parquet footers."""
    total = 0
    names = folder.names()
    for shard in shards:
        if shard.file_name not in names:
            continue
        meta = pq.read_metadata(folder.path(shard.file_name), filesystem=folder.fs)
        column = meta.schema.to_arrow_schema().get_field_index("error")
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            if stats is None or not stats.has_null_count:
                table = pq.read_table(folder.path(shard.file_name), columns=["error"], filesystem=folder.fs)
                total += table.num_rows - table.column("error").null_count
                break
            total += meta.row_group(g).num_rows - stats.null_count
    return total


class RunReport:
    """A progress bar in shards (with images and errors so far) and the closing summary, on stderr."""

    def __init__(self, shards: int, *, done_before: int, show: bool, errors_shown: int = 20) -> None:
        from tqdm.auto import tqdm

        self.images = self.errors = self.shards = self.seen = 0
        self.done_before = done_before
        self.errors_shown = errors_shown
        self.show = show
        self.bar = tqdm(total=shards, unit="shard", desc="temu", disable=not show, file=sys.stderr)

    def rows(self, n: int) -> None:
        """``n`` more images scored (progress inside shards, from engines that see it)."""
        self.seen += n
        self.bar.set_postfix_str(f"{max(self.seen, self.images)} images, {self.errors} errors")

    def add(self, result: ShardResult) -> None:
        for error in result.first_errors:
            if self.errors_shown > 0:
                self.bar.write(f"temu: skipped {error}", file=sys.stderr)
                self.errors_shown -= 1
        self.images += result.images
        self.errors += result.errors
        self.shards += 1
        self.bar.set_postfix_str(f"{max(self.seen, self.images)} images, {self.errors} errors", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()

    def summary(self) -> str:
        text = f"temu: scored {self.images - self.errors} image(s) in {self.shards} shard(s), {self.errors} could not be read"
        if self.done_before:
            text += f"; {self.done_before} shard(s) were done before"
        return text
