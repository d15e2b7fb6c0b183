"""One shard -> Arrow row chunks of :data:`ROW_SCHEMA`, in the shard's order; nothing is decoded here.

Each row is one image: ``id`` (a file's path as given, a tar member's WebDataset key, a table's
id column), and either ``image`` (encoded bytes) or ``path`` (a local path, absolute, or a URI)
to read it from. ``read_error`` is set on a row standing for what could not be read at all: a
tar that cannot be opened or breaks off (the members before the break are rows as usual).
"""

from __future__ import annotations

import os
import re
import tarfile
import zlib
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import CorpusError
from ..images.names import is_image_name
from .plan import Shard
from .uris import Filesystems, is_uri

ROW_SCHEMA = pa.schema(
    [
        ("index", pa.int64()),  # position in the shard
        ("id", pa.string()),
        ("image", pa.binary()),
        ("path", pa.string()),
        ("read_error", pa.string()),
    ]
)

#: WebDataset's split of a member name into key and extension: the key ends at the first dot of the file name.
_KEY = re.compile(r"^((?:.*/|)[^./][^.]*)\.([^/]*)$")

Row = tuple[str, "bytes | None", "str | None", "str | None"]


def webdataset_key(member: str) -> tuple[str, str] | None:
    """``"dir/000123.jpg"`` -> ``("dir/000123", "jpg")``; None for names WebDataset skips (no extension, hidden)."""
    match = _KEY.match(member)
    return (match.group(1), match.group(2)) if match else None


def read_shard(
    shard: Shard, filesystems: Filesystems, *, chunk_rows: int = 256, chunk_bytes: int = 64 << 20
) -> Iterator[pa.Table]:
    """The rows of ``shard`` as tables of up to ``chunk_rows`` rows (and about ``chunk_bytes`` of images)."""
    if shard.kind == "list":
        rows = _list_rows(shard, filesystems)
    elif shard.kind == "tar":
        rows = _tar_rows(shard, filesystems)
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
    ids, images, paths, errors = zip(*rows)
    return pa.Table.from_arrays(
        [
            pa.array(range(start, start + len(rows)), pa.int64()),
            pa.array(ids, pa.string()),
            pa.array(images, pa.binary()),
            pa.array(paths, pa.string()),
            pa.array(errors, pa.string()),
        ],
        schema=ROW_SCHEMA,
    )


def _resolve(entry: str, root: str | None) -> str:
    if is_uri(entry):
        return entry
    entry = os.path.expanduser(entry)
    return entry if os.path.isabs(entry) or root is None else os.path.join(root, entry)


def _list_rows(shard: Shard, filesystems: Filesystems) -> Iterator[Row]:
    try:
        fs, path = filesystems.resolve(shard.source)
        with fs.open_input_file(path) as stream:
            stream.seek(shard.start)
            data = stream.read((shard.stop or stream.size()) - shard.start)
    except (OSError, ValueError) as err:
        raise CorpusError(f"{shard.label}: the path list of shard {shard.name} cannot be read ({err})") from None
    for line in data.split(b"\n"):
        entry = line.decode("utf-8", "replace").strip()
        if entry:
            yield entry, None, _resolve(entry, shard.root), None


def _tar_rows(shard: Shard, filesystems: Filesystems) -> Iterator[Row]:
    try:
        fs, path = filesystems.resolve(shard.source)
        stream = fs.open_input_stream(path)
    except FileNotFoundError:
        yield shard.label, None, None, f"{shard.label}: no such file"
        return
    except (OSError, ValueError) as err:
        yield shard.label, None, None, f"{shard.label}: cannot open the tar ({err})"
        return
    seen: set[str] = set()
    images = 0
    try:
        with stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                split = webdataset_key(member.name) if member.isfile() else None
                if split is None or not is_image_name(member.name):
                    continue
                key, ext = split
                file = tar.extractfile(member)
                data = file.read() if file is not None else b""
                yield (key if key not in seen else f"{key}.{ext}"), data, None, None
                seen.add(key)
                images += 1
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        yield shard.label, None, None, f"{shard.label}: truncated or corrupt tar after {images} image(s) ({err})"


def _table_rows(shard: Shard, filesystems: Filesystems) -> Iterator[Row]:
    column, kind, id_column = shard.image_column, shard.image_kind, shard.id_column
    start, stop = shard.start, shard.stop if shard.stop is not None else 0
    try:
        fs, path = filesystems.resolve(shard.source)
        stream = fs.open_input_file(path)
    except (OSError, ValueError) as err:
        raise CorpusError(f"{shard.label}: the table of shard {shard.name} cannot be read ({err})") from None
    with stream:
        try:  # a table changed or damaged since it was planned (pyarrow's ArrowInvalid is a ValueError)
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
    ids = part.column(id_column).cast(pa.string()).to_pylist() if id_column else [None] * len(data)
    for i, (image, path, key) in enumerate(zip(data, paths, ids)):
        if key is None:
            key = path if path is not None else f"{shard.label}#{first_row + i}"
        read_from = None if image is not None or path is None else _resolve(path, shard.root)
        yield key, image, read_from, None


def read_shard_rows(batch: pa.Table, *, chunk_rows: int = 256) -> Iterator[pa.Table]:
    """A ``map_batches`` reader for Ray (no torch imported): each shard of the batch's ``shard``
    column (a JSON :class:`Shard`) -> its rows with ``shard`` (the name) and ``shard_rows`` (null),
    then one marker row whose ``shard_rows`` is the shard's row count, so the driver knows when
    all of a shard's rows are back."""
    import json

    filesystems = Filesystems()
    for spec in batch.column("shard").to_pylist():
        shard = Shard.from_dict(json.loads(spec))
        rows = 0
        for chunk in read_shard(shard, filesystems, chunk_rows=chunk_rows):
            rows += chunk.num_rows
            yield _with_shard(chunk, shard.name, None)
        yield _with_shard(pa.Table.from_pylist([{"index": None}], schema=ROW_SCHEMA), shard.name, rows)


def _with_shard(table: pa.Table, name: str, rows: int | None) -> pa.Table:
    n = table.num_rows
    table = table.append_column("shard", pa.array([name] * n, pa.string()))
    return table.append_column("shard_rows", pa.array([rows] * n, pa.int64()))
