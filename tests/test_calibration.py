"""Calibration: a head's raw score mapped to a dataset's MOS and to percentiles of a reference corpus
(temu calibrate, scale= everywhere a score comes out, calibration.json saved and loaded with the head)."""

from __future__ import annotations

import csv
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from temu_testing import perturb_head

import temu
from temu.cli import main
from temu.errors import CalibrationError, TeMuWarning, WeightsError
from temu.evaluation.calibration import MIN_REFERENCE, fit_mos_map
from temu.model.calibration import CALIBRATION_NAME, QUANTILES, Percentiles, read_calibration, scaled_columns

pytestmark = pytest.mark.usefixtures("one_thread")


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def labelled(synthetic_dataset) -> tuple[Path, Path, list[str], np.ndarray]:
    """(labels.csv, image root, image paths, MOS) of the synthetic dataset."""
    csv_path, root = synthetic_dataset
    rows = read_rows(csv_path)
    return csv_path, root, [str(root / r["image"]) for r in rows], np.array([float(r["mos"]) for r in rows])


@pytest.fixture(scope="module")
def fitted_head(tmp_path_factory, tiny_kwargs, labelled) -> Path:
    """A tiny head that ranks the synthetic images (a random head does not): 40 full-batch Adam steps on
    the normalised MOS, a couple of seconds."""
    _, _, paths, mos = labelled
    x = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths])
    y = torch.tensor((mos - mos.min()) / np.ptp(mos), dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = temu.TeMuIQA(**tiny_kwargs)
    optimiser = torch.optim.Adam(model.head.parameters(), lr=0.02)
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.save_pretrained(tmp_path_factory.mktemp("heads") / "fitted")


@pytest.fixture(scope="module")
def calibrated(fitted_head, labelled, tmp_path_factory) -> Path:
    """``temu calibrate --data labels.csv`` of the fitted head (logistic map), through the command line."""
    csv_path, root, _, _ = labelled
    out = tmp_path_factory.mktemp("calibrated") / "head"
    args = ["calibrate", "--model", str(fitted_head), "--data", str(csv_path), "--image-root", str(root)]
    assert main([*args, "--output", str(out), "--precision", "fp32", "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def raw_scores(fitted_head, labelled) -> np.ndarray:
    return np.array(temu.score(labelled[2], model=temu.load(fitted_head), precision="fp32"))


def independent_bounded_logistic_plcc(x: np.ndarray, y: np.ndarray) -> float:
    """PLCC after the VQEG logistic fitted by scipy directly on the raw data, both asymptotes bounded to
    [min y, max y] (the calibration's rule), from the textbook start b1 = max y, b2 = min y."""
    from scipy import optimize, stats

    def logistic(v, b1, b2, b3, b4):
        return (b1 - b2) / (1 + np.exp(-(v - b3) / b4)) + b2

    lo, hi = y.min(), y.max()
    params, _ = optimize.curve_fit(
        logistic,
        x,
        y,
        p0=[hi, lo, x.mean(), x.std()],
        bounds=([lo, lo, x.min() - 10, 1e-9], [hi, hi, x.max() + 10, 10.0]),
        maxfev=100_000,
    )
    return float(stats.pearsonr(logistic(x, *params), y).statistic)


# ------------------------------------------------------------------ the MOS map


def test_calibrated_scores_follow_the_raw_score_stay_in_the_mos_range_and_have_the_fitted_plcc(
    calibrated, fitted_head, labelled, raw_scores
):
    from scipy import stats

    _, _, paths, mos = labelled
    calibration = read_calibration(calibrated / CALIBRATION_NAME)
    assert calibration is not None and calibration.mos is not None and calibration.percentiles is None
    assert (calibration.mos.method, calibration.mos.low, calibration.mos.high) == ("logistic4", mos.min(), mos.max())
    assert calibration.mos.images == len(paths) and calibration.mos.lower_better is False
    # only the map was learned: the head files are the same bytes
    for name in ("config.json", "model.safetensors"):
        assert (calibrated / name).read_bytes() == (fitted_head / name).read_bytes()
    assert "## Calibration" in (calibrated / "README.md").read_text()

    values = np.array(temu.score(paths, model=str(calibrated), scale="mos", precision="fp32"))
    assert stats.spearmanr(raw_scores, values).statistic == pytest.approx(1.0, abs=1e-12)
    assert np.all((values >= mos.min()) & (values <= mos.max()))
    plcc = stats.pearsonr(values, mos).statistic
    assert plcc == pytest.approx(calibration.mos.metrics["plcc"], abs=1e-9)
    assert plcc == pytest.approx(independent_bounded_logistic_plcc(raw_scores, mos), abs=1e-4)
    # temu eval's fitted PLCC (wider bounds) is recorded beside it, and can only be as high or higher
    assert calibration.mos.metrics["fitted_plcc"] >= plcc - 1e-6
    assert calibration.mos.metrics["srcc_raw"] == pytest.approx(stats.spearmanr(raw_scores, mos).statistic)


def test_isotonic_map_is_the_isotonic_regression_of_the_mos_on_the_raw_score(raw_scores, labelled):
    from scipy import optimize

    mos = labelled[3]
    mapping = fit_mos_map(raw_scores, mos, method="isotonic", dataset="synthetic")
    order = np.argsort(raw_scores)  # the scores of the 40 images are distinct
    expected = optimize.isotonic_regression(mos[order]).x
    np.testing.assert_allclose(mapping.apply(raw_scores[order]), expected, atol=1e-9)
    assert np.all(np.diff(mapping.apply(np.linspace(-0.5, 1.5, 500))) >= 0)  # monotone, held beyond the ends
    assert mapping.apply([-1.0, 2.0]).tolist() == [expected[0], expected[-1]]


def test_a_metric_that_is_not_a_number_is_written_as_null(raw_scores, labelled, tmp_path):
    from temu.model.calibration import Calibration, MOSMap

    mapping = fit_mos_map(raw_scores, labelled[3])
    mapping = MOSMap(**{**mapping.to_dict(), "metrics": {**mapping.metrics, "fitted_plcc": float("nan")}})
    path = tmp_path / CALIBRATION_NAME
    path.write_text(Calibration(mos=mapping, head="x").to_json())
    assert json.loads(path.read_text())["mos"]["metrics"]["fitted_plcc"] is None
    assert np.isnan(read_calibration(path).mos.metrics["fitted_plcc"])


def test_a_dmos_map_decreases_in_the_raw_score_and_is_the_mos_map_turned_over(raw_scores, labelled):
    from scipy import stats

    mos = labelled[3]
    up = fit_mos_map(raw_scores, mos)
    down = fit_mos_map(raw_scores, 100 - mos, lower_better=True)
    assert down.lower_better and (down.low, down.high) == (100 - mos.max(), 100 - mos.min())
    assert stats.spearmanr(raw_scores, down.apply(raw_scores)).statistic == pytest.approx(-1.0)
    np.testing.assert_allclose(down.apply(raw_scores), 100 - up.apply(raw_scores), atol=1e-3)
    assert down.metrics["plcc"] == pytest.approx(up.metrics["plcc"], abs=1e-5)


# ------------------------------------------------------------------ reference percentiles


def write_corpus_run(folder: Path, scores: list[float], *, errors: int = 3, finished: bool = True, plan=None) -> Path:
    """A corpus-mode output folder as temu score writes one: Parquet shards with id, score, error (error rows
    with a null score), _SUCCESS when finished, and _temu/plan.json when ``plan`` is given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    half = len(scores) // 2
    for k, part in enumerate((scores[:half], scores[half:])):
        ids = [f"s{k}-{i}" for i in range(len(part))] + [f"bad{k}-{i}" for i in range(errors)]
        table = pa.table(
            {
                "id": ids,
                "score": pa.array(list(part) + [None] * errors, pa.float64()),
                "error": pa.array([None] * len(part) + ["not an image"] * errors, pa.string()),
            }
        )
        pq.write_table(table, folder / f"shard-{k:05d}.parquet")
    if plan is not None:
        (folder / "_temu").mkdir()
        (folder / "_temu" / "plan.json").write_text(json.dumps(plan))
    if finished:
        (folder / "_SUCCESS").write_bytes(b"")
    return folder


def test_percentiles_of_a_reference_corpus(calibrated, fitted_head, tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.2, 0.8, QUANTILES).tolist()  # 1001 distinct scores: the quantiles are the scores
    sha = __import__("hashlib").sha256((fitted_head / "model.safetensors").read_bytes()).hexdigest()
    reference = write_corpus_run(tmp_path / "scores", scores, plan={"settings": {"head_sha256": sha}})
    out = tmp_path / "both"
    calibration = temu.calibrate(str(calibrated), out, reference=reference)
    # the MOS map the head had is kept, the percentiles are added
    assert calibration.mos == read_calibration(calibrated / CALIBRATION_NAME).mos
    assert calibration.percentiles.images == QUANTILES  # the error rows are left out
    ordered = np.sort(scores)
    percent = calibration.apply(ordered, "percentile")
    np.testing.assert_allclose(percent, np.arange(QUANTILES) / 10, atol=1e-9)
    assert calibration.apply(np.median(scores), "percentile") == pytest.approx(50.0)
    assert calibration.apply([0.0, 1.0], "percentile").tolist() == [0.0, 100.0]
    model = temu.load(out)
    assert model.calibration == calibration
    value = temu.score(
        torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)), model=model, scale="percentile"
    )
    assert 0.0 <= value <= 100.0


def test_data_and_reference_together_through_the_command_line(fitted_head, labelled, tmp_path, capsys):
    csv_path, root, paths, _ = labelled
    reference = write_corpus_run(tmp_path / "scores", np.linspace(0.1, 0.9, 200).tolist())
    out = tmp_path / "both"
    args = ["calibrate", "--model", str(fitted_head), "--data", str(csv_path), "--reference", str(reference)]
    assert main([*args, "--output", str(out), "--precision", "fp32"]) == 0
    err = capsys.readouterr().err
    assert "logistic4 map on 40 images" in err and "200 scores" in err
    calibration = read_calibration(out / CALIBRATION_NAME)
    assert calibration.mos is not None and calibration.percentiles.images == 200
    assert main(["score", paths[0], "--model", str(out), "--scale", "mos,percentile", "--quiet"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header == "path,score,mos,percentile" and 0 <= float(row.split(",")[3]) <= 100


def test_a_run_of_ties_gets_the_middle_percentile():
    reference = Percentiles.of([0.1] * 50 + [0.5] * 100 + [0.9] * 50, "ties")
    # the middle of each run of equal scores (12.5 % of the reference is below-or-at 0.1's middle rank), to
    # the 0.1 % steps of the kept quantiles and numpy's linear quantile rule
    assert reference.apply([0.1, 0.5, 0.9]).tolist() == pytest.approx([12.5, 50.0, 87.5], abs=0.3)
    assert np.all(np.diff(reference.apply(np.linspace(0, 1, 1000))) >= 0)


def test_scaled_columns_for_an_engine_keep_error_rows_empty(calibrated):
    calibration = read_calibration(calibrated / CALIBRATION_NAME)
    columns = scaled_columns(calibration, [0.3, float("nan"), 0.7], ["raw", "mos"])
    assert list(columns) == ["mos"] and np.isnan(columns["mos"][1])
    assert columns["mos"][0] < columns["mos"][2]
    with pytest.raises(CalibrationError, match=r"temu calibrate --model M --reference"):
        scaled_columns(calibration, [0.3], ["percentile"], source="M")


# ------------------------------------------------------------------ with the head: load, save, cache


def test_calibration_loads_saves_and_belongs_to_its_head(calibrated, tmp_path):
    model = temu.load(calibrated)
    assert model.calibration == read_calibration(calibrated / CALIBRATION_NAME)
    model.save_pretrained(tmp_path / "again")
    assert read_calibration(tmp_path / "again" / CALIBRATION_NAME) == model.calibration
    assert "## Calibration" in (tmp_path / "again" / "README.md").read_text()
    # a head trained further is saved without the calibration of the old weights
    perturb_head(model, seed=3, scale=0.01)
    with pytest.warns(TeMuWarning, match="changed since it was calibrated"):
        model.save_pretrained(tmp_path / "again")
    assert not (tmp_path / "again" / CALIBRATION_NAME).exists()
    assert "## Calibration" not in (tmp_path / "again" / "README.md").read_text()
    # a calibration.json beside other weights does not load
    shutil.copy(calibrated / CALIBRATION_NAME, tmp_path / "again" / CALIBRATION_NAME)
    with pytest.raises(WeightsError, match="fitted for other head weights"):
        temu.load(tmp_path / "again")
    # a model scored with other settings than it was calibrated with says so
    with pytest.warns(TeMuWarning, match="image_size=64 then, 96 now"):
        temu.load(calibrated, image_size=96)


def test_a_hub_repo_brings_its_calibration(calibrated, fitted_head, hub_cache):
    from temu_testing import write_hub_cache

    files = {name: calibrated / name for name in ("config.json", "model.safetensors", CALIBRATION_NAME)}
    write_hub_cache(hub_cache, "someone/calibrated", files)
    assert temu.load("someone/calibrated").calibration == read_calibration(calibrated / CALIBRATION_NAME)
    del files[CALIBRATION_NAME]
    write_hub_cache(hub_cache, "someone/plain", files)  # offline, not cached: the head loads without one
    assert temu.load("someone/plain").calibration is None


def test_the_model_cache_picks_up_a_new_calibration(fitted_head, labelled, tmp_path):
    csv_path, root, paths, _ = labelled
    head = tmp_path / "head"
    shutil.copytree(fitted_head, head)
    temu.clear_model_cache()
    try:
        raw = temu.score(paths[:3], model=str(head), precision="fp32")
        with pytest.raises(CalibrationError, match=r"temu calibrate --model .*head --data .* --output"):
            temu.score(paths[:3], model=str(head), scale="mos")
        temu.calibrate(str(head), head, data=csv_path, image_root=root, precision="fp32")  # in place
        assert (head / "model.safetensors").read_bytes() == (fitted_head / "model.safetensors").read_bytes()
        mos = temu.score(paths[:3], model=str(head), scale="mos", precision="fp32")
        explained = temu.explain(paths[:3], model=str(head), scale=["mos"], precision="fp32")
        assert [e.mos for e in explained] == pytest.approx(mos, abs=1e-9)
        assert [e.score for e in explained] == pytest.approx(raw, abs=1e-6)  # score stays the raw score
    finally:
        temu.clear_model_cache()


# ------------------------------------------------------------------ command line and pyiqa


def test_temu_score_scale_mos_adds_a_column_and_keeps_the_raw_score(calibrated, labelled, tmp_path, capsys):
    paths = labelled[2][:4]
    out = tmp_path / "scores.csv"
    assert main(["score", *paths, "--model", str(calibrated), "--scale", "mos", "--precision", "fp32",
                 "--output", str(out), "--quiet"]) == 0  # fmt: skip
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "score", "mos", "error"]
    model = temu.load(calibrated)
    expected = temu.score(paths, model=model, scale="mos", precision="fp32")
    raw = temu.score(paths, model=model, precision="fp32")
    assert [float(r["mos"]) for r in rows] == pytest.approx(expected, abs=1e-6)
    assert [float(r["score"]) for r in rows] == pytest.approx(raw, abs=1e-6)
    capsys.readouterr()
    assert main(["score", paths[0], "--model", str(calibrated), "--scale", "percentile", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--scale percentile needs reference percentiles" in err
    assert "temu calibrate --model" in err
    # corpus mode: a float32 column beside the raw score (more in test_corpus_video.py)
    folder = tmp_path / "c"
    args = ["--scale", "mos", "--precision", "fp32", "--output", f"{folder}/", "-q"]
    assert main(["score", paths[0], "--model", str(calibrated), *args]) == 0
    (row,) = __import__("pyarrow.parquet").parquet.read_table(folder).to_pylist()
    assert row["mos"] == pytest.approx(float(rows[0]["mos"]), abs=1e-4) and row["score"] is not None


def test_pyiqa_metric_with_a_calibrated_scale(calibrated, fitted_head, labelled):
    pyiqa = pytest.importorskip("pyiqa")
    paths, mos = labelled[2][:2], labelled[3]
    metric = pyiqa.create_metric("temu_iqa", head=str(calibrated), scale="mos", precision="fp32", device="cpu")
    assert metric.score_range == f"{mos.min():g}, {mos.max():g}" and metric.lower_better is False
    assert metric.net.score_range == metric.score_range
    pixels = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths])
    x = pixels / 255  # as pyiqa reads images; the metric scores such 8-bit floats as the uint8 pixels
    expected = temu.score(pixels, model=temu.load(calibrated), scale="mos", precision="fp32")
    assert metric(x).squeeze(1).tolist() == pytest.approx(expected, abs=1e-5)
    assert pyiqa.create_metric("temu_iqa", head=str(calibrated), device="cpu").score_range == "0, 1"
    with pytest.raises(CalibrationError, match="temu calibrate"):
        pyiqa.create_metric("temu_iqa", head=str(fitted_head), scale="mos", device="cpu")
    loss = pyiqa.create_metric("temu_iqa", head=str(calibrated), scale="mos", as_loss=True, device="cpu")
    with pytest.raises(CalibrationError, match="not differentiable"):
        loss(x.clone().requires_grad_(True))


# ------------------------------------------------------------------ bad input: one line, exit 2, nothing written


def write_labels(folder: Path, root: Path, rows: list[tuple[str, str]]) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mos"])
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    "case, says",
    [
        ("few", "5 usable labelled image(s)"),
        ("constant", "same score"),
        ("nan", "cannot be used"),
        ("against", "rank these images against their MOS"),
        ("unfinished", "not a finished corpus run (no _SUCCESS)"),
        ("nothing", "give --data"),
        ("has_part", "already has a MOS calibration"),
        ("not_empty", "is not empty"),
    ],
)
def test_calibrate_refuses_bad_input_in_one_line(case, says, fitted_head, calibrated, labelled, tmp_path, capsys):
    csv_path, root, _, _ = labelled
    rows = [(r["image"], r["mos"]) for r in read_rows(csv_path)]
    model, out = str(fitted_head), tmp_path / "out"
    data = ["--data", str(csv_path), "--image-root", str(root)]
    if case == "few":
        data[1] = str(write_labels(tmp_path / "d", root, rows[:5]))
    elif case == "constant":
        data[1] = str(write_labels(tmp_path / "d", root, [(image, "50") for image, _ in rows]))
    elif case == "nan":
        data[1] = str(write_labels(tmp_path / "d", root, [*rows[:-1], (rows[-1][0], "nan")]))
    elif case == "against":
        data[1] = str(write_labels(tmp_path / "d", root, [(image, str(100 - float(m))) for image, m in rows]))
    elif case == "unfinished":
        data = ["--reference", str(write_corpus_run(tmp_path / "ref", [0.5] * MIN_REFERENCE, finished=False))]
    elif case == "nothing":
        data = []
    elif case == "has_part":
        model = str(calibrated)
    elif case == "not_empty":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    code = main(["calibrate", "--model", model, *data, "--output", str(out), "--precision", "fp32", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert says in err
    if case != "nan":  # the bad rows are listed, one per line, after the first
        assert len(err.splitlines()) == 1, err
    if case == "not_empty":
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    else:
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging folder left


def test_a_logistic_fit_that_does_not_converge_is_refused(raw_scores, labelled, monkeypatch):
    import temu.evaluation.calibration as calibration
    from temu.evaluation.fitting import fit_logistic4

    monkeypatch.setattr(calibration, "fit_logistic4", lambda x, y, **kw: fit_logistic4(x, y, **{**kw, "maxfev": 1}))
    with pytest.raises(CalibrationError, match=r"did not converge .*method='isotonic'"):
        fit_mos_map(raw_scores, labelled[3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback with a warning: isotonic only when asked for
        assert fit_mos_map(raw_scores, labelled[3], method="isotonic").method == "isotonic"


def test_a_reference_scored_by_another_head_or_too_small_is_refused(fitted_head, tmp_path):
    other = write_corpus_run(
        tmp_path / "other", [0.5 + i / 1e4 for i in range(200)], plan={"settings": {"head_sha256": "0" * 64}}
    )
    with pytest.raises(CalibrationError, match="scored with another head"):
        temu.calibrate(str(fitted_head), tmp_path / "out", reference=other)
    small = write_corpus_run(tmp_path / "small", [0.5] * (MIN_REFERENCE - 1), errors=0)
    with pytest.raises(CalibrationError, match=f"at least {MIN_REFERENCE}"):
        temu.calibrate(str(fitted_head), tmp_path / "out", reference=small)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", [None, 5, [], ["mos", "mbs"], "MOS"])
def test_a_scale_that_is_not_one_is_refused_the_same_way_everywhere(bad, tmp_path):
    """scale= is read by one function for temu.iter_scores, temu.corpus.run and TeMuScorer (None or 5 was a TypeError)."""
    from temu.corpus import run
    from temu.errors import CorpusError

    expected = r"scale=.*: expected one of 'raw', 'mos', 'percentile' or a list of them"
    with pytest.raises(CalibrationError, match=expected):
        next(temu.iter_scores(np.zeros((8, 8, 3), np.uint8), scale=bad))
    with pytest.raises(CorpusError, match=expected):
        run([str(tmp_path)], str(tmp_path / "out"), scale=bad, progress=False)
    pytest.importorskip("ray")
    from temu.corpus.ray import TeMuScorer

    with pytest.raises(CalibrationError, match=expected):
        TeMuScorer(image_column="image", id_column="id", scale=bad)
