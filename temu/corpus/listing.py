"""Corpus inputs -> shards: folders, ``.txt`` path lists, ``.parquet`` tables, WebDataset ``.tar`` shards.

Each input is a local path or a URI pyarrow has a filesystem for; brace patterns
(``shards/{00000..00099}.tar``, ``{a,b}.parquet``) are expanded here, as a shell would.

- a ``.tar`` (``.tar.gz``, ``.tgz``) is one shard: its image members, keyed as WebDataset keys them;
- a ``.parquet`` table is split into shards of ``shard_size`` rows; its image column holds encoded
  bytes, paths, or Hugging Face's image struct (bytes and path);
- a ``.txt`` list (one path or URI per line, UTF-8; blank lines and a leading byte-order mark
  skipped; each entry is the line less its line ending, spaces kept) is split into shards of
  ``shard_size`` entries, recorded as byte ranges of the file (and its :func:`~temu.corpus.uris.stamp`);
- a folder is listed once (its images, sorted, as ``temu score`` lists them), the listing is kept
  in the output folder (``_temu/lists/``) and split like a list;
- image and video files given directly are collected into one list, ``files``.

Relative paths in lists and tables are read from the working directory at planning. File names
that are not UTF-8 are kept as bytes (Python's surrogate escapes): listings hold their bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import CorpusError, os_reason
from ..images.folders import list_images
from ..images.names import is_media_name
from .names import LIST_SUFFIX, TABLE_SUFFIX, TAR_SUFFIXES, expand_braces, input_kind, is_uri
from .plan import LISTS_DIR, OutputFolder, Shard
from .uris import Filesystems, stamp

#: Column names tried, in order, when a table's image or id column is not given.
IMAGE_COLUMNS = ("image", "jpg", "jpeg", "png", "webp", "img", "image_bytes", "bytes", "video", "mp4")
PATH_COLUMNS = ("path", "image_path", "filepath", "file_path", "file", "filename", "uri", "url")
ID_COLUMNS = ("id", "__key__", "key", "uid")


def _stem(text: str) -> str:
    base = posixpath.basename(text.rstrip("/").replace("\\", "/"))
    for suffix in (*TAR_SUFFIXES, TABLE_SUFFIX, LIST_SUFFIX):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "input"


def _column_kind(field: pa.Field) -> str | None:
    t = field.type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytes"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "path"
    if pa.types.is_struct(t):
        names = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
        if "bytes" in names and (pa.types.is_binary(names["bytes"]) or pa.types.is_large_binary(names["bytes"])):
            return "struct"
    return None


def table_columns(schema: pa.Schema, label: str, image_column: str | None, id_column: str | None):
    """(image column, its kind, id column or None) of a table; :class:`~temu.CorpusError` if there is no image column."""
    fields = {f.name: f for f in schema}
    if image_column is not None:
        if image_column not in fields:
            raise CorpusError(f"{label}: no column image_column={image_column!r}; its columns: {sorted(fields)}")
        kind = _column_kind(fields[image_column])
        if kind is None:
            raise CorpusError(
                f"{label}: column {image_column!r} is {fields[image_column].type}; expected binary (encoded images), "
                "string (paths or URIs) or an image struct with a binary 'bytes' field"
            )
        chosen = (image_column, kind)
    else:
        named = [(n, _column_kind(fields[n])) for n in IMAGE_COLUMNS if n in fields]
        binary = [(f.name, k) for f in schema if (k := _column_kind(f)) in ("bytes", "struct")]
        paths = [(n, "path") for n in PATH_COLUMNS if n in fields and _column_kind(fields[n]) == "path"]
        choices = [c for c in named if c[1] in ("bytes", "struct")] or (binary if len(binary) == 1 else []) or paths
        if not choices:
            raise CorpusError(
                f"{label}: no image column: expected a binary column of encoded images (e.g. {IMAGE_COLUMNS[0]!r}) "
                f"or a path column named one of {', '.join(PATH_COLUMNS)}; its columns: {sorted(fields)}. "
                "Name it with image_column="
            )
        chosen = choices[0]
    if id_column is not None and id_column not in fields:
        raise CorpusError(f"{label}: no column id_column={id_column!r}; its columns: {sorted(fields)}")
    if id_column is None:
        id_column = next((n for n in ID_COLUMNS if n in fields and n != chosen[0]), None)
    if id_column is not None and pa.types.is_nested(fields[id_column].type):
        raise CorpusError(
            f"{label}: id column {id_column!r} is {fields[id_column].type}; ids must be strings, bytes or numbers "
            "(give another column with id_column=)"
        )
    return chosen[0], chosen[1], id_column


class Planner:
    """Turns inputs into shards. Folder listings are written into ``folder``'s ``_temu/lists/``."""

    def __init__(
        self,
        folder: OutputFolder,
        filesystems: Filesystems,
        *,
        shard_size: int,
        recursive: bool = False,
        root: str | None = None,
        image_column: str | None = None,
        id_column: str | None = None,
    ) -> None:
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise CorpusError(f"shard_size={shard_size!r}: expected a positive number of images per shard")
        self.folder = folder
        self.fs = filesystems
        self.shard_size = shard_size
        self.recursive = recursive
        self.root = root or os.getcwd()
        self.image_column = image_column
        self.id_column = id_column

    def plan(self, inputs: Sequence[str]) -> list[Shard]:
        """The shards of ``inputs`` in input order, with unique names. :class:`~temu.CorpusError` for
        an input that does not exist (local ones are checked here) or cannot be read as its kind."""
        shards: list[Shard] = []
        loose: list[str] = []
        loose_at: int | None = None
        for given in inputs:
            for text in expand_braces(given):
                kind = input_kind(text)
                if kind == "image":
                    if loose_at is None:
                        loose_at = len(shards)
                    loose.append(text)
                    continue
                shards.extend(self._plan_one(text, kind))
        if loose:
            listed = self._list_shards("files", self._write_listing(loose), "the image and video files given")
            shards[loose_at:loose_at] = listed
        return _unique_names(shards)

    def _plan_one(self, text: str, kind: str | None) -> list[Shard]:
        local = not is_uri(text)
        if local:
            path = Path(text).expanduser()
            if kind is None and path.is_dir():
                return self._folder(text)
            if not path.exists():
                raise CorpusError(f"{text}: no such file or folder")
            if path.is_dir():
                raise CorpusError(f"{text}: a folder whose name looks like a {kind} file; give the files in it")
        if kind is None:
            if not local and self._remote_type(text) == pafs.FileType.Directory:
                return self._folder(text)
            raise CorpusError(
                f"{text}: not a corpus input; expected a folder, a .txt list of paths, a .parquet table, "
                "a WebDataset .tar shard or an image or video file"
            )
        source = text if not local else os.path.abspath(os.path.expanduser(text))
        if kind == "tar":
            return [Shard(name=_stem(text), kind="tar", source=source, label=text)]
        if kind == "list":
            return self._list_shards(_stem(text), source, text, stamped=True)
        return self._table(text, source)

    def _remote_type(self, text: str) -> pafs.FileType:
        try:
            fs, path = self.fs.resolve(text)
            return fs.get_file_info(path).type
        except (OSError, ValueError) as err:
            raise CorpusError(f"{text}: cannot open this location ({err})") from None

    def _folder(self, text: str) -> list[Shard]:
        if is_uri(text):
            fs, path = self.fs.resolve(text)
            prefix = self.fs.uri_prefix(text)
            try:
                infos = fs.get_file_info(pafs.FileSelector(path.rstrip("/"), recursive=self.recursive))
            except OSError as err:
                raise CorpusError(f"{text}: cannot list this folder ({os_reason(err)})") from None
            names = sorted(
                prefix + info.path
                for info in infos
                if info.type == pafs.FileType.File
                and is_media_name(info.path)
                and not posixpath.basename(info.path).startswith(".")
            )
        else:
            # ids are the paths as given: "photos/" lists "photos/a.jpg", as `temu score photos/` names them
            names = [str(p) for p in list_images(Path(text).expanduser(), recursive=self.recursive)]
        return self._list_shards(_stem(text) or "folder", self._write_listing(names), text)

    def _write_listing(self, names: list[str]) -> str:
        bad = next((n for n in names if "\n" in n or "\r" in n), None)
        if bad is not None:
            raise CorpusError(f"{bad!r}: a file name with a line break cannot be listed; rename it")
        data = "".join(n + "\n" for n in names).encode("utf-8", "surrogateescape")  # the bytes of every name
        name = f"{LISTS_DIR}/{hashlib.sha1(data).hexdigest()[:16]}.txt"  # by content: concurrent planners agree
        if not self.folder.exists(name):
            self.folder.write_bytes(name, data)
        return self.folder.location_of(name)

    def _list_shards(self, stem: str, source: str, label: str, *, stamped: bool = False) -> list[Shard]:
        try:
            stamp_then = stamp(self.fs, source) if stamped else None
            fs, path = self.fs.resolve(source)
            with fs.open_input_stream(path) as stream:
                ranges = list_ranges(stream, self.shard_size)
        except (OSError, ValueError) as err:
            raise CorpusError(f"{label}: cannot read the list ({err})") from None
        return [
            Shard(
                name=f"{stem}-{k:05d}",
                kind="list",
                source=source,
                label=label,
                start=a,
                stop=b,
                rows=n,
                root=self.root,
                stamp=stamp_then,
            )
            for k, (a, b, n) in enumerate(ranges)
        ]

    def _table(self, text: str, source: str) -> list[Shard]:
        try:
            stamp_then = stamp(self.fs, source)
            fs, path = self.fs.resolve(source)
            with fs.open_input_file(path) as stream:
                meta = pq.ParquetFile(stream)
                schema, rows = meta.schema_arrow, meta.metadata.num_rows
        except (OSError, ValueError) as err:
            raise CorpusError(f"{text}: cannot read the table ({err})") from None
        column, kind, id_column = table_columns(schema, text, self.image_column, self.id_column)
        stem = _stem(text)
        starts = range(0, rows, self.shard_size)
        return [
            Shard(
                name=stem if len(starts) == 1 else f"{stem}-{k:05d}",
                kind="parquet",
                source=source,
                label=text,
                start=a,
                stop=min(rows, a + self.shard_size),
                rows=min(rows, a + self.shard_size) - a,
                root=self.root,
                image_column=column,
                image_kind=kind,
                id_column=id_column,
                stamp=stamp_then,
            )
            for k, a in enumerate(starts)
        ]


