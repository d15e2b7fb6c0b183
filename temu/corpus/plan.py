"""The shard plan of a corpus run, the settings a resumed run must share, and the output folder.

An output folder holds one ``<shard>.parquet`` per shard of the plan, each written to a hidden
temporary name and renamed when complete (with ``per_frame``, ``_frames/<shard>.parquet`` too,
written first: a shard is done when both are there), ``_temu/plan.json`` (written once, by the first run),
``_temu/lists/`` (the file lists of folder inputs, so a rerun reads exactly the files the plan
was made from) and ``_SUCCESS`` once every shard is done. A rerun scores only the shards whose
file is missing, so a run killed at any moment finishes with every image scored exactly once.

The plan records a :func:`~temu.corpus.uris.stamp` (size, modification time, a hash of three
blocks) of every ``.txt`` list and ``.parquet`` table it splits into shards: shards are byte or
row ranges of them, so a list or table that changed since planning is refused (on resume and
before each of its shards is read), never read with the old ranges.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .._version import __version__
from ..errors import CorpusError, os_reason
from ..files import is_temporary, place_new, temporary_name
from .uris import Filesystems, is_uri, stamp, stamp_change

#: Version of the plan.json layout (2: ids as bytes in ``id_bytes``, stamps of lists and tables).
PLAN_FORMAT = 2
PLAN_NAME = "_temu/plan.json"
LISTS_DIR = "_temu/lists"
SUCCESS_NAME = "_SUCCESS"
SHARD_SUFFIX = ".parquet"
#: The folder of the per-frame files (``per_frame=True``); the ``_`` keeps pyarrow's dataset reader out of it.
FRAMES_DIR = "_frames"
#: The key of temu's own record in the Parquet metadata of every shard output (see :mod:`temu.corpus.output`).
OUTPUT_MARKER = b"temu"
SHARD_KINDS = ("list", "tar", "parquet")
IMAGE_KINDS = ("bytes", "path", "struct")
#: A shard name: a file name in the output folder (no separators, not hidden).
_SHARD_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
_OVERWRITE = "pass overwrite=True to clear it (temu's own files only) and start again, or give another output folder"


@dataclass(frozen=True)
class Shard:
    """One unit of work and one output file, ``<name>.parquet``.

    kind: ``"list"`` (entries of a path list, one per line, from byte ``start`` to byte ``stop``),
    ``"tar"`` (the image members of a WebDataset tar) or ``"parquet"`` (rows ``start`` to
    ``stop`` of a table). source: the list, tar or table (absolute local path or URI). label: the
    input as the user gave it, for messages. rows: images when known at planning (None for tars).
    root: the folder relative list entries and path columns are read from (the working
    directory at planning). The ``*_column`` fields and ``image_kind`` (``"bytes"``, ``"path"``
    or ``"struct"``, Hugging Face's image struct of bytes and path) describe a table. stamp: the
    :func:`~temu.corpus.uris.stamp` of a user's list or table at planning (None for tars and for
    the listings temu keeps in the output folder).
    """

    name: str
    kind: str
    source: str
    label: str
    start: int = 0
    stop: int | None = None
    rows: int | None = None
    root: str | None = None
    image_column: str | None = None
    image_kind: str | None = None
    id_column: str | None = None
    stamp: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> Shard:
        """A shard from plan.json; :class:`~temu.CorpusError` for anything but a well-formed shard."""
        if not isinstance(data, dict):
            raise CorpusError(f"a shard is {type(data).__name__}, not an object")
        unknown = sorted(set(data) - set(_SHARD_TYPES))
        if unknown:
            raise CorpusError(f"a shard has unknown fields {unknown}")
        for name, types in _SHARD_TYPES.items():
            value = data.get(name)
            required = name in ("name", "kind", "source", "label")
            if value is None and not required:
                continue
            if not isinstance(value, types) or isinstance(value, bool):
                raise CorpusError(f"shard field {name!r} is {value!r}; expected {types[0].__name__}")
        if not _SHARD_NAME.match(data["name"]):
            raise CorpusError(f"shard name {data['name']!r} is not a file name of the output folder")
        if data["kind"] not in SHARD_KINDS:
            raise CorpusError(f"shard kind {data['kind']!r}; expected one of {', '.join(SHARD_KINDS)}")
        if data.get("image_kind") not in (None, *IMAGE_KINDS):
            raise CorpusError(f"shard image_kind {data['image_kind']!r}; expected one of {', '.join(IMAGE_KINDS)}")
        if any(data.get(k, 0) < 0 for k in ("start", "stop", "rows")):
            raise CorpusError("shard start, stop and rows must be >= 0")
        return cls(**data)

    @property
    def file_name(self) -> str:
        return self.name + SHARD_SUFFIX

    @property
    def frames_name(self) -> str:
        """Its per-frame file (``per_frame=True``), relative to the output folder."""
        return f"{FRAMES_DIR}/{self.name}{SHARD_SUFFIX}"


_SHARD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "kind": (str,),
    "source": (str,),
    "label": (str,),
    "start": (int,),
    "stop": (int,),
    "rows": (int,),
    "root": (str,),
    "image_column": (str,),
    "image_kind": (str,),
    "id_column": (str,),
    "stamp": (dict,),
}


@dataclass
class Plan:
    """Everything a rerun must agree on (``settings``, ``inputs``, ``options``) and the shards, in order."""

    settings: dict[str, Any]
    inputs: list[str]
    options: dict[str, Any]
    shards: list[Shard] = field(default_factory=list)

    @property
    def per_frame(self) -> bool:
        """Whether each shard has a per-frame file too (option ``per_frame``)."""
        return bool(self.options.get("per_frame"))

    def done(self, folder: OutputFolder) -> set[str]:
        """Names of the shards whose outputs are all in ``folder`` (with ``per_frame``, both files)."""
        names = folder.names()
        frames = folder.names(FRAMES_DIR) if self.per_frame else set()
        return {
            s.name
            for s in self.shards
            if s.file_name in names and (not self.per_frame or s.frames_name.split("/", 1)[1] in frames)
        }

    def shards_of(self, index: int = 0, count: int = 1) -> list[Shard]:
        """Shard ``index`` of ``count`` (``shard=(index, count)``): every count-th shard from the index-th."""
        return [s for k, s in enumerate(self.shards) if k % count == index]

    def to_json(self) -> str:
        body = {
            "format": PLAN_FORMAT,
            "temu_version": __version__,
            "settings": self.settings,
            "inputs": self.inputs,
            "options": self.options,
            "shards": [s.to_dict() for s in self.shards],
        }
        return json.dumps(body, indent=1) + "\n"  # ASCII: names that are not UTF-8 stay \\udcXX escapes

    @classmethod
    def from_json(cls, text: str, *, source: str) -> Plan:
        """The plan in ``text``; :class:`~temu.CorpusError` naming ``source`` for anything but a
        well-formed plan of this format (the advice: ``overwrite=True``, which clears it)."""
        try:
            raw = json.loads(text)
        except ValueError as err:
            raise CorpusError(f"{source}: not a temu shard plan ({err}); {_OVERWRITE}") from None
        try:
            if not isinstance(raw, dict):
                raise CorpusError(f"the plan is {type(raw).__name__}, not an object")
            if raw.get("format") != PLAN_FORMAT:
                made = raw.get("temu_version", "an unknown version")
                raise CorpusError(
                    f"plan format {raw.get('format')!r} (temu {made}); this temu ({__version__}) reads format "
                    f"{PLAN_FORMAT}: finish the run with that temu, or"
                )
            for key, kind in (("settings", dict), ("options", dict), ("inputs", list), ("shards", list)):
                if not isinstance(raw.get(key), kind):
                    raise CorpusError(f"{key!r} is {raw.get(key)!r}; expected a JSON {kind.__name__}")
            if not all(isinstance(x, str) for x in raw["inputs"]):
                raise CorpusError("'inputs' holds something that is not a string")
            shards = [Shard.from_dict(s) for s in raw["shards"]]
            names = [s.name for s in shards]
            if len(set(names)) != len(names):
                raise CorpusError("two shards have the same name")
        except CorpusError as err:
            raise CorpusError(f"{source}: not a usable temu shard plan ({err}); {_OVERWRITE}") from None
        return cls(raw["settings"], raw["inputs"], raw["options"], shards)

    def conflict(self, other: Plan) -> str | None:
        """Why a run with ``other``'s settings, inputs and options may not resume this plan, or None."""
        for what, mine, theirs in (
            ("settings", self.settings, other.settings),
            ("inputs", {"inputs": self.inputs}, {"inputs": other.inputs}),
            ("options", self.options, other.options),
        ):
            a, b = _flat(_normalised(mine)), _flat(_normalised(theirs))
            changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            if changed:
                shown = "; ".join(f"{k}: {_short(a.get(k))} then, {_short(b.get(k))} now" for k in changed[:3])
                return f"it was made with other {what} ({shown})"
        return None

    def changed_source(self, filesystems: Filesystems, shards: list[Shard] | None = None) -> str | None:
        """Why a list or table of ``shards`` (default: the whole plan) is no longer what was planned
        (changed, gone), or None."""
        seen: set[str] = set()
        for shard in self.shards if shards is None else shards:
            if shard.stamp is None or shard.source in seen:
                continue
            seen.add(shard.source)
            problem = source_change(shard, filesystems)
            if problem is not None:
                return problem
        return None


