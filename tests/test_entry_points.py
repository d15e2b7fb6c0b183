"""Every way into temu gives one file the same score: the Python calls, the model itself, ``temu score``,
corpus mode, evaluation and fine-tuning's validation path (the pyiqa metric: tests/test_pyiqa_plugin.py).

All of them read the file through one pipeline (temu.images) and score through one core
(temu.inference), so they must agree to float32 rounding; fp32 is pinned because ``precision="auto"``
is bf16 on CPUs with native bf16.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TOL = 1e-6


@pytest.fixture
def jpegs(tmp_path: Path, photos: dict[str, np.ndarray]) -> list[Path]:
    """JPEGs (torchvision's decoder), a grayscale one, and a PNG with alpha (Pillow's path), upright."""
    folder = tmp_path / "photos"
    folder.mkdir()
    names = sorted(photos)
    paths = []
    for name in names[:3]:
        paths.append(folder / f"{name}.jpg")
        Image.fromarray(photos[name]).save(paths[-1], quality=90)
    paths.append(folder / "gray.jpg")
    Image.fromarray(photos[names[3]]).convert("L").save(paths[-1])
    paths.append(folder / "alpha.png")
    Image.fromarray(photos[names[0]][::-1]).convert("RGBA").save(paths[-1])
    return sorted(paths)


def test_one_file_has_one_score_whichever_way_in(jpegs, tiny_head_dir, tmp_path, capsys):
    import pyarrow.parquet as pq

    import temu
    from temu.cli import main
    from temu.corpus import run
    from temu.data.records import IQARecord
    from temu.evaluation.predict import predict_records
    from temu.images.decode import read_pixels
    from temu.model.scale import MOSScale

    model = temu.load(tiny_head_dir)
    files = [str(p) for p in jpegs]
    reference = np.array(temu.score(files, model=model, precision="fp32"), dtype=np.float64)
    assert len(set(np.round(reference, 6))) == len(files)  # the files score apart, so a mix-up would show

    ways: dict[str, np.ndarray] = {}
    ways["iter_scores"] = np.array([r.score for r in temu.iter_scores(files, model=model, precision="fp32")])
    ways["explain"] = np.array([e.score for e in temu.explain(files, model=model, precision="fp32")])
    ways["a folder"] = np.array(temu.score(str(jpegs[0].parent), model=model, precision="fp32"))
    ways["num_workers=2, batch_size=2"] = np.array(
        temu.score(files, model=model, precision="fp32", num_workers=2, batch_size=2)
    )
    with torch.inference_mode():
        ways["TeMuIQA(pixels)"] = np.array([float(model(read_pixels(f)[None])[0]) for f in files])

    out = tmp_path / "scores.csv"
    assert main(["score", *files, "--model", str(tiny_head_dir), "--precision", "fp32", "--output", str(out)]) == 0
    rows = {r["path"]: float(r["score"]) for r in csv.DictReader(out.open())}
    ways["temu score"] = np.array([rows[f] for f in files])

    report = run(files, str(tmp_path / "corpus"), model=str(tiny_head_dir), precision="fp32", progress=False)
    assert report.complete
    table = pq.read_table(tmp_path / "corpus").to_pydict()
    by_id = dict(zip(table["id"], table["score"], strict=True))
    ways["temu.corpus.run"] = np.array([by_id[f] for f in files])

    records = [IQARecord(Path(f), 1.0, i + 2) for i, f in enumerate(files)]
    ways["evaluation"] = predict_records(model, records, MOSScale(0.0, 1.0), precision="fp32")
    capsys.readouterr()

    far = {name: float(np.abs(got - reference).max()) for name, got in ways.items()}
    assert all(d <= TOL for d in far.values()), far


def test_validation_keeps_dataset_order_when_a_native_size_model_groups_images_by_size(tiny_kwargs, photos, tmp_path):
    """Fine-tuning's validation and temu eval batch images of one size together (``by_size``): the
    predictions must still come back in the dataset's order, not the loader's."""
    import temu
    from temu.data.records import IQARecord
    from temu.evaluation.predict import predict_records
    from temu.model.scale import MOSScale

    model = temu.TeMuIQA(**{**tiny_kwargs, "image_size": None})
    sizes = [(48, 40), (64, 64), (48, 40), (32, 56), (64, 64), (32, 56), (48, 40)]  # interleaved sizes
    arrays = list(photos.values())
    files = []
    for i, (w, h) in enumerate(sizes):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(arrays[i % len(arrays)][:, :: 1 if i < len(arrays) else -1]).resize((w, h), Image.BICUBIC).save(
            files[-1]
        )
    records = [IQARecord(f, 1.0, i + 2) for i, f in enumerate(files)]
    got = predict_records(model, records, MOSScale(0.0, 1.0), batch_size=4, precision="fp32")
    want = np.array([temu.score(str(f), model=model, precision="fp32") for f in files])
    assert len(set(np.round(want, 6))) == len(files)
    assert np.abs(got - want).max() <= TOL
