"""New shards of the kept samples of a selection (``temu select --write-shards DIR``).

- WebDataset tars: new ``DIR/NNNNNN.tar`` files holding every member of each kept sample (the
  kept image's WebDataset key: its ``.json``, ``.txt``, ``.cls`` ... too), byte-identical, in input
  order, ``samples_per_shard`` samples each. Members are streamed from the input tar to the new
  one (never a whole tar, nor a whole member, in memory); each new tar is written under a hidden
  temporary name and renamed when complete.
- Parquet tables: new ``DIR/<table>-NNNNN.parquet`` files of the kept rows (all columns), in input
  order, ``samples_per_shard`` rows each.
- Folders and ``.txt`` lists have no shards to copy: ``DIR/<input>.txt`` lists their kept paths,
  in input order (itself an input of ``temu score``).

An input tar that changed since it was scored, or a table that changed since planning, is refused
before anything is written (:func:`check_sources`).
"""

from __future__ import annotations

import posixpath
import re
import tarfile
import zlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import CorpusError, os_reason
from ..files import temporary_name
from .listing import _stem
from .names import name_of
from .output import exact_ids, output_record, write_lines
from .plan import OutputFolder, Plan, Shard, source_change
from .read import open_tar, sample_key, webdataset_key
from .uris import Filesystems, file_stat, stamp_change


def check_sources(plan: Plan, folder: OutputFolder, orders: list[int], filesystems: Filesystems) -> None:
    """:class:`~temu.CorpusError` naming the first tar of the shards at ``orders`` (places in the
    plan) that changed since it was scored (size or time), or table that changed since planning."""
    for order in orders:
        shard = plan.shards[order]
        if shard.kind == "tar":
            then = output_record(folder, shard).get("source")
            if not then:
                continue
            try:
                now = file_stat(filesystems, shard.source)
            except (OSError, ValueError) as err:
                raise CorpusError(f"{shard.label} cannot be read any more ({err}); no shards were written") from None
            change = stamp_change(then, now)
            if change is not None:
                raise CorpusError(
                    f"{shard.label} changed since it was scored ({change}); score it again before writing new shards "
                    "of it (no shards were written)"
                )
        elif shard.kind == "parquet":
            problem = source_change(shard, filesystems)
            if problem is not None:
                raise CorpusError(f"{problem}; no shards were written")


class _Target:
    """The folder new files go to: each written under a temporary name and renamed when complete."""

    def __init__(self, filesystems: Filesystems, directory: str) -> None:
        self.directory = directory.rstrip("/") or "/"
        self.fs, self.base = filesystems.resolve(self.directory)
        self.base = self.base.rstrip("/") or "/"
        try:
            self.fs.create_dir(self.base, recursive=True)
        except OSError as err:
            raise CorpusError(f"write_shards={directory!r}: cannot be created ({os_reason(err)})") from None
        self.files: list[str] = []

    def open(self, name: str) -> tuple[Any, str, str]:
        path = posixpath.join(self.base, name)
        tmp = temporary_name(path)
        return self.fs.open_output_stream(tmp), tmp, path

    def place(self, tmp: str, path: str, name: str) -> None:
        self.fs.move(tmp, path)
        self.files.append(posixpath.join(self.directory, name))

    def discard(self, tmp: str) -> None:
        if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            self.fs.delete_file(tmp)

    def delete(self, locations: list[str], filesystems: Filesystems) -> None:
        for location in locations:
            fs, path = filesystems.resolve(location)
            if fs.get_file_info(path).type == pafs.FileType.File:
                fs.delete_file(path)


class _TarShards:
    """New tars of ``per`` samples each, ``000000.tar``, ``000001.tar``, ..."""

    def __init__(self, target: _Target, per: int) -> None:
        self.target, self.per = target, per
        self.count = self.index = 0
        self.current: tuple[tarfile.TarFile, Any, str, str, str] | None = None

    def new_sample(self) -> None:
        if self.current is None or self.count == self.per:
            self.close()
            name = f"{self.index:06d}.tar"
            stream, tmp, path = self.target.open(name)
            tar = tarfile.open(
                fileobj=stream, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"
            )
            self.current = (tar, stream, tmp, path, name)
            self.index += 1
            self.count = 0
        self.count += 1

    def add(self, member: tarfile.TarInfo, data: Any) -> None:
        assert self.current is not None
        self.current[0].addfile(member, data)  # copies member.size bytes, block by block

    def close(self) -> None:
        if self.current is not None:
            tar, stream, tmp, path, name = self.current
            tar.close()
            stream.close()
            self.target.place(tmp, path, name)
            self.current = None

    def abort(self) -> None:
        if self.current is not None:
            tar, stream, tmp, _, _ = self.current
            stream.close()
            self.target.discard(tmp)
            self.current = None


