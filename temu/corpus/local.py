"""The local engine: the shards scored one after another in this process, decoding on threads.

One process of ``temu score --output DIR/`` (or of ``--shard I/N`` / torchrun / a Slurm array,
each process its share of the plan). Same interface as :class:`temu.corpus.ray.RayEngine`
(:class:`temu.corpus.engine.Engine`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import torch

from ..images.video import VideoSampling
from ..inference import ScoreResult
from ..precision import Precision
from ..runtime import Launch, resolve_device
from ..video import Reduction
from .names import name_of
from .output import ShardResult, shard_output
from .plan import OutputFolder, Shard
from .read import read_shard
from .scorer import BatchScorer
from .uris import Filesystems


def score_shard(
    shard: Shard, scorer: BatchScorer, filesystems: Filesystems, *, max_member_size: int, per_frame: bool = False
) -> tuple[pa.Table, ShardResult]:
    """Read, decode and score one shard in this process.

    Args:
        shard: the shard (from the plan).
        scorer: the model and its batching (:class:`~temu.corpus.scorer.BatchScorer`).
        filesystems: where the inputs are read from.
        max_member_size: the largest image read, in bytes; a larger one is an error row.
        per_frame: also make the per-frame table (``ShardResult.frames``).

    Returns:
        The shard's output table and its counts.
    """
    ids: list[bytes] = []
    read_errors: list[str | None] = []
    source: dict[str, Any] = {}

    def items() -> Iterator[tuple[Any, str, bool]]:
        for chunk in read_shard(shard, filesystems, max_member_size=max_member_size, source=source):
            columns = [chunk.column(name).to_pylist() for name in ("id", "image", "path", "read_error", "video")]
            for key, image, path, error, video in zip(*columns):
                ids.append(key)
                read_errors.append(error)
                name = name_of(key)
                yield (image if image is not None else _path(path)), name, bool(video)

    results = list(scorer.score(items()))
    return results_output(shard, ids, results, read_errors, source, scorer, per_frame=per_frame)


def results_output(
    shard: Shard,
    ids: list[bytes],
    results: list[ScoreResult],
    read_errors: list[str | None],
    source: dict[str, Any] | None,
    scorer: BatchScorer,
    *,
    per_frame: bool,
) -> tuple[pa.Table, ShardResult]:
    """The output of a shard from its :class:`~temu.inference.ScoreResult` s.

    Args:
        shard, source: as for :func:`~temu.corpus.output.shard_output`.
        ids: each row's id, as bytes.
        results: each row's result, in the shard's order.
        read_errors: each row's reader error (None: read).
        scorer: gives the attribute and scale names.
        per_frame: also make the per-frame table.

    Returns:
        :func:`~temu.corpus.output.shard_output` of the results.
    """
    names = list(scorer.predictor.attributes or {})
    attributes = {n: [r.attributes[n] if r.attributes else None for r in results] for n in names}
    return shard_output(
        shard,
        ids,
        [r.score for r in results],
        [r.error for r in results],
        read_errors,
        attributes,
        source,
        frames=[r.frames for r in results],
        scales={s: [getattr(r, s) for r in results] for s in scorer.scales},
        frame_times=[r.timestamps for r in results] if per_frame else None,
        frame_scores=[r.frame_scores for r in results] if per_frame else None,
    )


def _path(raw: bytes | None) -> str | None:
    return None if raw is None else name_of(raw)


def write_shard(folder: OutputFolder, shard: Shard, table: pa.Table, result: ShardResult) -> None:
    """A shard's outputs, each written whole under a temporary name and renamed: the per-frame file
    (when there is one) first, so a shard file never stands without it."""
    if result.frames is not None:
        folder.write_table(shard.frames_name, result.frames)
    folder.write_table(shard.file_name, table)


class LocalEngine:
    """Scores shards in this process on ``device`` (None: :func:`temu.runtime.resolve_device`; under
    torchrun ``cuda:LOCAL_RANK``). See :func:`temu.corpus.run` for the arguments."""

    name = "local"

    def __init__(
        self,
        model: str,
        *,
        device: str | torch.device | None,
        batch_size: int,
        precision: Precision,
        decode_threads: int | None,
        compile: bool,
        attributes: Mapping[str, tuple[str, str]] | None,
        max_member_size: int,
        filesystems: Filesystems,
        launch: Launch | None = None,
        sampling: VideoSampling | None = None,
        reduce: Reduction = "mean",
        per_frame: bool = False,
        scale: tuple[str, ...] = (),
    ) -> None:
        self.sampling, self.reduce, self.per_frame, self.scale = sampling, reduce, per_frame, scale
        self.model, self.batch_size, self.precision = model, batch_size, precision
        self.decode_threads, self.compile, self.attributes = decode_threads, compile, attributes
        self.max_member_size, self.filesystems = max_member_size, filesystems
        self.requested_device, self.launch = device, launch
        self.device: torch.device | None = None
        self.scorer: BatchScorer | None = None

    def start(self) -> str:
        """Choose the device; its type (``"cuda"``, ``"cpu"``, ...). DeviceError if it cannot be used."""
        local_rank = self.launch.local_rank if self.launch is not None and self.launch.torchrun else None
        self.device = resolve_device(self.requested_device, local_rank=local_rank)
        return self.device.type

    def load(self) -> None:
        """Load the model (shared :data:`temu.MODEL_CACHE`); TeMuError / OSError if it cannot be loaded."""
        from ..cache import cached_model

        net = cached_model(self.model, self.device, compile=self.compile)
        self.scorer = BatchScorer(
            net,
            batch_size=self.batch_size,
            precision=self.precision,
            threads=self.decode_threads,
            filesystems=self.filesystems,
            attributes=self.attributes,
            max_bytes=self.max_member_size,
            sampling=self.sampling,
            reduce=self.reduce,
            scale=self.scale,
        )

    def score_shards(
        self,
        shards: Sequence[Shard],
        folder: OutputFolder,
        *,
        on_shard: Callable[[ShardResult], None],
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        """Score ``shards`` one after another, writing each one's output when it is complete (its
        per-frame file first)."""
        assert self.scorer is not None, "load() first"
        for shard in shards:
            table, result = score_shard(
                shard, self.scorer, self.filesystems, max_member_size=self.max_member_size, per_frame=self.per_frame
            )
            write_shard(folder, shard, table, result)
            on_shard(result)

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()
            self.scorer = None
