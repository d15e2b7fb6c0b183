"""A corpus run as one library call: :func:`run` plans (or resumes), scores this process's pending
shards on an engine, writes ``_SUCCESS`` when every shard is done, and returns a :class:`CorpusRun`.

The engines (:class:`~temu.corpus.local.LocalEngine`, this process; :class:`~temu.corpus.ray.RayEngine`,
Ray Data) share one interface, :class:`Engine`. ``temu score --output DIR/`` is a thin wrapper
around :func:`run`.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ..errors import CalibrationError, CorpusError, CorpusRunError, TeMuError
from ..images.video import VideoSampling
from ..model.attributes import AttributeSpec, resolve_attributes
from ..model.calibration import Scale, parse_scales
from ..precision import PRECISIONS, Precision
from ..runtime import Launch, launch_from_environment
from ..video import Reduction, check_reduce
from .names import DEFAULT_MAX_MEMBER_SIZE, DEFAULT_SHARD_SIZE, ENGINES, RAY_OPTIONS, expand_braces, is_uri
from .output import RESERVED_COLUMNS, ShardResult, count_errors
from .plan import (
    SUCCESS_NAME,
    OutputFolder,
    Plan,
    Shard,
    calibration_settings,
    effective_precision,
    head_settings,
    open_plan,
    resume_refused,
)
from .uris import Filesystems

DEFAULT_BATCH_SIZE = 32


class Engine(Protocol):
    """What :func:`run` needs of an engine: ``start()`` (join Ray, choose the device; returns the
    device type the scores are computed on), ``load()`` (load and check the model; TeMuError /
    OSError if it cannot be loaded), ``score_shards`` (write each shard's output when complete,
    calling ``on_shard`` after each and ``on_rows`` with rows as they come back) and ``close()``."""

    name: str

    def start(self) -> str: ...

    def load(self) -> None: ...

    def score_shards(
        self,
        shards: Sequence[Shard],
        folder: OutputFolder,
        *,
        on_shard: Callable[[ShardResult], None],
        on_rows: Callable[[int], None] | None = None,
    ) -> None: ...

    def close(self) -> None: ...


@dataclass
class CorpusRun:
    """The report of :func:`run`.

    ``images``/``errors``: rows written by this call and how many of them are error rows;
    ``shards_done``: shard files written by this call; ``shards_skipped``: this process's shards
    that were done before; ``shards_pending``: shards of the plan still without output (those of
    other ``shard=`` processes, or left by an interrupted run); ``complete``: every shard of the
    plan is done and ``_SUCCESS`` is written. ``shard``: this process's ``(index, count)`` and
    ``shard_origin`` where it came from (``""``, ``"shard="``, torchrun's or Slurm's variables).
    """

    output: str
    shard: tuple[int, int] = (0, 1)
    shard_origin: str = ""
    shards_total: int = 0
    shards_done: int = 0
    shards_skipped: int = 0
    shards_pending: int = 0
    images: int = 0
    errors: int = 0
    complete: bool = False
    _folder: OutputFolder | None = field(default=None, repr=False)
    _mine: list[Shard] = field(default_factory=list, repr=False)

    @property
    def scored(self) -> int:
        """Images of this call that have a score."""
        return self.images - self.errors

    def count_error_rows(self) -> int:
        """Error rows in every output of this process's shards, this call's and earlier ones (what
        ``temu score --strict`` checks); read from the Parquet footers."""
        return 0 if self._folder is None else count_errors(self._folder, self._mine)

    def summary(self) -> str:
        text = f"scored {self.scored} image(s) in {self.shards_done} shard(s), {self.errors} could not be read"
        if self.shards_skipped:
            text += f"; {self.shards_skipped} shard(s) were done before"
        return text


class Progress(Protocol):
    """What :func:`run` reports as it goes (``progress=`` an object of this shape)."""

    def start(self, report: CorpusRun, todo: int) -> None: ...

    def rows(self, n: int) -> None: ...

    def shard(self, result: ShardResult) -> None: ...

    def close(self) -> None: ...


class ProgressBar:
    """A tqdm bar in shards, with the images and errors so far, on stderr (``show=False``: none); the
    first ``errors_shown`` errors are printed above it (``temu: skipped <error>``)."""

    def __init__(self, *, show: bool = True, errors_shown: int = 0) -> None:
        self.show, self.errors_shown = show, errors_shown
        self.images = self.errors = self.seen = 0
        self.bar: Any = None

    def start(self, report: CorpusRun, todo: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=todo, unit="shard", desc="temu", disable=not self.show, file=sys.stderr)

    def rows(self, n: int) -> None:
        self.seen += n
        if self.bar is not None:
            self.bar.set_postfix_str(f"{max(self.seen, self.images)} images, {self.errors} errors")

    def shard(self, result: ShardResult) -> None:
        for error in result.first_errors:
            if self.errors_shown > 0:
                from tqdm.auto import tqdm

                tqdm.write(f"temu: skipped {error}", file=sys.stderr)
                self.errors_shown -= 1
        self.images += result.images
        self.errors += result.errors
        if self.bar is not None:
            self.bar.set_postfix_str(f"{max(self.seen, self.images)} images, {self.errors} errors", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _NoProgress:
    def start(self, report: CorpusRun, todo: int) -> None:
        pass

    def rows(self, n: int) -> None:
        pass

    def shard(self, result: ShardResult) -> None:
        pass

    def close(self) -> None:
        pass


def run(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] = "temu-iqa-s",
    engine: str = "local",
    shard: tuple[int, int] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    recursive: bool = False,
    attributes: AttributeSpec = None,
    fps: float | None = None,
    frames: int | Literal["all"] | None = None,
    reduce: Reduction = "mean",
    max_frames: int | None = None,
    max_side: int | None = None,
    per_frame: bool = False,
    scale: Scale | Sequence[Scale] = "raw",
    image_column: str | None = None,
    id_column: str | None = None,
    max_member_size: int = DEFAULT_MAX_MEMBER_SIZE,
    batch_size: int | None = None,
    device: str | None = None,
    precision: Precision = "auto",
    decode_threads: int | None = None,
    compile: bool = False,
    overwrite: bool = False,
    progress: bool | Progress = True,
    address: str | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    max_workers: int | None = None,
) -> CorpusRun:
    """Score a corpus of images and videos into a folder of Parquet files, one per shard; resumable
    (README "Scoring millions of images"; the columns: :mod:`temu.corpus.output`).

    Args:
        inputs: folders, ``.txt`` path lists, ``.parquet`` tables, WebDataset ``.tar`` shards (brace
            patterns such as ``shards/{00000..00099}.tar``), image and video files; local paths or
            URIs. Videos (by name, or bytes FFmpeg opens) are scored by their sampled frames.
        output: the output folder, local or a URI (``s3://bucket/scores``).
        model: a preset, head folder or Hub repo id.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data).
        shard: ``(index, count)``: score every count-th shard of the plan from the index-th (local
            engine). None: from torchrun's ``RANK``/``WORLD_SIZE`` or a Slurm array when set, else all.
        shard_size: images per shard of folders, lists and tables (a tar is one shard).
        recursive: list sub-folders of folder inputs too.
        attributes: None (no attribute columns), names of default attributes, or name -> (positive
            prompt, negative prompt): one float32 column each, from the same pass as the score.
        fps, frames, reduce, max_frames, max_side: which frames of a video are scored and how their
            scores become its ``score`` (as :func:`temu.iter_scores`; README "Video"); a video that
            cannot be read or sampled is its error row. Every row has ``frames`` (int32; null for images).
        per_frame: also write ``_frames/<shard>.parquet``: each scored video's frames (``id``,
            ``frame``, ``time``, ``score``, ``id_bytes``), written before the shard's own file.
        scale: ``"raw"`` (default), ``"mos"``, ``"percentile"`` or a list of them: a float32 column
            per calibrated scale beside the raw ``score`` (the head's ``calibration.json``, ``temu calibrate``).
        image_column, id_column: of ``.parquet`` inputs (default: found by name).
        max_member_size: bytes; a larger tar member, table cell, listed file or URI is an error row, never read.
        batch_size: images per forward pass (default 32). device: local engine (default: the best
            one; under torchrun ``cuda:LOCAL_RANK``). precision: as :func:`temu.score`.
        decode_threads: threads decoding images (default: CPU cores, at most 8; Ray: the actor's CPUs).
        compile: ``torch.compile`` the backbone (long GPU runs).
        overwrite: clear an earlier run in ``output`` (temu's own files only) and start again.
        progress: a bar on stderr (True), none (False), or a :class:`Progress` object.
        address, gpus_per_worker, cpus_per_worker, max_workers: Ray engine (README "Ray Data").

    Returns:
        :class:`CorpusRun`. A plan, inputs and settings are the stored plan's or a new one's; a run
        with other settings, inputs, options, attributes, video options or scales than the stored
        plan is refused, naming what differs.

    Raises:
        CorpusError: a bad argument (named: ``shard_size=0``), an input that does not exist or cannot
            be planned, an output that holds another run, a model that cannot be loaded; nothing is
            scored then. CorpusRunError: the run stopped part-way (an input changed or vanished, a
            full disk); the finished shards are kept, and running again scores the rest.
        InvalidAttributesError: unusable ``attributes``. DeviceError: an unusable ``device``.
        VideoOptionsError: unusable video options. CalibrationError: a ``scale`` the head has no
            calibration for (before anything is written).
    """
    inputs = _inputs(inputs)
    output = _location(output, "output")
    model = _model_location(model)
    if engine not in ENGINES:
        raise CorpusError(f"engine={engine!r}: expected one of {', '.join(map(repr, ENGINES))}")
    if precision not in PRECISIONS:
        raise CorpusError(f"precision={precision!r}: expected one of {', '.join(map(repr, PRECISIONS))}")
    _check_numbers(
        shard_size=shard_size,
        max_member_size=max_member_size,
        batch_size=batch_size,
        decode_threads=decode_threads,
        max_workers=max_workers,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
    )
    pairs = _attributes(attributes)
    sampling = VideoSampling(fps=fps, frames=frames, max_frames=max_frames, max_side=max_side)
    check_reduce(reduce)
    if not isinstance(per_frame, bool):
        raise CorpusError(f"per_frame={per_frame!r}: expected True or False")
    scales = _scales(scale)
    ray_options = dict(zip(RAY_OPTIONS, (address, gpus_per_worker, cpus_per_worker, max_workers)))
    index, count, origin, launch = _place(engine, shard, device, ray_options)
    if overwrite and count > 1:
        raise CorpusError(
            "overwrite=True with several shard processes would let each clear the others' work; "
            "remove the folder once, or give a new output folder"
        )
    for given in inputs:  # local inputs are checked here, before Ray starts or the model loads
        missing = next((t for t in expand_braces(given) if not is_uri(t) and not Path(t).expanduser().exists()), None)
        if missing is not None:
            raise CorpusError(f"{missing}: no such file or folder")
    try:
        head = head_settings(model)
        calibration = calibration_settings(model, scales)
    except CalibrationError:
        raise
    except (TeMuError, OSError) as err:
        raise CorpusError(f"cannot load model {str(model)!r}: {err}") from err

    filesystems = Filesystems()
    folder = OutputFolder(output, filesystems)
    options = {
        "shard_size": shard_size,
        "recursive": bool(recursive),
        "image_column": image_column,
        "id_column": id_column,
        "max_member_size": max_member_size,
        "attributes": {name: list(pair) for name, pair in pairs.items()} if pairs else None,
        "fps": sampling.rate,
        "frames": sampling.frames,
        "reduce": reduce,
        "max_frames": sampling.max_frames,
        "max_side": sampling.max_side,
        "per_frame": per_frame,
        "scale": list(scales) or None,
    }
    common = dict(
        batch_size=batch_size or DEFAULT_BATCH_SIZE,
        precision=precision,
        decode_threads=decode_threads,
        compile=compile,
        attributes=pairs,
        max_member_size=max_member_size,
        sampling=sampling,
        reduce=reduce,
        per_frame=per_frame,
        scale=scales,
    )
    if engine == "ray":
        from .ray import RayEngine

        worker: Engine = RayEngine(
            model,
            address=address,
            gpus_per_worker=gpus_per_worker,
            cpus_per_worker=cpus_per_worker,
            max_workers=max_workers,
            **common,
        )
    else:
        from .local import LocalEngine

        worker = LocalEngine(model, device=device, filesystems=filesystems, launch=launch, **common)
    reporter = _progress(progress)
    try:
        device_type = worker.start()
        from .listing import Planner

        settings = {**head, "precision": effective_precision(precision, device_type), **calibration}
        planner = Planner(
            folder,
            filesystems,
            shard_size=shard_size,
            recursive=recursive,
            image_column=image_column,
            id_column=id_column,
        )
        wanted = Plan(settings, list(inputs), options)
        plan = open_plan(folder, wanted, lambda: planner.plan(inputs), overwrite=overwrite)
        todo, done = pending_shards(plan, folder, index, count)
        changed = plan.changed_source(filesystems, todo)  # shards are line and row ranges of lists and tables
        if changed is not None:
            raise CorpusError(resume_refused(folder, changed))
        report = CorpusRun(output, (index, count), origin, len(plan.shards), shards_skipped=done)
        report._folder, report._mine = folder, plan.shards_of(index, count)
        if todo:
            try:
                worker.load()
            except (TeMuError, OSError) as err:
                raise CorpusError(f"cannot load model {str(model)!r}: {err}") from err

        def on_shard(result: ShardResult) -> None:
            report.shards_done += 1
            report.images += result.images
            report.errors += result.errors
            reporter.shard(result)

        reporter.start(report, len(todo))
        try:
            if todo:
                worker.score_shards(todo, folder, on_shard=on_shard, on_rows=reporter.rows)
            report.complete = finish(plan, folder)
        except (CorpusError, OSError) as err:  # an input changed or vanished since planning, a full disk, ...
            raise CorpusRunError(
                f"{err}; the finished shards are kept in {output}: run again to score the rest", output
            ) from err
        finally:
            reporter.close()
    finally:
        worker.close()
    if not report.complete:
        done = plan.done(folder)
        report.shards_pending = sum(1 for s in plan.shards if s.name not in done)
    return report


def pending_shards(plan: Plan, folder: OutputFolder, index: int = 0, count: int = 1) -> tuple[list[Shard], int]:
    """Shard ``index`` of ``count`` of the plan (every count-th shard), less those already written:
    ``(shards to score, shards already done)``. Temporary files a killed run left for them are removed."""
    done = plan.done(folder)
    mine = plan.shards_of(index, count)
    todo = [s for s in mine if s.name not in done]
    folder.delete(folder.stale_files(todo, folder.names()))
    return todo, len(mine) - len(todo)


def finish(plan: Plan, folder: OutputFolder) -> bool:
    """Write ``_SUCCESS`` if every shard of the plan has its outputs; True if the run is complete."""
    done = plan.done(folder)
    if all(s.name in done for s in plan.shards):
        if SUCCESS_NAME not in folder.names():
            folder.write_bytes(SUCCESS_NAME, b"")
        return True
    return False


def _inputs(inputs: Any) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    try:
        values = [_location(x, "inputs") for x in inputs]
    except TypeError:
        raise CorpusError(f"inputs={inputs!r}: expected a path, a URI or a list of them") from None
    if not values:
        raise CorpusError("inputs=[]: give at least one folder, list, table, tar or image file")
    if "" in values:
        raise CorpusError("inputs: an empty path ('') names no input; give '.' for the current folder")
    return values


def _location(value: Any, name: str) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str):
        raise CorpusError(f"{name}={value!r}: expected a path or a URI")
    return value


def _model_location(model: Any) -> str:
    """A head folder as an absolute path (Ray workers do not share our working directory); presets and repo ids as given."""
    if not isinstance(model, (str, os.PathLike)):
        raise CorpusError(f"model={model!r}: expected a preset name, a head folder or a Hub repo id")
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else os.fspath(model)


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CorpusError(f"{name}={value!r}: expected a positive integer")


def _check_numbers(**values: Any) -> None:
    """Counts are positive integers (None: the default, where there is one); GPUs and CPUs numbers >= 0, CPUs > 0."""
    for name in ("shard_size", "max_member_size", "batch_size", "decode_threads", "max_workers"):
        if values[name] is not None or name in ("shard_size", "max_member_size"):
            _check_count(name, values[name])
    for name in ("gpus_per_worker", "cpus_per_worker"):
        value = values[name]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise CorpusError(f"{name}={value!r}: expected a number >= 0")
        if name == "cpus_per_worker" and value == 0:
            raise CorpusError("cpus_per_worker=0: a scoring actor needs some CPU")


def _place(engine: str, shard: Any, device: Any, ray_options: dict[str, Any]) -> tuple[int, int, str, Launch | None]:
    """This process's ``(index, count)`` of the plan, where it came from, and the launcher (local engine)."""
    if engine == "ray":
        if shard is not None:
            raise CorpusError("shard= is for engine='local'; Ray shares the shards out itself")
        if device is not None:
            raise CorpusError(
                "device= is for engine='local'; on Ray the device follows gpus_per_worker (0: CPU actors)"
            )
        return 0, 1, "", None
    given = [name for name, value in ray_options.items() if value is not None]
    if given:
        raise CorpusError(f"{given[0]}= is an option of engine='ray'")
    if shard is not None:
        return (*_shard(shard), None)
    launch = launch_from_environment()
    return (launch.rank, launch.world_size, launch.origin, launch) if launch else (0, 1, "", None)


def _shard(shard: Any) -> tuple[int, int, str]:
    try:
        index, count = shard
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (index, count)) and 0 <= index < count
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise CorpusError(f"shard={shard!r}: expected (index, count) with 0 <= index < count, e.g. (0, 4)")
    return index, count, "shard="


def _attributes(attributes: AttributeSpec) -> dict[str, tuple[str, str]] | None:
    if attributes is None:
        return None
    pairs = resolve_attributes(attributes)
    clash = sorted(set(pairs) & RESERVED_COLUMNS)
    if clash:
        raise CorpusError(f"attributes: {clash} name columns of the output; choose other attribute names")
    return pairs


def _scales(scale: Any) -> tuple[str, ...]:
    """``scale=`` as the calibrated scales asked for, in :data:`~temu.model.calibration.SCALES` order (raw: none)."""
    try:
        return tuple(s for s in parse_scales(scale) if s != "raw")
    except CalibrationError as err:
        raise CorpusError(str(err)) from None


def _progress(progress: bool | Progress) -> Progress:
    if progress is True:
        return ProgressBar(show=True)
    if progress is False or progress is None:
        return _NoProgress()
    return progress  # type: ignore[return-value]
