"""One shard -> Arrow row chunks of :data:`ROW_SCHEMA`, in the shard's order; nothing is decoded here.

Each row is one image or video: ``id`` (its exact bytes: a file's path as given, a tar member's
WebDataset key, a table's id column), and either ``image`` (encoded bytes) or ``path`` (the bytes of
a local path, absolute, or of a URI) to read it from; ``video`` is True when its name (the tar
member's, the path's) is a video's (:data:`~temu.images.names.VIDEO_EXTENSIONS`), so its bytes are
read as a video although its id has no extension. ``read_error`` is set on a row standing for what
could not be read at all: a tar that cannot be opened or breaks off (the members before the break
are rows as usual), or a tar member larger than ``max_member_size`` (never read).

A list or table is checked against its stamp at planning before a shard of it is read
(:func:`~temu.corpus.plan.source_change`): a :class:`~temu.CorpusError` if it changed.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import zlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import CorpusError
from ..images.names import is_media_name, is_video_name
from .names import clean_text, name_bytes, name_of
from .plan import Shard, source_change
from .uris import Filesystems, file_stat, is_uri, too_large

ROW_SCHEMA = pa.schema(
    [
        ("index", pa.int64()),  # position in the shard
        ("id", pa.binary()),
        ("image", pa.binary()),
        ("path", pa.binary()),
        ("read_error", pa.string()),
        ("video", pa.bool_()),
    ]
)

#: WebDataset's split of a member name into key and extension: the key ends at the first dot of the file name.
_KEY = re.compile(r"^((?:.*/|)[^./][^.]*)\.([^/]*)$")

Row = tuple[bytes, "bytes | None", "str | None", "str | None", bool]


def webdataset_key(member: str) -> tuple[str, str] | None:
    """``"dir/000123.jpg"`` -> ``("dir/000123", "jpg")``; None for names WebDataset skips (no extension, hidden)."""
    match = _KEY.match(member)
    return (match.group(1), match.group(2)) if match else None


def sample_key(member_id: str) -> str:
    """The WebDataset key of the sample an image id of :class:`TarIds` belongs to (``"a.png"`` -> ``"a"``)."""
    split = webdataset_key(member_id)
    return member_id if split is None else split[0]


class TarIds:
    """The ids of a tar's image and video members, unique within the tar, as corpus mode gives them.

    Call it with each member name in tar order. The first image of a sample is its WebDataset key
    (``000123`` for ``000123.jpg``), so metadata joins on it; another image of the same sample is
    ``key.ext`` (``000123.png``); a member name seen before in the tar (a duplicate member) is
    ``key.ext#N`` for its N-th copy, and is scored too. Returns None for members that are not
    images or videos, or that WebDataset skips. ``temu select --write-shards`` maps ids back with :func:`sample_key`.
    """

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.names: dict[str, int] = {}

    def __call__(self, name: str) -> str | None:
        split = webdataset_key(name)
        if split is None or not is_media_name(name):
            return None
        key, ext = split
        copies = self.names.get(name, 0) + 1
        self.names[name] = copies
        if copies > 1:
            return f"{key}.{ext}#{copies}"
        if key in self.keys:
            return f"{key}.{ext}"
        self.keys.add(key)
        return key


def open_tar(stream: Any) -> tarfile.TarFile:
    """A tar read as a stream (``r|*``: plain or compressed), names that are not UTF-8 kept as surrogate escapes."""
    return tarfile.open(fileobj=stream, mode="r|*", encoding="utf-8", errors="surrogateescape")


def read_shard(
    shard: Shard,
    filesystems: Filesystems,
    *,
    max_member_size: int,
    chunk_rows: int = 256,
    chunk_bytes: int = 64 << 20,
    source: dict[str, Any] | None = None,
) -> Iterator[pa.Table]:
    """The rows of ``shard`` in chunks.

    Args:
        shard: the shard.
        filesystems: where its inputs are read from.
        max_member_size: the largest image read, in bytes; a larger one becomes a row with its error.
        chunk_rows: the most rows per chunk.
        chunk_bytes: about the most image bytes per chunk.
        source: filled with the ``size`` and ``mtime_ns`` of a tar as it was opened (recorded in the
            shard's output, so a selection can tell the tar changed since).

    Returns:
        An iterator of Arrow tables.
    """
    if shard.kind == "list":
        rows = _list_rows(shard, filesystems)
    elif shard.kind == "tar":
        rows = _tar_rows(shard, filesystems, max_member_size, source if source is not None else {})
    elif shard.kind == "parquet":
        rows = _table_rows(shard, filesystems)
    else:
        raise CorpusError(f"shard {shard.name}: unknown kind {shard.kind!r} in the plan")
    chunk: list[Row] = []
    size, index = 0, 0
    for row in rows:
        chunk.append(row)
        size += len(row[1]) if row[1] is not None else 0
        if len(chunk) >= chunk_rows or size >= chunk_bytes:
            yield _table(chunk, index)
            index += len(chunk)
            chunk, size = [], 0
    if chunk:
        yield _table(chunk, index)


def _table(rows: list[Row], start: int) -> pa.Table:
    ids, images, paths, errors, videos = zip(*rows)
    return pa.Table.from_arrays(
        [
            pa.array(range(start, start + len(rows)), pa.int64()),
            pa.array(ids, pa.binary()),
            pa.array(images, pa.binary()),
            pa.array([None if p is None else name_bytes(p) for p in paths], pa.binary()),
            pa.array([None if e is None else clean_text(e) for e in errors], pa.string()),
            pa.array(videos, pa.bool_()),
        ],
        schema=ROW_SCHEMA,
    )


def _resolve(entry: str, root: str | None) -> str:
    if is_uri(entry):
        return entry
    entry = os.path.expanduser(entry)
    return entry if os.path.isabs(entry) or root is None else os.path.join(root, entry)


def _check_source(shard: Shard, filesystems: Filesystems) -> None:
    problem = source_change(shard, filesystems)
    if problem is not None:
        raise CorpusError(f"{problem}; shard {shard.name} is not read")


def _list_rows(shard: Shard, filesystems: Filesystems) -> Iterator[Row]:
    _check_source(shard, filesystems)
    try:
        fs, path = filesystems.resolve(shard.source)
        with fs.open_input_file(path) as stream:
            stream.seek(shard.start)
            data = stream.read((shard.stop or stream.size()) - shard.start)
    except (OSError, ValueError) as err:
        raise CorpusError(f"{shard.label}: the path list of shard {shard.name} cannot be read ({err})") from None
    for line in data.split(b"\n"):
        if line.endswith(b"\r"):  # the entry is the line less its line ending (\n or \r\n); spaces are kept
            line = line[:-1]
        if line.strip():
            path = _resolve(name_of(line), shard.root)
            yield line, None, path, None, is_video_name(path)


def _tar_rows(shard: Shard, filesystems: Filesystems, max_member_size: int, source: dict[str, Any]) -> Iterator[Row]:
    label = name_bytes(shard.label)
    try:
        source.update(file_stat(filesystems, shard.source))
        fs, path = filesystems.resolve(shard.source)
        stream = fs.open_input_stream(path)
    except FileNotFoundError:
        yield label, None, None, f"{shard.label}: no such file", False
        return
    except (OSError, ValueError) as err:
        yield label, None, None, f"{shard.label}: cannot open the tar ({err})", False
        return
    ids = TarIds()
    images = 0
    try:
        with stream, open_tar(stream) as tar:
            for member in tar:
                member_id = ids(member.name) if member.isfile() else None
                if member_id is None:
                    continue
                images += 1
                video = is_video_name(member.name)
                if member.size > max_member_size:  # never read: a huge (or sparse) member would exhaust memory
                    too_big = f"{member.name}: {too_large(member.size, max_member_size)}"
                    yield name_bytes(member_id), None, None, too_big, video
                    continue
                file = tar.extractfile(member)
                data = file.read(member.size) if file is not None else b""
                yield name_bytes(member_id), data, None, None, video
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        yield label, None, None, f"{shard.label}: truncated or corrupt tar after {images} image(s) ({err})", False


def _table_rows(shard: Shard, filesystems: Filesystems) -> Iterator[Row]:
    _check_source(shard, filesystems)
    column, kind, id_column = shard.image_column, shard.image_kind, shard.id_column
    start, stop = shard.start, shard.stop if shard.stop is not None else 0
    try:
        fs, path = filesystems.resolve(shard.source)
        stream = fs.open_input_file(path)
    except (OSError, ValueError) as err:
        raise CorpusError(f"{shard.label}: the table of shard {shard.name} cannot be read ({err})") from None
    with stream:
        try:  # a table damaged since it was planned (pyarrow's ArrowInvalid is a ValueError)
            table = pq.ParquetFile(stream)
            groups, first, offset = [], None, 0
            for g in range(table.num_row_groups):
                n = table.metadata.row_group(g).num_rows
                if offset < stop and offset + n > start:
                    groups.append(g)
                    first = offset if first is None else first
                offset += n
            columns = [column] + ([id_column] if id_column and id_column != column else [])
            row = first or 0
            for batch in table.iter_batches(batch_size=1024, row_groups=groups, columns=columns):
                lo, hi = max(start - row, 0), min(stop - row, batch.num_rows)
                if hi > lo:
                    part = batch.slice(lo, hi - lo)
                    yield from _table_batch_rows(part, row + lo, shard, column, kind, id_column)
                row += batch.num_rows
        except (OSError, ValueError) as err:
            raise CorpusError(f"{shard.label}: the table of shard {shard.name} cannot be read ({err})") from None


def id_values(column: pa.Array | pa.ChunkedArray) -> list[bytes | None]:
    """A table's id column as bytes: binary as it is, strings as UTF-8, numbers and other scalars as their text."""
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if not (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        column = column.cast(pa.string())
    return [v if v is None or isinstance(v, bytes) else v.encode("utf-8") for v in column.to_pylist()]


def _table_batch_rows(
    part: pa.RecordBatch, first_row: int, shard: Shard, column: str, kind: str, id_column: str | None
) -> Iterator[Row]:
    values = part.column(column)
    if kind == "struct":
        data = pc.struct_field(values, "bytes").to_pylist()
        fields = {values.type.field(i).name for i in range(values.type.num_fields)}
        paths = pc.struct_field(values, "path").to_pylist() if "path" in fields else [None] * len(data)
    elif kind == "bytes":
        data, paths = values.to_pylist(), [None] * len(values)
    else:
        data, paths = [None] * len(values), values.to_pylist()
    ids = id_values(part.column(id_column)) if id_column else [None] * len(data)
    for i, (image, path, key) in enumerate(zip(data, paths, ids)):
        if key is None:
            key = name_bytes(path if path is not None else f"{shard.label}#{first_row + i}")
        read_from = None if image is not None or path is None else _resolve(path, shard.root)
        yield key, image, read_from, None, path is not None and is_video_name(path)


def read_shard_rows(batch: pa.Table, *, max_member_size: int, chunk_rows: int = 256) -> Iterator[pa.Table]:
    """A ``map_batches`` reader for Ray (no torch imported): each shard of the batch's ``shard``
    column (a JSON :class:`Shard`) -> its rows with ``shard`` (the name), ``shard_rows`` and
    ``shard_source`` (null), then one marker row whose ``shard_rows`` is the shard's row count and
    ``shard_source`` the tar's size and time as read (JSON), so the driver knows when all of a
    shard's rows are back."""
    filesystems = Filesystems()
    for spec in batch.column("shard").to_pylist():
        shard = Shard.from_dict(json.loads(spec))
        rows = 0
        source: dict[str, Any] = {}
        for chunk in read_shard(
            shard, filesystems, max_member_size=max_member_size, chunk_rows=chunk_rows, source=source
        ):
            rows += chunk.num_rows
            yield _with_shard(chunk, shard.name, None, None)
        marker = pa.Table.from_pylist([{"index": None}], schema=ROW_SCHEMA)
        yield _with_shard(marker, shard.name, rows, json.dumps(source) if source else None)


def _with_shard(table: pa.Table, name: str, rows: int | None, source: str | None) -> pa.Table:
    n = table.num_rows
    table = table.append_column("shard", pa.array([name] * n, pa.string()))
    table = table.append_column("shard_rows", pa.array([rows] * n, pa.int64()))
    return table.append_column("shard_source", pa.array([source] * n, pa.string()))
