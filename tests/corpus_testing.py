"""A small corpus of every input kind, and one of videos, shared by the corpus and Ray tests (importable: tests/
is on pythonpath)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import temu_testing

import temu


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@dataclass
class Corpus:
    """Inputs (as given on the command line, relative to ``root``) and what each image must score."""

    root: Path
    inputs: list[str]
    expected: dict[str, float | None]  # id -> score of temu.score on the same file; None: an error row
    images: int


def make_corpus(root: Path, photo_files: dict[str, Path], model) -> Corpus:
    """A folder (4 photographs, a 0-byte jpg), a WebDataset tar (3 photographs with .json/.cls
    siblings, a corrupt .jpg member), a Parquet table of image bytes (with ids and a null image)
    and a path list (two photographs, a missing file, a blank line). Paths are relative to ``root``."""
    names = sorted(photo_files)
    scores = dict(zip(names, temu.score([photo_files[n] for n in names], model=model)))
    folder = root / "photos"
    folder.mkdir()
    for name in names:
        (folder / f"{name}.png").write_bytes(photo_files[name].read_bytes())
    (folder / "empty.jpg").write_bytes(b"")
    expected: dict[str, float | None] = {f"photos/{n}.png": scores[n] for n in names}
    expected["photos/empty.jpg"] = None

    with tarfile.open(root / "00000.tar", "w") as tar:
        for i, name in enumerate(names[:3]):
            add_member(tar, f"{i:06d}.png", photo_files[name].read_bytes())
            add_member(tar, f"{i:06d}.json", b'{"caption": "x"}')
            add_member(tar, f"{i:06d}.cls", b"1")
            expected[f"{i:06d}"] = scores[name]
        add_member(tar, "000009.jpg", b"\xff\xd8\xff\xe0 this is not a JPEG")
        expected["000009"] = None

    table = pa.table(
        {
            "key": ["t-a", "t-b", "t-null"],
            "jpg": pa.array(
                [photo_files[names[0]].read_bytes(), photo_files[names[3]].read_bytes(), None], pa.binary()
            ),
        }
    )
    pq.write_table(table, root / "table.parquet")
    expected.update({"t-a": scores[names[0]], "t-b": scores[names[3]], "t-null": None})

    (root / "list.txt").write_text(f"photos/{names[1]}.png\n\nphotos/missing.png\n{folder / names[2]}.png\n")
    expected["photos/missing.png"] = None
    # the list names photographs the folder has too: ids repeat across inputs, each row once per listing
    listed = {f"photos/{names[1]}.png": scores[names[1]], f"{folder / names[2]}.png": scores[names[2]]}
    return Corpus(root, ["photos/", "00000.tar", "table.parquet", "list.txt"], {**expected, **listed}, 15)


def read_outputs(folder: Path) -> pa.Table:
    """Every shard's rows, read as one Parquet dataset (pyarrow skips _temu/, _SUCCESS and hidden files)."""
    return pq.read_table(folder)


def run_cli_killed_at(argv: list[str], write: int, cwd: Path, env: dict | None = None) -> int:
    """Run ``temu`` in a subprocess that is SIGKILLed while writing its ``write``-th shard output:
    the temporary file is written, the rename never happens. Returns the exit status (-9)."""
    code = f"""
import os, signal, sys
import pyarrow.parquet as pq
from temu.corpus import plan
original = plan.OutputFolder.write_table
calls = []
def write_table(self, name, table):
    calls.append(name)
    if len(calls) == {write}:
        self._parent(name)
        pq.write_table(table, self.path("." + name + ".tmp-killed"), filesystem=self.fs)
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, name, table)
plan.OutputFolder.write_table = write_table
from temu.cli import main
sys.exit(main({argv!r}))
"""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-3000:]
    return proc.returncode