BOM = b"\xef\xbb\xbf"


def list_ranges(stream, shard_size: int, block: int = 1 << 20) -> list[tuple[int, int, int]]:
    """``(start byte, stop byte, entries)`` of consecutive runs of ``shard_size`` non-blank lines of a
    list (a line of white space only is blank). A UTF-8 byte-order mark at the start is in no range."""
    ranges: list[tuple[int, int, int]] = []
    offset, count, first, last_end = 0, 0, 0, 0
    pending = stream.read(len(BOM))
    if pending == BOM:
        offset, pending = len(BOM), b""

    def entry(line: bytes, end: int) -> None:
        nonlocal count, first, last_end
        if not line.strip():
            return
        if count == 0:
            first = end - len(line)
        count += 1
        last_end = end
        if count == shard_size:
            ranges.append((first, end, count))
            count = 0

    while True:
        chunk = stream.read(block)
        if not chunk:
            break
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            offset += len(line) + 1
            entry(line + b"\n", offset)
    if pending:
        offset += len(pending)
        entry(pending, offset)
    if count:
        ranges.append((first, last_end, count))
    return ranges


def _unique_names(shards: list[Shard]) -> list[Shard]:
    seen: set[str] = set()
    out = []
    for shard in shards:
        name, n = shard.name, 1
        while name in seen:
            n += 1
            name = f"{shard.name}.{n}"
        seen.add(name)
        out.append(shard if name == shard.name else dataclasses.replace(shard, name=name))
    return out