def write_shards(
    kept: pa.Table,
    plan: Plan,
    folder: OutputFolder,
    filesystems: Filesystems,
    directory: str,
    samples_per_shard: int,
    old_files: list[str],
) -> tuple[list[str], list[str]]:
    """Write the new shards of a selection.

    Args:
        kept: the selection's rows, with ``order``, ``row``, ``id`` and ``id_bytes``.
        plan: the scored run's plan (its inputs).
        folder: the scored run's output folder.
        filesystems: where the inputs are read from and the shards written.
        directory: where the new shards go.
        samples_per_shard: samples per new tar.
        old_files: an earlier selection's files, deleted first.

    Returns:
        ``(the files written, notes for the user)``.
    """
    kept = kept.sort_by([("order", "ascending"), ("row", "ascending")])  # input order
    orders = kept.column("order").to_numpy()
    starts = np.flatnonzero(np.r_[True, orders[1:] != orders[:-1]]) if len(orders) else np.zeros(0, int)
    groups = [(int(orders[a]), kept.slice(a, b - a)) for a, b in zip(starts, [*starts[1:], len(orders)])]
    target = _Target(filesystems, directory)
    target.delete(old_files, filesystems)
    tars = _TarShards(target, samples_per_shard)
    tables: dict[str, list[tuple[Shard, pa.Table]]] = {}
    lists: dict[str, list[tuple[Shard, pa.Table]]] = {}
    notes: list[str] = []
    try:
        for order, rows in groups:
            shard = plan.shards[order]
            if shard.kind == "tar":
                notes += _copy_samples(shard, rows, filesystems, tars)
            elif shard.kind == "parquet":
                tables.setdefault(shard.source, []).append((shard, rows))
            else:
                lists.setdefault(shard.source, []).append((shard, rows))
        tars.close()
    except BaseException:
        tars.abort()
        raise
    used: set[str] = set()
    for parts in tables.values():
        _copy_rows(parts, filesystems, target, samples_per_shard, _unique(_stem(parts[0][0].label), used))
    listed = []
    for parts in lists.values():
        name = _unique(re.sub(r"-\d{5}(\.\d+)?$", "", parts[0][0].name), used) + ".txt"
        ids = pa.concat_arrays([exact_ids(rows) for _, rows in parts])
        stream, tmp, path = target.open(name)
        try:
            with stream:
                write_lines(stream, ids)
            target.place(tmp, path, name)
        finally:
            target.discard(tmp)
        listed.append(posixpath.join(target.directory, name))
    if listed:
        notes.append(
            f"folder and list inputs have no shards to copy: their kept paths are listed in {', '.join(listed)}"
        )
    return target.files, notes


def _unique(stem: str, used: set[str]) -> str:
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return name


def _copy_samples(shard: Shard, rows: pa.Table, filesystems: Filesystems, tars: _TarShards) -> list[str]:
    """Stream ``shard``'s tar, copying every member of each kept sample."""
    keys = {sample_key(name_of(raw)) for raw in exact_ids(rows).to_pylist()}
    fs, path = filesystems.resolve(shard.source)
    current: str | None = None
    try:
        with fs.open_input_stream(path) as stream, open_tar(stream) as tar:
            for member in tar:
                split = webdataset_key(member.name) if member.isfile() else None
                if split is None or split[0] not in keys:
                    continue
                if split[0] != current:
                    tars.new_sample()
                    current = split[0]
                tars.add(member, tar.extractfile(member))
    except (tarfile.TarError, EOFError, zlib.error) as err:  # where it broke off when scored: nothing kept after
        return [f"{shard.label} breaks off ({err}); its members before the break were copied"]
    return []


def _copy_rows(
    parts: list[tuple[Shard, pa.Table]], filesystems: Filesystems, target: _Target, per: int, stem: str
) -> None:
    """The kept rows of one table (all its columns), in files of ``per`` rows: ``<stem>-NNNNN.parquet``."""
    wanted = np.concatenate([shard.start + rows.column("row").to_numpy() for shard, rows in parts])
    fs, path = filesystems.resolve(parts[0][0].source)
    with fs.open_input_file(path) as source:
        table = pq.ParquetFile(source)
        schema = table.schema_arrow
        index, written, offset, writer = 0, 0, 0, None
        current: tuple[Any, str, str, str] | None = None
        try:
            for batch in table.iter_batches(batch_size=65536):
                lo, hi = np.searchsorted(wanted, [offset, offset + batch.num_rows])
                take = pa.array(wanted[lo:hi] - offset)
                offset += batch.num_rows
                chosen = batch.take(take) if len(take) else None
                while chosen is not None and chosen.num_rows:
                    if writer is None:
                        name = f"{stem}-{index:05d}.parquet"
                        stream, tmp, final = target.open(name)
                        current = (stream, tmp, final, name)
                        writer = pq.ParquetWriter(stream, schema)
                        index, written = index + 1, 0
                    room = per - written
                    writer.write_batch(chosen.slice(0, room))
                    written += min(room, chosen.num_rows)
                    chosen = chosen.slice(room) if chosen.num_rows > room else None
                    if written == per:
                        writer.close()
                        current[0].close()
                        target.place(current[1], current[2], current[3])
                        writer, current = None, None
            if writer is not None and current is not None:
                writer.close()
                current[0].close()
                target.place(current[1], current[2], current[3])
                writer, current = None, None
        finally:
            if current is not None:
                current[0].close()
                target.discard(current[1])