def source_change(shard: Shard, filesystems: Filesystems) -> str | None:
    """Why ``shard``'s list or table differs from its stamp at planning, or None (also None without a stamp)."""
    if shard.stamp is None:
        return None
    try:
        now = stamp(filesystems, shard.source)
    except (OSError, ValueError) as err:
        return f"{shard.label} cannot be read any more ({err})"
    change = stamp_change(shard.stamp, now)
    return None if change is None else f"{shard.label} changed since the run was planned ({change})"


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _normalised(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d))  # tuples -> lists, as they come back from plan.json


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def effective_precision(precision: str, device_type: str) -> str:
    """What ``precision`` means on a device type: ``auto`` is fp32 off CUDA, and bf16 (fp16 where
    the GPU lacks bf16) on CUDA. Two runs with the same effective precision give the same scores."""
    if precision != "auto":
        return precision
    return "auto-cuda" if device_type == "cuda" else "fp32"


def head_settings(model: str) -> dict[str, Any]:
    """What a resumed run must share of the model: its config (backbone, weights, variant, layers,
    image size, prompts, head, normalisation) and a hash of its head weights. Reads the head's two
    files only; the model is not built. TeMuError / OSError when they cannot be read."""
    from ..model.config import read_config_file
    from ..model.hub import CONFIG_NAME, WEIGHTS_NAME, resolve_head_dir

    directory = resolve_head_dir(model)
    config, _ = read_config_file(directory / CONFIG_NAME)
    digest = hashlib.sha256((directory / WEIGHTS_NAME).read_bytes()).hexdigest()
    return {"model": config.to_dict(), "head_sha256": digest}


