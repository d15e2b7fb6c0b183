"""The shard plan of a corpus run, the settings a resumed run must share, and the output folder.

An output folder holds one ``<shard>.parquet`` per shard of the plan, each written to a hidden
temporary name and renamed when complete, ``_temu/plan.json`` (written once, by the first run),
``_temu/lists/`` (the file lists of folder inputs, so a rerun reads exactly the files the plan
was made from) and ``_SUCCESS`` once every shard is done. A rerun scores only the shards whose
file is missing, so a run killed at any moment finishes with every image scored exactly once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .._version import __version__
from ..errors import CorpusError
from ..files import place_new
from .uris import Filesystems, is_uri

#: Version of the plan.json layout.
PLAN_FORMAT = 1
PLAN_NAME = "_temu/plan.json"
LISTS_DIR = "_temu/lists"
SUCCESS_NAME = "_SUCCESS"
SHARD_SUFFIX = ".parquet"


@dataclass(frozen=True)
class Shard:
    """One unit of work and one output file, ``<name>.parquet``.

    kind: ``"list"`` (entries of a path list, one per line, from byte ``start`` to byte ``stop``),
    ``"tar"`` (the image members of a WebDataset tar) or ``"parquet"`` (rows ``start`` to
    ``stop`` of a table). source: the list, tar or table (absolute local path or URI). label: the
    input as the user gave it, for messages. rows: images when known at planning (None for tars).
    root: the folder relative list entries and path columns are read from (the working
    directory at planning). The ``*_column`` fields and ``image_kind`` (``"bytes"``, ``"path"``
    or ``"struct"``, Hugging Face's image struct of bytes and path) describe a table.
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

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shard:
        return cls(**data)

    @property
    def file_name(self) -> str:
        return self.name + SHARD_SUFFIX


@dataclass
class Plan:
    """Everything a rerun must agree on (``settings``, ``inputs``, ``options``) and the shards, in order."""

    settings: dict[str, Any]
    inputs: list[str]
    options: dict[str, Any]
    shards: list[Shard] = field(default_factory=list)

    def shards_of(self, index: int = 0, count: int = 1) -> list[Shard]:
        """Shard ``index`` of ``count`` (``--shard I/N``): every count-th shard from the index-th."""
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
        return json.dumps(body, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str) -> Plan:
        try:
            raw = json.loads(text)
            if raw.get("format") != PLAN_FORMAT:
                raise CorpusError(
                    f"{source}: plan format {raw.get('format')!r}; this temu reads format {PLAN_FORMAT} (upgrade temu)"
                )
            return cls(raw["settings"], raw["inputs"], raw["options"], [Shard.from_dict(s) for s in raw["shards"]])
        except (ValueError, KeyError, TypeError) as err:
            if isinstance(err, CorpusError):
                raise
            raise CorpusError(
                f"{source}: not a temu shard plan ({err}); rerun with --overwrite to start again"
            ) from None

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
    """What ``--precision`` means on a device type: ``auto`` is fp32 off CUDA, and bf16 (fp16 where
    the GPU lacks bf16) on CUDA. Two runs with the same effective precision give the same scores."""
    if precision != "auto":
        return precision
    return "auto-cuda" if device_type == "cuda" else "fp32"


def model_settings(model: str, *, precision: str, device_type: str) -> dict[str, Any]:
    """The settings a resumed run must share: the model's config (backbone, weights, variant,
    layers, image size, prompts, head, normalisation), a hash of its head weights, and the
    effective precision. Reads the head's two files only; the model is not built."""
    from ..model.config import read_config_file
    from ..model.hub import CONFIG_NAME, WEIGHTS_NAME, resolve_head_dir

    directory = resolve_head_dir(model)
    config, _ = read_config_file(directory / CONFIG_NAME)
    digest = hashlib.sha256((directory / WEIGHTS_NAME).read_bytes()).hexdigest()
    return {
        "model": config.to_dict(),
        "head_sha256": digest,
        "precision": effective_precision(precision, device_type),
    }


def _tmp_name(name: str) -> str:
    folder, base = posixpath.split(name)
    return posixpath.join(folder, f".{base}.tmp-{uuid.uuid4().hex[:12]}")


class OutputFolder:
    """The output folder of a corpus run: a local folder or a URI (``s3://bucket/scores``)."""

    def __init__(self, location: str, filesystems: Filesystems) -> None:
        self.location = location
        try:
            self.fs, base = filesystems.resolve(location)
        except ValueError as err:
            raise CorpusError(f"--output {location}: cannot open this location ({err})") from None
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

    def names(self) -> set[str]:
        """Names of the files directly in the folder (hidden temporary files included)."""
        selector = pafs.FileSelector(self.base, allow_not_found=True, recursive=False)
        return {
            posixpath.basename(info.path) for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File
        }

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self.path(name)).type == pafs.FileType.File

    def read_text(self, name: str) -> str | None:
        try:
            with self.fs.open_input_stream(self.path(name)) as stream:
                return stream.read().decode("utf-8")
        except FileNotFoundError:
            return None

    def _parent(self, name: str) -> None:
        self.fs.create_dir(posixpath.dirname(self.path(name)), recursive=True)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write to a hidden temporary name beside ``name``, then rename it over ``name``."""
        self._parent(name)
        tmp = self.path(_tmp_name(name))
        try:
            with self.fs.open_output_stream(tmp) as stream:
                stream.write(data)
            self.fs.move(tmp, self.path(name))
        finally:
            if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                self.fs.delete_file(tmp)

    def create_once(self, name: str, data: bytes) -> bool:
        """Write ``name`` unless it exists; False if it did. Atomic on local folders (a hard link),
        check-then-write elsewhere."""
        if not self.local:
            if self.exists(name):
                return False
            self.write_bytes(name, data)
            return True
        self._parent(name)
        tmp = self.path(_tmp_name(name))
        with open(tmp, "wb") as stream:
            stream.write(data)
        try:
            return place_new(tmp, self.path(name))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def write_table(self, name: str, table: pa.Table) -> None:
        """A Parquet file written to a hidden temporary name and renamed: a reader never sees half of it."""
        self._parent(name)
        tmp = self.path(_tmp_name(name))
        try:
            pq.write_table(table, tmp, filesystem=self.fs)
            self.fs.move(tmp, self.path(name))
        finally:
            if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                self.fs.delete_file(tmp)

    def delete(self, names: list[str]) -> None:
        for name in names:
            if self.fs.get_file_info(self.path(name)).type == pafs.FileType.File:
                self.fs.delete_file(self.path(name))

    def delete_dir(self, name: str) -> None:
        if self.fs.get_file_info(self.path(name)).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(name))

    # ---------------------------------------------------------------- the plan

    def read_plan(self) -> Plan | None:
        text = self.read_text(PLAN_NAME)
        return None if text is None else Plan.from_json(text, source=self.path(PLAN_NAME))

    def commit_plan(self, plan: Plan) -> Plan:
        """Store ``plan`` unless another process stored one first; the stored plan is returned."""
        if self.create_once(PLAN_NAME, plan.to_json().encode("utf-8")):
            return plan
        stored = self.read_plan()
        assert stored is not None
        return stored

    def clear(self, plan: Plan | None) -> None:
        """Remove what a temu run wrote here (the shards of ``plan``, temporary files, ``_SUCCESS``, ``_temu/``)."""
        names = self.names()
        shard_files = {s.file_name for s in plan.shards} if plan is not None else set()
        temporary = {n for n in names if n.startswith(".") and ".parquet.tmp-" in n}
        self.delete(sorted((names & shard_files) | temporary | ({SUCCESS_NAME} & names)))
        self.delete_dir("_temu")

    def stale_files(self, shards: list[Shard], names: set[str]) -> list[str]:
        """Temporary files left by a killed run for these shards (never read: outputs are renamed when complete)."""
        prefixes = tuple(f".{s.file_name}.tmp-" for s in shards)
        return sorted(n for n in names if n.startswith(prefixes)) if prefixes else []


def open_plan(folder: OutputFolder, wanted: Plan, make_shards: Callable[[], list[Shard]], *, overwrite: bool) -> Plan:
    """The plan to run. ``wanted`` holds this run's settings, inputs and options (its shards are
    not used): a stored plan that agrees with it is resumed as it is, without listing the inputs
    again. Otherwise ``make_shards()`` plans the inputs and the new plan is stored, unless another
    process stored one first. ``overwrite`` clears an earlier run first. :class:`~temu.CorpusError`
    when the folder holds a run of other settings, inputs or options, or Parquet files not from temu."""
    stored = folder.read_plan()
    if stored is not None and overwrite:
        folder.clear(stored)
        stored = None
    if stored is not None:
        problem = stored.conflict(wanted)
        if problem is not None:
            raise CorpusError(
                f"--output {folder.location} holds an earlier run that this one cannot resume: {problem}. "
                "Rerun with --overwrite to start again, or give another --output folder"
            )
        return stored
    foreign = sorted(n for n in folder.names() if n.endswith(SHARD_SUFFIX) and not n.startswith("."))
    if foreign:
        raise CorpusError(
            f"--output {folder.location} already holds Parquet files ({foreign[0]}, ...) but no temu plan "
            f"({PLAN_NAME}); give an empty or new folder"
        )
    stored = folder.commit_plan(dataclasses.replace(wanted, shards=make_shards()))
    problem = stored.conflict(wanted)  # another process may have stored its plan first
    if problem is not None:
        raise CorpusError(
            f"--output {folder.location}: a run started at the same time stored its plan first; {problem}"
        )
    return stored
