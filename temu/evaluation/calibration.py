"""Making a head's calibration (``temu calibrate``): the MOS map fitted on a labelled dataset, the
percentiles of a reference corpus, and the calibrated copy of the head.

Applying a calibration is in the core (:mod:`temu.model.calibration`, numpy only); fitting it is
here (scipy: the ``train`` extra; pyarrow for a reference: the ``corpus`` extra).

The MOS map (:func:`fit_mos_map`) is the VQEG 4-parameter logistic of
:mod:`temu.evaluation.fitting` with both asymptotes inside the MOS range of the calibration set
(``within_range=True``: the map never predicts a MOS the data never had, and is strictly
monotone), or isotonic regression (:func:`scipy.optimize.isotonic_regression`). Its PLCC on the
calibration set is recorded beside the fitted PLCC of ``temu eval`` (wider bounds), which it can
only trail. It goes to the dataset's units and keeps the head's order: increasing in the raw score
for a MOS, decreasing for a DMOS (``lower_better``). A head
whose scores rank the images against their MOS (SRCC <= 0, on the dataset's direction) is
refused, and so is a logistic fit that does not converge (no fallback: ``method="isotonic"``
is there to ask for).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data.prepare import DataOptions, prepare_eval_records
from ..errors import CalibrationError, WeightsError
from ..extras import import_extra
from ..files import atomic_write, temporary_name
from ..model import TeMuIQA
from ..model.calibration import CALIBRATION_NAME, METHODS, Calibration, MOSMap, Percentiles, head_digest
from ..model.card import model_card, with_calibration_section
from ..model.config import read_config_file
from ..model.hub import CONFIG_NAME, WEIGHTS_NAME, list_presets, resolve_head_dir
from ..model.scale import MOSScale
from ..model.temuiqa import scoring_settings, write_calibration
from ..precision import Precision, check_precision
from .fitting import fit_logistic4, fitted_plcc
from .metrics import plcc, rmse, srcc

__all__ = ["MIN_IMAGES", "MIN_REFERENCE", "calibrate", "fit_mos_map", "read_reference", "reference_percentiles"]

#: Fewest labelled images a MOS map is fitted on (the logistic has 4 parameters).
MIN_IMAGES = 10
#: Fewest scores a reference corpus must have: with fewer, a percentile says little.
MIN_REFERENCE = 100
#: The file a finished corpus run writes last, and its plan (which records the head's sha256).
SUCCESS_NAME = "_SUCCESS"
PLAN_NAME = "_temu/plan.json"


def fit_mos_map(
    raw: Any, mos: Any, *, lower_better: bool = False, method: str = "logistic4", dataset: str = ""
) -> MOSMap:
    """Fit the map from a head's raw scores to a dataset's MOS.

    Args:
        raw: ``[N]`` raw scores of the head, finite.
        mos: ``[N]`` the images' MOS (DMOS with ``lower_better``), finite, not all equal.
        lower_better: the MOS is a DMOS (lower = better): the map decreases with the raw score.
        method: ``"logistic4"`` (the VQEG logistic, :func:`temu.evaluation.fitting.fit_logistic4`)
            or ``"isotonic"`` (a monotone step function, interpolated linearly between its steps).
        dataset: what the data were, recorded with the map.

    Returns:
        The map, with the MOS range of ``mos`` (mapped values lie in it) and, on these images, SRCC and
        PLCC of the raw scores, the fitted PLCC (as ``temu eval`` reports it: NaN if that fit did not
        converge), and SRCC, PLCC and RMSE (in MOS units) of the mapped scores.

    Raises:
        CalibrationError: fewer than :data:`MIN_IMAGES` images, NaN or infinite values, a constant MOS
            or constant scores, scores that rank the images against their MOS, a logistic fit that
            did not converge, an unknown method.
    """
    if method not in METHODS:
        raise CalibrationError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    x = np.asarray(raw, dtype=np.float64).reshape(-1)
    y = np.asarray(mos, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise CalibrationError(f"raw and mos differ in length: {x.size} and {y.size}")
    if x.size < MIN_IMAGES:
        raise CalibrationError(
            f"{x.size} labelled image(s): a MOS calibration needs at least {MIN_IMAGES}; give more labelled images"
        )
    for name, values in (("mos", y), ("raw", x)):
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise CalibrationError(
                f"{int(bad.sum())} {name} value(s) are NaN or infinite (first at position {first}); drop those images"
            )
    if np.all(y == y[0]):
        raise CalibrationError(f"every image has the same MOS ({y[0]:g}): there is no scale to map the scores to")
    if np.all(x == x[0]):
        raise CalibrationError(f"the head gives every image the same score ({x[0]:g}): there is no order to map")
    before = {"srcc_raw": srcc(x, y), "plcc_raw": plcc(x, y)}
    agrees = before["srcc_raw"] < 0 if lower_better else before["srcc_raw"] > 0
    if not agrees:
        direction = "lower_better=True: a DMOS, lower is better" if lower_better else "higher MOS is better"
        raise CalibrationError(
            f"the head's scores rank these images against their MOS (SRCC {before['srcc_raw']:+.3f}, with "
            f"{direction}): no map that keeps the head's order fits them. Check the score direction "
            "(lower_better=True for a DMOS), or calibrate a head that was trained for such images"
        )
    if method == "logistic4":
        fit = fit_logistic4(x, y, within_range=True)
        if not fit.converged:
            raise CalibrationError(f"the logistic fit did not converge ({fit.message}); fit method='isotonic' instead")
        params: dict[str, Any] = {"b1": fit.b1, "b2": fit.b2, "b3": fit.b3, "b4": fit.b4}
    else:
        params = _isotonic_knots(x, y, lower_better)
    low, high = float(y.min()), float(y.max())
    draft = MOSMap(method, params, low, high, bool(lower_better), dataset, int(x.size))
    mapped = draft.apply(x)
    if np.all(mapped == mapped[0]):
        raise CalibrationError(f"the fitted {method} map gives every image the same MOS; it would say nothing")
    metrics = {
        **before,
        "fitted_plcc": fitted_plcc(x, y),
        "srcc": srcc(mapped, y),
        "plcc": plcc(mapped, y),
        "rmse": rmse(mapped, y),
    }
    return MOSMap(method, params, low, high, bool(lower_better), dataset, int(x.size), metrics)


def _isotonic_knots(x: np.ndarray, y: np.ndarray, lower_better: bool) -> dict[str, list[float]]:
    """Isotonic regression of ``y`` on ``x`` (tied scores pooled), kept as the ends of its steps."""
    optimize = import_extra("scipy.optimize", "train", "an isotonic calibration")
    knots, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y) / counts
    fitted = optimize.isotonic_regression(means, weights=counts, increasing=not lower_better).x
    # a point inside a run of equal values adds nothing to the linear interpolation: keep the runs' ends
    keep = np.ones(fitted.size, dtype=bool)
    keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    return {"x": knots[keep].tolist(), "y": fitted[keep].tolist()}


def read_reference(reference: str | os.PathLike[str]) -> np.ndarray:
    """The raw scores of a finished corpus run: the ``score`` of every row without an ``error``.

    Args:
        reference: a corpus-mode output folder (``temu score ... --output DIR/``): Parquet shards with
            ``score`` and ``error`` columns, and ``_SUCCESS`` once the run finished.

    Returns:
        float64 ``[N]`` scores, N >= :data:`MIN_REFERENCE`.

    Raises:
        CalibrationError: not a folder, no ``_SUCCESS`` (an unfinished run), no shards, a shard
            without those columns, fewer than :data:`MIN_REFERENCE` scores.
    """
    pa = import_extra("pyarrow", "corpus", "reading a reference corpus")
    pq = import_extra("pyarrow.parquet", "corpus", "reading a reference corpus")
    folder = Path(reference).expanduser()
    where = f"reference={reference}"
    if not folder.is_dir():
        raise CalibrationError(
            f"{where}: no such folder; give the output folder of a finished corpus run of temu score"
        )
    if not (folder / SUCCESS_NAME).is_file():
        raise CalibrationError(
            f"{where}: not a finished corpus run (no {SUCCESS_NAME}); finish it first (the same temu score command "
            "resumes it)"
        )
    shards = sorted(
        p
        for p in folder.rglob("*.parquet")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )
    if not shards:
        raise CalibrationError(f"{where}: {SUCCESS_NAME} but no .parquet shards; is it a temu corpus run?")
    parts = []
    for shard in shards:
        try:
            table = pq.read_table(shard, columns=["score", "error"])
        except (OSError, ValueError, KeyError) as err:
            raise CalibrationError(f"{where}: cannot read {shard.name} as a temu corpus shard ({err})") from None
        scores = table.column("score").cast(pa.float64()).to_numpy(zero_copy_only=False)
        failed = table.column("error").is_valid().to_numpy(zero_copy_only=False)
        parts.append(scores[~failed & np.isfinite(scores)])
    values = np.concatenate(parts)
    if values.size < MIN_REFERENCE:
        raise CalibrationError(
            f"{where}: {values.size} scored image(s); percentiles need a reference of at least {MIN_REFERENCE}"
        )
    return values


def reference_percentiles(
    reference: str | os.PathLike[str], *, weights: str | os.PathLike[str] | None = None
) -> Percentiles:
    """The :class:`~temu.model.calibration.Percentiles` of a finished corpus run (:func:`read_reference`).

    ``weights``: the head's ``model.safetensors``; the run must have been made with this head (its
    plan records the file's sha256), else :class:`~temu.errors.CalibrationError`. A run whose plan
    does not say is taken as it is.
    """
    scores = read_reference(reference)
    if weights is not None:
        used = _plan_head_sha256(Path(reference).expanduser() / PLAN_NAME)
        if used is not None and used != hashlib.sha256(Path(weights).read_bytes()).hexdigest():
            raise CalibrationError(
                f"reference={reference} was scored with another head (sha256 {used[:12]}... in its {PLAN_NAME}); "
                "percentiles of another head's scores say nothing about this one: score the reference with this model"
            )
    return Percentiles.of(scores, os.fspath(reference))


def _plan_head_sha256(path: Path) -> str | None:
    try:
        settings = json.loads(path.read_text(encoding="utf-8")).get("settings", {})
    except (OSError, ValueError, AttributeError):
        return None
    value = settings.get("head_sha256") if isinstance(settings, dict) else None
    return value if isinstance(value, str) else None


def calibrate(
    model: TeMuIQA | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    data: DataOptions | str | os.PathLike[str] | None = None,
    image_root: str | os.PathLike[str] | None = None,
    part: str = "val",
    reference: str | os.PathLike[str] | None = None,
    method: str = "logistic4",
    overwrite: bool = False,
    batch_size: int = 32,
    device: str | None = None,
    workers: int = 0,
    precision: Precision = "auto",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Calibration:
    """Calibrate a head and write the calibrated head (its files unchanged, plus ``calibration.json``) to ``output``.

    Only the map is learned: ``model.safetensors`` is copied byte for byte. What the head already
    has is kept: fitting ``data`` adds or replaces the MOS map and keeps the percentiles, and
    ``reference`` the other way round; replacing a part the head already has needs ``overwrite``.
    Everything is checked (the data's rows, the reference, the output folder) before the model loads,
    and nothing is written unless all of it succeeds.

    Args:
        model: a preset name, head folder or Hub repo id, or a :class:`~temu.TeMuIQA` (its
            :attr:`~temu.TeMuIQA.calibration` is set to the result).
        output: the folder of the calibrated head: new or empty, or the head's own folder (calibrated
            in place: only ``calibration.json`` and the model card change); another non-empty folder
            needs ``overwrite``.
        data: a labelled dataset (:class:`~temu.data.DataOptions`, or the path of a CSV with an image
            column and a MOS column, its images under ``image_root``, default the CSV's folder).
        image_root: see ``data``.
        part: with a split file / column in ``data``, the part fitted on (``"train"``, ``"val"``, ``"test"``).
        reference: a finished corpus run of this head (an output folder of ``temu score``), whose
            scores' quantiles are kept for ``scale="percentile"``.
        method: the MOS map: ``"logistic4"`` or ``"isotonic"`` (:func:`fit_mos_map`).
        overwrite: replace a part the head already has, or the head files in a non-empty ``output``.
        batch_size, device, workers, precision, progress: how ``data`` is scored (as in ``temu eval``).
        log: where notes go (default: none).

    Returns:
        The calibration written to ``output/calibration.json``.

    Raises:
        CalibrationError: neither data nor reference, bad input (see :func:`fit_mos_map` and
            :func:`read_reference`), a part the head has without ``overwrite``, an unusable ``output``.
        DataError: the dataset cannot be read, or has bad rows (see :func:`temu.data.prepare_eval_records`).
    """
    say = log or (lambda _msg: None)
    if data is None and reference is None:
        raise CalibrationError(
            "give data (a labelled dataset, for scale='mos'), reference (a corpus run, for scale='percentile'), or both"
        )
    if method not in METHODS:
        raise CalibrationError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    check_precision(precision)
    instance = model if isinstance(model, TeMuIQA) else None
    directory = None if instance is not None else resolve_head_dir(model)  # type: ignore[arg-type]
    name = (instance.name_or_path or "the model") if instance is not None else os.fspath(model)  # type: ignore[arg-type]
    existing = instance.calibration if instance is not None else _existing(directory)  # type: ignore[arg-type]
    out = Path(output).expanduser()
    in_place = _check_output(out, model, directory, overwrite)
    digest = instance.head_digest() if instance is not None else _file_digest(directory / WEIGHTS_NAME)  # type: ignore[operator]
    if existing is not None and existing.head != digest:
        if not overwrite:
            raise CalibrationError(
                f"{name}: its calibration.json was fitted for other head weights; overwrite=True drops it"
            )
        existing = None
    for given, part_name, what in ((data, "mos", "a MOS calibration"), (reference, "percentiles", "percentiles")):
        if given is not None and existing is not None and getattr(existing, part_name) is not None and not overwrite:
            old = existing.mos.dataset if part_name == "mos" else existing.percentiles.reference  # type: ignore[union-attr]
            raise CalibrationError(
                f"{name} already has {what} (of {old}); overwrite=True replaces it (the rest of its calibration is kept)"
            )

    percentiles = None
    if reference is not None:
        weights = None if directory is None else directory / WEIGHTS_NAME
        percentiles = reference_percentiles(reference, weights=weights)
        say(f"reference {reference}: {percentiles.images:,} scores, median raw score {percentiles.quantiles[500]:.4f}")
    mos_map = None
    if data is not None:
        options = _data_options(data, image_root)
        records, fmt, _ = prepare_eval_records(options, part=part, log=say)
        if len(records) < MIN_IMAGES:
            raise CalibrationError(
                f"{len(records)} usable labelled image(s) in {options.csv}: a MOS calibration needs at least "
                f"{MIN_IMAGES}; give more labelled images"
            )
        from ..cache import load

        net = instance if instance is not None else load(directory, device=device)  # type: ignore[arg-type]
        if instance is not None and device is not None:
            net = net.to(device)
        mos = [r.mos for r in records]
        raw = _predict(net, records, mos, fmt.lower_better, batch_size, workers, precision, progress)
        mos_map = fit_mos_map(raw, mos, lower_better=fmt.lower_better, method=method, dataset=os.fspath(options.csv))
        m = mos_map.metrics
        say(
            f"{method} map on {len(records)} images of {options.csv}: SRCC {m['srcc_raw']:.4f}, PLCC {m['plcc_raw']:.4f} "
            f"(raw) -> PLCC {m['plcc']:.4f}, RMSE {m['rmse']:.4g} (calibrated); MOS {mos_map.low:g}..{mos_map.high:g}"
            + (" (lower is better)" if mos_map.lower_better else "")
        )

    kept = existing or Calibration()
    calibration = Calibration(
        mos=mos_map if mos_map is not None else kept.mos,
        percentiles=percentiles if percentiles is not None else kept.percentiles,
        head=digest,
        scoring=instance.scoring_settings() if instance is not None else _scoring_settings(directory),  # type: ignore[arg-type]
    )
    if instance is not None:
        instance.calibration = calibration
        _write_new(out, lambda target: instance.save_pretrained(target), overwrite)
    elif in_place:
        write_calibration(out, calibration)
    else:
        _write_new(out, lambda target: _copy_head(directory, target, calibration), overwrite)  # type: ignore[arg-type]
    say(f"wrote {out / CALIBRATION_NAME}")
    return calibration


def _predict(
    net: TeMuIQA,
    records: list,
    mos: list[float],
    lower_better: bool,
    batch_size: int,
    workers: int,
    precision: Precision,
    progress: bool,
) -> np.ndarray:
    from .predict import predict_records

    scale = MOSScale.fit(mos, lower_better=lower_better)
    was_training = net.training
    try:
        return predict_records(
            net,
            records,
            scale,
            batch_size=batch_size,
            workers=workers,
            precision=precision,
            progress=progress,
            desc="temu calibrate",
        )
    finally:
        net.train(was_training)


def _data_options(data: DataOptions | str | os.PathLike[str], image_root: str | os.PathLike[str] | None) -> DataOptions:
    if isinstance(data, DataOptions):
        if image_root is not None:
            raise CalibrationError("image_root is for data given as a CSV path; a DataOptions has its own image_root")
        return data
    csv = Path(data).expanduser()
    return DataOptions(csv=csv, image_root=Path(image_root).expanduser() if image_root is not None else csv.parent)


def _existing(directory: Path) -> Calibration | None:
    from ..model.calibration import read_calibration

    return read_calibration(directory / CALIBRATION_NAME)


def _file_digest(weights: Path) -> str:
    from safetensors.numpy import load_file

    try:
        return head_digest(load_file(str(weights)))
    except (OSError, ValueError) as err:
        raise WeightsError(f"{weights}: not a readable safetensors file ({err})") from None


def _scoring_settings(directory: Path) -> dict[str, Any]:
    config, _ = read_config_file(directory / CONFIG_NAME)
    return scoring_settings(config)


def _check_output(out: Path, model: Any, directory: Path | None, overwrite: bool) -> bool:
    """Whether ``out`` is the head's own folder (calibrate in place); CalibrationError if it cannot be written."""
    where = f"output={out}"
    if out.exists() and not out.is_dir():
        raise CalibrationError(f"{where} is a file; give a folder for the calibrated head")
    if directory is not None and out.exists() and out.resolve() == directory.resolve():
        text = os.fspath(model)
        if text in list_presets() or not Path(text).expanduser().is_dir():
            raise CalibrationError(
                f"{where} is where {text} is stored (a shipped preset or the Hub cache): give another folder"
            )
        return True
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CalibrationError(
            f"{where} is not empty: give a new or empty folder, the head's own folder (to calibrate it in place), "
            "or overwrite=True to replace the head files there"
        )
    return False


def _write_new(out: Path, write: Callable[[Path], Any], overwrite: bool) -> None:
    """Have ``write`` fill a hidden folder beside ``out`` and rename it to ``out`` (replacing an empty ``out``),
    so ``out`` is complete or absent; into an existing non-empty ``out`` (``overwrite``), file by file."""
    if out.is_dir() and any(out.iterdir()):
        write(out)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(temporary_name(out.as_posix()))
    try:
        write(staging)
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _copy_head(source: Path, target: Path, calibration: Calibration) -> None:
    """The head files of ``source`` in ``target`` (config and weights byte for byte), its calibration and card."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        atomic_write(target / name, (source / name).read_bytes())
    card = source / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
    else:
        config, meta = read_config_file(source / CONFIG_NAME)
        text = model_card(config, int(meta.get("head_parameters", 0)))
    atomic_write(target / "README.md", with_calibration_section(text, None).encode("utf-8"))
    write_calibration(target, calibration)