def calibration_settings(model: str, scales: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """What a resumed run with calibrated ``scales`` must share of the head's ``calibration.json``: its
    sha256, and whether its MOS is lower-better (a DMOS; :func:`temu.corpus.select` needs it). {} without
    scales. Reads the file only; CalibrationError (naming ``scale=`` and ``temu calibrate``) if the
    head lacks a scale, TeMuError / OSError if it cannot be read."""
    if not scales:
        return {}
    from ..model.calibration import CALIBRATION_NAME, check_scales, read_calibration
    from ..model.hub import resolve_head_dir

    path = resolve_head_dir(model) / CALIBRATION_NAME
    calibration = read_calibration(path)
    check_scales(calibration, list(scales), source=model)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"calibration_sha256": digest, "mos_lower_better": calibration.lower_better("mos")}


class OutputFolder:
    """The output folder of a corpus run: a local folder or a URI (``s3://bucket/scores``).

    Every file is written under a hidden temporary name (:func:`temu.files.temporary_name`) and
    renamed when complete. A write that fails (a full disk) is a :class:`~temu.CorpusError` naming the file.
    """

    def __init__(self, location: str, filesystems: Filesystems) -> None:
        self.location = location
        try:
            self.fs, base = filesystems.resolve(location)
        except ValueError as err:
            raise CorpusError(f"output={location!r}: cannot open this location ({err})") from None
        self.base = base.rstrip("/") or "/"
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, name: str) -> str:
        """``name``'s path inside the folder's filesystem."""
        return f"{self.base}/{name}"

    def location_of(self, name: str) -> str:
        """``name`` as a location that :class:`~temu.corpus.uris.Filesystems` resolves (a URI for a remote folder)."""
        if is_uri(self.location):
            return f"{self.location.rstrip('/')}/{name}"
        return self.path(name)

    def names(self, sub: str = "") -> set[str]:
        """Names of the files directly in the folder, or in its sub-folder ``sub`` (hidden temporary files included)."""
        selector = pafs.FileSelector(self.path(sub) if sub else self.base, allow_not_found=True, recursive=False)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as err:
            raise self._unreadable(sub, err) from err
        return {posixpath.basename(info.path) for info in infos if info.type == pafs.FileType.File}

    def exists(self, name: str) -> bool:
        try:
            return self.fs.get_file_info(self.path(name)).type == pafs.FileType.File
        except OSError as err:
            raise self._unreadable(name, err) from err

    def read_text(self, name: str) -> str | None:
        """The UTF-8 text of ``name``, or None if there is none; :class:`~temu.CorpusError` if it is not UTF-8."""
        try:
            with self.fs.open_input_stream(self.path(name)) as stream:
                data = stream.read()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self._unreadable(name, err) from err
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise CorpusError(f"{self.location_of(name)}: not UTF-8 text ({err}); {_OVERWRITE}") from None

    def _unreadable(self, name: str, err: OSError) -> CorpusError:
        where = self.location_of(name) if name else self.location
        return CorpusError(f"{where}: cannot be read as part of the output folder ({os_reason(err)})")

    def _parent(self, name: str) -> None:
        self.fs.create_dir(posixpath.dirname(self.path(name)), recursive=True)

    def _written(self, name: str, write: Callable[[str], None]) -> None:
        """``write(temporary path)``, then the rename to ``name``; the temporary file never stays behind."""
        tmp = self.path(temporary_name(name))
        try:
            self._parent(name)
            write(tmp)
            self.fs.move(tmp, self.path(name))
        except OSError as err:
            raise CorpusError(f"{self.location_of(name)}: cannot be written ({os_reason(err)})") from err
        finally:
            try:
                if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                    self.fs.delete_file(tmp)
            except OSError:
                pass

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write to a hidden temporary name beside ``name``, then rename it over ``name``."""

        def write(tmp: str) -> None:
            with self.fs.open_output_stream(tmp) as stream:
                stream.write(data)

        self._written(name, write)

    def create_once(self, name: str, data: bytes) -> bool:
        """Write ``name`` unless it exists; False if it did. Atomic on local folders (a hard link),
        check-then-write elsewhere."""
        if not self.local:
            if self.exists(name):
                return False
            self.write_bytes(name, data)
            return True
        tmp = self.path(temporary_name(name))
        try:
            self._parent(name)
            with open(tmp, "wb") as stream:
                stream.write(data)
            return place_new(tmp, self.path(name))
        except OSError as err:
            raise CorpusError(f"{self.location_of(name)}: cannot be written ({os_reason(err)})") from err
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def write_table(self, name: str, table: pa.Table) -> None:
        """A Parquet file written to a hidden temporary name and renamed: a reader never sees half of it."""
        self._written(name, lambda tmp: pq.write_table(table, tmp, filesystem=self.fs))

    def delete(self, names: list[str]) -> None:
        for name in names:
            if self.fs.get_file_info(self.path(name)).type == pafs.FileType.File:
                self.fs.delete_file(self.path(name))

    def delete_dir(self, name: str) -> None:
        if self.fs.get_file_info(self.path(name)).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(name))

    def is_temu_output(self, name: str) -> bool:
        """Whether the Parquet file ``name`` is a shard output temu wrote (its metadata has temu's record)."""
        try:
            metadata = pq.read_schema(self.path(name), filesystem=self.fs).metadata or {}
        except (OSError, ValueError):
            return False
        return OUTPUT_MARKER in metadata

    # ---------------------------------------------------------------- the plan

    def read_plan(self) -> Plan | None:
        text = self.read_text(PLAN_NAME)
        return None if text is None else Plan.from_json(text, source=self.location_of(PLAN_NAME))

    def commit_plan(self, plan: Plan) -> Plan:
        """Store ``plan`` unless another process stored one first; the stored plan is returned."""
        if self.create_once(PLAN_NAME, plan.to_json().encode("ascii")):
            return plan
        stored = self.read_plan()
        if stored is None:
            raise CorpusError(f"{self.location_of(PLAN_NAME)} vanished while this run was planning; run again")
        return stored

    def clear(self, plan: Plan | None) -> None:
        """Remove what temu runs wrote here: the shard outputs (those of ``plan``, and any other Parquet
        file carrying temu's record), their temporary files, ``_SUCCESS``, ``_frames/`` and ``_temu/``. Nothing else."""
        names = self.names()
        planned = {s.file_name for s in plan.shards} if plan is not None else set()
        outputs = {
            n
            for n in names
            if n.endswith(SHARD_SUFFIX) and not n.startswith(".") and (n in planned or self.is_temu_output(n))
        }
        temporary = {
            n for n in names if is_temporary(n) and (".parquet.tmp-" in n or n.startswith(f".{SUCCESS_NAME}."))
        }
        self.delete(sorted(outputs | temporary | ({SUCCESS_NAME} & names)))
        self.delete_dir(FRAMES_DIR)
        self.delete_dir("_temu")

    def stale_files(self, shards: list[Shard], names: set[str]) -> list[str]:
        """Temporary files left by a killed run for these shards (never read: outputs are renamed when
        complete), in the folder and in ``_frames/``."""
        prefixes = tuple(f".{s.file_name}.tmp-" for s in shards)
        if not prefixes:
            return []
        stale = sorted(n for n in names if n.startswith(prefixes) and is_temporary(n))
        frames = self.names(FRAMES_DIR)
        return stale + sorted(f"{FRAMES_DIR}/{n}" for n in frames if n.startswith(prefixes) and is_temporary(n))


def resume_refused(folder: OutputFolder, problem: str) -> str:
    """The message refusing to resume the run in ``folder`` because of ``problem``."""
    return f"{folder.location} holds an earlier run that this one cannot resume: {problem}; {_OVERWRITE}"


def open_plan(folder: OutputFolder, wanted: Plan, make_shards: Callable[[], list[Shard]], *, overwrite: bool) -> Plan:
    """The plan to run. ``wanted`` holds this run's settings, inputs and options (its shards are
    not used): a stored plan that agrees with it is resumed as it is, without listing the inputs
    again (the caller checks that the lists and tables of its pending shards are unchanged:
    :meth:`Plan.changed_source`). Otherwise ``make_shards()`` plans the
    inputs and the new plan is stored, unless another process stored one first. ``overwrite``
    clears an earlier run first (also one whose plan is damaged). :class:`~temu.CorpusError` when
    the folder holds a run of other settings, inputs or options, a damaged plan, or Parquet files
    not from temu."""
    try:
        stored = folder.read_plan()
    except CorpusError:
        if not overwrite:
            raise
        stored, damaged = None, True
    else:
        damaged = False
    if overwrite and (stored is not None or damaged):
        folder.clear(stored)
        stored = None
    if stored is not None:
        problem = stored.conflict(wanted)
        if problem is not None:
            raise CorpusError(resume_refused(folder, problem))
        return stored
    parquet = sorted(n for n in folder.names() if n.endswith(SHARD_SUFFIX) and not n.startswith("."))
    if parquet:
        if overwrite:
            foreign = [n for n in parquet if not folder.is_temu_output(n)]
            if foreign:
                raise CorpusError(
                    f"{folder.location} holds Parquet files that temu did not write ({foreign[0]}, ...); "
                    "give an empty or new output folder"
                )
            folder.clear(None)
        elif folder.is_temu_output(parquet[0]):
            raise CorpusError(
                f"{folder.location} holds shard outputs of a temu run ({parquet[0]}, ...) but no plan ({PLAN_NAME}); "
                f"{_OVERWRITE}"
            )
        else:
            raise CorpusError(
                f"{folder.location} already holds Parquet files ({parquet[0]}, ...) but no temu plan "
                f"({PLAN_NAME}); give an empty or new output folder"
            )
    stored = folder.commit_plan(dataclasses.replace(wanted, shards=make_shards()))
    problem = stored.conflict(wanted)  # another process may have stored its plan first
    if problem is not None:
        raise CorpusError(f"{folder.location}: a run started at the same time stored its plan first; {problem}")
    return stored