def fake_scores(
    output: Path,
    inputs: list[str],
    value_of,
    *,
    attributes: dict | None = None,
    shard_size: int = 10_000,
    finish: bool = True,
) -> None:
    """A corpus output as ``temu score --output DIR/`` writes it, without a model: the inputs are
    planned and read as a run reads them, and each row gets ``value_of(id)`` (None: an error row);
    ``attributes`` maps a column name to a function of the id too. Fast, and the scores are chosen."""
    from temu.corpus.engine import finish as write_success
    from temu.corpus.listing import Planner
    from temu.corpus.output import shard_output
    from temu.corpus.plan import OutputFolder, Plan
    from temu.corpus.read import read_shard
    from temu.corpus.uris import Filesystems

    fs = Filesystems()
    folder = OutputFolder(str(output), fs)
    shards = Planner(folder, fs, shard_size=shard_size).plan(inputs)
    settings = {"model": {"backbone": "fake"}, "head_sha256": "0" * 64, "precision": "fp32"}
    options = {"shard_size": shard_size, "attributes": {n: ["a", "b"] for n in attributes or {}} or None}
    plan = folder.commit_plan(Plan(settings, inputs, options, shards))
    for shard in plan.shards:
        source: dict = {}
        rows = [r for chunk in read_shard(shard, fs, max_member_size=1 << 30, source=source) for r in chunk.to_pylist()]
        ids = [r["id"] for r in rows]
        names = [i.decode("utf-8", "surrogateescape") for i in ids]
        values = [None if r["read_error"] else value_of(n) for r, n in zip(rows, names)]
        errors = [
            r["read_error"] or (f"{n}: unreadable" if v is None else None) for r, n, v in zip(rows, names, values)
        ]
        columns = {
            a: [None if v is None else f(n) for n, v in zip(names, values)] for a, f in (attributes or {}).items()
        }
        table, _ = shard_output(shard, ids, values, errors, [None] * len(ids), columns, source)
        folder.write_table(shard.file_name, table)
    if finish:
        write_success(plan, folder)


# ---------------------------------------------------------------- videos and calibrated scales

VIDEO_W, VIDEO_H = 64, 48


def write_clip(path: Path, pictures: list, count: int, rate: int = 10) -> Path:
    """A clip of ``count`` frames at ``rate`` fps, cycling through ``pictures``."""
    return temu_testing.write_clip(path, pictures, [i / rate for i in range(count)], rate=rate)


def make_media(root: Path, photos: dict) -> Path:
    """``root/media/``: two clips, two images and a broken clip; ``clips.tar`` (a clip and a broken one as
    members of samples keyed 000000, 000001); ``clips.parquet`` (a clip's bytes in a cell)."""
    from PIL import Image, ImageFilter

    folder = root / "media"
    folder.mkdir()
    pictures = []
    for arr in photos.values():
        img = Image.fromarray(arr).resize((VIDEO_W, VIDEO_H), Image.BICUBIC)
        pictures += [np.asarray(img), np.asarray(img.filter(ImageFilter.GaussianBlur(2)))]
    write_clip(folder / "a.mp4", pictures, 25)
    write_clip(folder / "b.mkv", pictures[3:], 12, rate=5)
    (folder / "c.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    for k, name in enumerate(sorted(photos)[:2]):
        Image.fromarray(photos[name]).resize((80, 60)).save(folder / f"p{k}.png")
    with tarfile.open(root / "clips.tar", "w") as tar:
        add_member(tar, "000000.mp4", (folder / "a.mp4").read_bytes())
        add_member(tar, "000000.json", b"{}")
        add_member(tar, "000001.mp4", b"not a video at all")
    table = pa.table({"id": ["cell"], "video": [(folder / "b.mkv").read_bytes()]})
    pq.write_table(table, root / "clips.parquet")
    return root


def make_calibrated_head(head: Path, target: Path) -> Path:
    """``head`` with a hand-made calibration (a logistic MOS map, 1-5, and percentiles of 0..1) saved in ``target``."""
    from temu.model.calibration import Calibration, MOSMap, Percentiles

    model = temu.load(head)
    model.calibration = Calibration(
        mos=MOSMap("logistic4", {"b1": 5.0, "b2": 1.0, "b3": 0.5, "b4": 0.05}, 1.0, 5.0, False, "made up", 10),
        percentiles=Percentiles.of(np.linspace(0.0, 1.0, 201), "made up"),
        head=model.head_digest(),
    )
    return model.save_pretrained(target)
