"""Ray Data (extra ``temu-iqa[ray]``): :class:`TeMuScorer` for ``map_batches``, and :class:`RayEngine`,
the engine behind ``temu score --engine ray`` / ``temu.corpus.run(engine="ray")``. The only module of
temu that imports ray (:mod:`temu.ray` re-exports :class:`TeMuScorer`).

>>> import ray, temu.ray
>>> ds = ray.data.read_webdataset("s3://bucket/{00000..09999}.tar", decoder=None)  # raw bytes
>>> ds = ds.map_batches(temu.ray.TeMuScorer, batch_format="pyarrow", batch_size=256, num_gpus=1,
...     fn_constructor_kwargs=dict(model="temu-iqa-s", image_column="jpg", id_column="__key__"),
...     compute=ray.data.ActorPoolStrategy(min_size=1, max_size=8))
>>> ds.write_parquet("s3://bucket/scores/")   # __key__, score (float32), error (string), frames (int32)

Images are decoded by temu's own reader, never by ``ray.data.read_images`` (one empty file aborts
the whole dataset, and it skips EXIF orientation and resizes differently) nor by
``read_webdataset``'s decoder (a bad JPEG aborts the job).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import ray
import torch

from ..cache import cached_model, load
from ..errors import CorpusError, InvalidInputError, TeMuError
from ..images.video import VideoSampling
from ..model.attributes import AttributeSpec, resolve_attributes
from ..model.calibration import Scale, parse_scales
from ..precision import Precision, check_precision
from ..runtime import resolve_device
from ..video import Reduction, check_reduce
from .local import write_shard
from .names import name_of
from .output import ShardResult, shard_output
from .plan import OutputFolder, Shard
from .read import read_shard_rows
from .scorer import BatchScorer

#: Columns TeMuScorer adds to the id column (then the scale, attribute and per-frame columns, then the kept
#: columns) of every batch.
SCORE_FIELDS = [pa.field("score", pa.float32()), pa.field("error", pa.string()), pa.field("frames", pa.int32())]
#: The per-frame columns of TeMuScorer(per_frame=True): each video's frame times and scores (null for images).
FRAME_FIELDS = [pa.field("frame_times", pa.list_(pa.float64())), pa.field("frame_scores", pa.list_(pa.float32()))]


def choose_device(device: str | torch.device | None, gpu_ids: Sequence[Any], cuda_available: bool) -> torch.device:
    """Where an actor scores: ``device`` when given; else its GPU when Ray gave it one (Ray sets
    ``CUDA_VISIBLE_DEVICES``, so that GPU is ``cuda:0``); else the CPU. A GPU from Ray that torch
    cannot see (a CPU-only torch, a broken driver) is an error, not a silent fall back to the CPU."""
    if device is not None:
        return resolve_device(device)
    if gpu_ids:
        if not cuda_available:
            raise TeMuError(
                f"Ray gave this worker GPU(s) {list(gpu_ids)} but torch sees no CUDA device "
                f"(torch {torch.__version__}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                "install a CUDA build of torch on the workers, or pass device='cpu' / num_gpus=0"
            )
        return torch.device("cuda", 0)
    return torch.device("cpu")


def _in_ray_worker() -> bool:
    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


class TeMuScorer:
    """A callable class for ``Dataset.map_batches``: the model is loaded once per actor.

    model: a preset name, head directory or Hub repo id (see :func:`temu.load`).
    image_column: encoded image bytes (binary), paths or URIs (string; ``s3://``, ``gs://``, ...
        through pyarrow's filesystems), or Hugging Face's image struct (``bytes``, ``path``);
        null entries become error rows.
    id_column: copied to the output. path_column: read from here where ``image_column`` is null
        (strings, or the bytes of paths).
    keep_columns: more input columns copied to the output.
    device: None = the actor's GPU when Ray gave it one, else the CPU (see :func:`choose_device`).
    batch_size: images per forward pass (a ``map_batches`` batch is split into these, and the
        next one is decoded on ``decode_threads`` threads while the model runs).
    attributes: None (none), default attribute names, or name -> (positive, negative) prompts: one
        float32 column each, from the same pass.
    max_image_bytes: an image (or video) of more bytes is an error row, never read (None: no limit).
    fps, frames, reduce, max_frames, max_side: videos (by name, or bytes FFmpeg opens) are scored by
        their sampled frames, as :func:`temu.iter_scores` scores them (README "Video").
    per_frame: add ``frame_times`` (list of float64 seconds) and ``frame_scores`` (list of float32)
        per video (null for images and errors).
    scale: ``"raw"``, ``"mos"``, ``"percentile"`` or a list: a float32 column per calibrated scale
        (CalibrationError in the constructor if the head lacks it).
    video_column: a boolean column; True reads the row as a video whatever its id says (a tar
        member ``000123.mp4`` keyed ``000123``).

    Returns a ``pyarrow.Table`` with the same schema for every batch: the id column, ``score``
    (float32 in [0, 1], null on error; a video's frame scores reduced), ``error`` (string, null
    when scored), ``frames`` (int32, a video's sampled frames; null for images), the scale, the
    attribute and the per-frame columns, then the kept columns. An unreadable image or video is an
    error row; anything else (CUDA out of memory, a misnamed column, a bug) raises, so Ray retries
    the batch and then fails the job.
    """

    def __init__(
        self,
        model: str = "temu-iqa-s",
        *,
        image_column: str,
        id_column: str,
        path_column: str | None = None,
        keep_columns: Sequence[str] = (),
        device: str | torch.device | None = None,
        batch_size: int = 32,
        precision: Precision = "auto",
        decode_threads: int | None = None,
        compile: bool = False,
        attributes: AttributeSpec = None,
        max_image_bytes: int | None = None,
        fps: float | None = None,
        frames: int | Literal["all"] | None = None,
        reduce: Reduction = "mean",
        max_frames: int | None = None,
        max_side: int | None = None,
        per_frame: bool = False,
        scale: Scale | Sequence[Scale] = "raw",
        video_column: str | None = None,
    ) -> None:
        check_precision(precision)
        sampling = VideoSampling(fps=fps, frames=frames, max_frames=max_frames, max_side=max_side)
        check_reduce(reduce)
        self.scales = [s for s in parse_scales(scale) if s != "raw"]
        self.per_frame, self.video_column = per_frame, video_column
        self.attributes = resolve_attributes(attributes) if attributes is not None else None
        own = {f.name for f in SCORE_FIELDS} | set(self.scales) | set(self.attributes or {})
        if per_frame:
            own |= {f.name for f in FRAME_FIELDS}
        clash = own & {id_column, *keep_columns}
        if clash:
            raise InvalidInputError(
                f"TeMuScorer: the output's own columns {sorted(clash)} cannot be kept from the input"
            )
        self.image_column, self.id_column, self.path_column = image_column, id_column, path_column
        self.keep_columns = list(keep_columns)
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()] if _in_ray_worker() else []
        self.device = self.pick_device(device)
        cpus = self._assigned_cpus()
        if self.device.type == "cpu" and _in_ray_worker():
            torch.set_num_threads(cpus)  # this actor's share of the node, not every core
        net = cached_model(model, self.device, compile=compile)
        self.scorer = BatchScorer(
            net,
            batch_size=batch_size,
            precision=precision,
            threads=decode_threads or max(2, cpus),
            attributes=self.attributes,
            max_bytes=max_image_bytes,
            sampling=sampling,
            reduce=reduce,
            scale=self.scales,
        )

    def pick_device(self, device: str | torch.device | None) -> torch.device:
        """The device this actor scores on (:func:`choose_device` with Ray's GPUs for this actor)."""
        return choose_device(device, self.gpu_ids, torch.cuda.is_available())

    @staticmethod
    def _assigned_cpus() -> int:
        if _in_ray_worker():
            return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        return os.cpu_count() or 1

    def __call__(self, batch: pa.Table | dict[str, Any] | Any) -> pa.Table:
        table = _as_table(batch)
        wanted = [self.image_column, self.id_column, *self.keep_columns]
        optional = [self.path_column, self.video_column]
        missing = [c for c in [*wanted, *optional] if c is not None and c not in table.column_names]
        if missing:
            raise InvalidInputError(
                f"TeMuScorer: the batch has no column(s) {missing}; its columns: {table.column_names}"
            )
        images = image_values(table.column(self.image_column), self.image_column)
        if self.path_column is not None:
            paths = [_text(p) for p in table.column(self.path_column).to_pylist()]
            images = [image if image is not None else path for image, path in zip(images, paths)]
        names = [_text(key) for key in table.column(self.id_column).to_pylist()]
        if self.video_column is not None:
            videos = [bool(v) for v in table.column(self.video_column).to_pylist()]
        else:
            videos = [False] * len(names)
        results = list(self.scorer.score(zip(images, names, videos)))
        names_of_attributes = list(self.attributes or {})
        columns = [
            table.column(self.id_column),
            pa.array([r.score for r in results], pa.float32()),
            pa.array([r.error for r in results], pa.string()),
            pa.array([r.frames for r in results], pa.int32()),
            *(pa.array([getattr(r, s) for r in results], pa.float32()) for s in self.scales),
            *(
                pa.array([r.attributes[n] if r.attributes else None for r in results], pa.float32())
                for n in names_of_attributes
            ),
        ]
        if self.per_frame:
            columns += [
                pa.array([r.timestamps for r in results], FRAME_FIELDS[0].type),
                pa.array([r.frame_scores for r in results], FRAME_FIELDS[1].type),
            ]
        columns += [table.column(c) for c in self.keep_columns]
        fields = [
            table.schema.field(self.id_column),
            *SCORE_FIELDS,
            *(pa.field(s, pa.float32()) for s in self.scales),
            *(pa.field(n, pa.float32()) for n in names_of_attributes),
            *(FRAME_FIELDS if self.per_frame else []),
            *(table.schema.field(c) for c in self.keep_columns),
        ]
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _text(value: Any) -> Any:
    """An id or path as text: bytes as the name they are (surrogate escapes for bytes that are not UTF-8)."""
    if isinstance(value, bytes):
        return name_of(value)
    return value if value is None else str(value)


def _as_table(batch: Any) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, dict):  # batch_format="numpy" (Ray's default)
        return pa.table(
            {
                k: pa.array(list(v)) if getattr(v, "dtype", None) is not None and v.dtype.kind == "O" else v
                for k, v in batch.items()
            }
        )
    if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas
        return pa.Table.from_pandas(batch, preserve_index=False)
    raise InvalidInputError(
        f"TeMuScorer: expected a pyarrow Table, a dict of arrays or a DataFrame, got {type(batch).__name__}"
    )


def image_values(column: pa.ChunkedArray | pa.Array, name: str = "image") -> list[Any]:
    """An image column as Python values: bytes (binary), str (paths/URIs), bytes or path from an
    image struct, None for nulls."""
    t = column.type
    if pa.types.is_null(t):
        return [None] * len(column)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        return column.to_pylist()
    if pa.types.is_struct(t) and t.get_field_index("bytes") >= 0:
        data = pc.struct_field(column, "bytes").to_pylist()
        if t.get_field_index("path") < 0:
            return data
        paths = pc.struct_field(column, "path").to_pylist()
        return [d if d is not None else p for d, p in zip(data, paths)]
    raise InvalidInputError(
        f"TeMuScorer: column {name!r} is {t}; expected binary (encoded images), string (paths or URIs) "
        "or an image struct with a 'bytes' field"
    )


# ---------------------------------------------------------------- the engine of `temu score --engine ray`

#: kept through the scorer for the driver
SHARD_COLUMNS = ["index", "shard", "shard_rows", "shard_source", "read_error"]


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at ``address`` (``"auto"``: the one this node belongs to), or start a
    local one. A local Ray gets at least 4 logical CPUs: with fewer, the readers wait for the
    scoring actors and a small pipeline stalls. True when this call started Ray (the caller shuts it down)."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=num_cpus or max(4, os.cpu_count() or 1), include_dashboard=False)
    return True


def cluster_resources() -> dict[str, float]:
    """The cluster's logical resources (``CPU``, ``GPU``, ...)."""
    return dict(ray.cluster_resources())


class RayEngine:
    """Scores shards on Ray Data: reader tasks -> :class:`TeMuScorer` actors -> this driver, which
    writes each shard's output (temporary name, then renamed) as soon as all its rows are back.
    See :func:`temu.corpus.run` for the arguments; the defaults of the worker options follow the
    cluster (README "Ray Data")."""

    name = "ray"

    def __init__(
        self,
        model: str,
        *,
        address: str | None,
        gpus_per_worker: float | None,
        cpus_per_worker: float | None,
        max_workers: int | None,
        batch_size: int,
        precision: Precision,
        decode_threads: int | None,
        compile: bool,
        attributes: Mapping[str, tuple[str, str]] | None,
        max_member_size: int,
        chunk_rows: int = 256,
        sampling: VideoSampling | None = None,
        reduce: Reduction = "mean",
        per_frame: bool = False,
        scale: tuple[str, ...] = (),
    ) -> None:
        self.sampling, self.reduce, self.per_frame, self.scale = sampling or VideoSampling(), reduce, per_frame, scale
        self.model, self.address = model, address
        self.gpus, self.cpus, self.workers = gpus_per_worker, cpus_per_worker, max_workers
        self.batch_size, self.precision, self.decode_threads = batch_size, precision, decode_threads
        self.compile, self.attributes, self.max_member_size = compile, attributes, max_member_size
        self.chunk_rows = chunk_rows
        self.started = False

    def start(self) -> str:
        """Join or start Ray and fill in the worker defaults; the actors' device type."""
        self.started = connect(self.address)
        resources = cluster_resources()
        if self.gpus is None:
            self.gpus = 1.0 if resources.get("GPU") else 0.0
        if self.cpus is None:  # CPU actors: this machine's cores, leaving one logical CPU of the cluster to the readers
            self.cpus = 4.0 if self.gpus else float(max(1, min(os.cpu_count() or 1, int(resources.get("CPU", 1)) - 1)))
        if self.workers is None:
            if self.gpus:
                self.workers = max(1, int(resources.get("GPU", 0) // self.gpus))
            else:
                self.workers = max(1, int((resources.get("CPU", 1) - 1) // self.cpus))
        return "cuda" if self.gpus else "cpu"

    def load(self) -> None:
        """Load the model once here, in the driver, and free it: a model the actors could not load
        fails now, with temu's own message, before any actor starts."""
        model = load(self.model)
        del model

    def score_shards(
        self,
        shards: Sequence[Shard],
        folder: OutputFolder,
        *,
        on_shard: Callable[[ShardResult], None],
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller shows its own bar, in shards and images
        specs = [{"shard": json.dumps(s.to_dict())} for s in shards]
        ds = ray.data.from_items(specs, override_num_blocks=max(1, len(specs)))
        ds = ds.map_batches(
            read_shard_rows,
            batch_size=1,
            batch_format="pyarrow",
            fn_kwargs={"chunk_rows": self.chunk_rows, "max_member_size": self.max_member_size},
            num_cpus=0.5,
        )
        ds = ds.map_batches(
            TeMuScorer,
            fn_constructor_kwargs={
                "model": self.model,
                "image_column": "image",
                "path_column": "path",
                "id_column": "id",
                "keep_columns": SHARD_COLUMNS,
                "batch_size": self.batch_size,
                "precision": self.precision,
                "decode_threads": self.decode_threads,
                "compile": self.compile,
                "attributes": dict(self.attributes) if self.attributes else None,
                "max_image_bytes": self.max_member_size,
                "fps": self.sampling.fps,
                "frames": self.sampling.frames,
                "reduce": self.reduce,
                "max_frames": self.sampling.max_frames,
                "max_side": self.sampling.max_side,
                "per_frame": self.per_frame,
                "scale": list(self.scale) or "raw",
                "video_column": "video",
            },
            batch_size=self.batch_size * 4,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, self.workers or 1)),
            num_gpus=self.gpus or None,
            num_cpus=self.cpus,
        )
        with _ray_failures():
            self._collect(ds.iter_batches(batch_size=None, batch_format="pyarrow"), shards, folder, on_shard, on_rows)

    def _collect(
        self,
        blocks: Iterator[pa.Table],
        shards: Sequence[Shard],
        folder: OutputFolder,
        on_shard: Callable[[ShardResult], None],
        on_rows: Callable[[int], None] | None,
    ) -> None:
        by_name = {s.name: s for s in shards}
        parts: dict[str, list[pa.Table]] = {}
        expected: dict[str, int] = {}
        sources: dict[str, Any] = {}
        received: dict[str, int] = {}
        names = list(self.attributes or {})
        for block in blocks:
            if on_rows is not None:
                on_rows(block.num_rows - pc.sum(pc.is_valid(block.column("shard_rows"))).as_py())
            for name in pc.unique(block.column("shard")).to_pylist():
                part = block.filter(pc.equal(block.column("shard"), name))
                markers = part.filter(pc.is_valid(part.column("shard_rows")))
                if markers.num_rows:
                    expected[name] = markers.column("shard_rows")[0].as_py()
                    source = markers.column("shard_source")[0].as_py()
                    sources[name] = json.loads(source) if source else None
                    part = part.filter(pc.is_null(part.column("shard_rows")))
                parts.setdefault(name, []).append(part)
                received[name] = received.get(name, 0) + part.num_rows
                if name in expected and received[name] >= expected[name]:
                    if received[name] != expected[name]:
                        raise RuntimeError(f"shard {name}: {received[name]} rows came back for {expected[name]} read")
                    rows = pa.concat_tables(parts.pop(name)).sort_by("index")
                    table, result = shard_output(
                        by_name[name],
                        rows.column("id").to_pylist(),
                        rows.column("score").to_pylist(),
                        rows.column("error").to_pylist(),
                        rows.column("read_error").to_pylist(),
                        {n: rows.column(n).to_pylist() for n in names},
                        sources.get(name),
                        frames=rows.column("frames").to_pylist(),
                        scales={s: rows.column(s).to_pylist() for s in self.scale},
                        frame_times=rows.column("frame_times").to_pylist() if self.per_frame else None,
                        frame_scores=rows.column("frame_scores").to_pylist() if self.per_frame else None,
                    )
                    write_shard(folder, by_name[name], table, result)
                    on_shard(result)
        unfinished = sorted(set(by_name) - set(expected)) + sorted(n for n in parts if n in expected)
        if unfinished:
            raise RuntimeError(f"Ray Data finished without all rows of shard(s) {unfinished[:5]}")

    def close(self) -> None:
        if self.started:
            ray.shutdown()
            self.started = False


@contextlib.contextmanager
def _ray_failures() -> Iterator[None]:
    """A task or actor that failed on temu's own error (an input changed since planning, a model
    an actor cannot load) ends the run as a :class:`~temu.CorpusError` with temu's message, not Ray's
    traceback; Ray Data's own error log is held back meanwhile (bugs still raise with their traceback)."""
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    except ray.exceptions.RayError as err:
        cause = _temu_cause(err)
        if cause is None:
            raise
        raise CorpusError(str(cause).split("\n", 1)[0]) from None  # (Ray Data appends its retry advice)
    finally:
        logger.setLevel(level)


def _temu_cause(err: BaseException) -> TeMuError | None:
    """The TeMuError inside a Ray error (a task's or an actor's, however deeply wrapped), or None."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [err]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TeMuError) and not isinstance(current, ray.exceptions.RayError):
            return current  # (Ray's copy of a task's error is both; its text is the whole traceback)
        stack.extend([getattr(current, "cause", None), current.__cause__, current.__context__])
        as_instance = getattr(current, "as_instanceof_cause", None)
        if callable(as_instance):
            with contextlib.suppress(Exception):
                inner = as_instance()
                if inner is not current:
                    stack.append(inner)
    return None
