"""The files of a run folder: which ones an earlier run left, deleting them, and ``run.json``.

A single run writes its files into the folder itself; a run over several splits
(:mod:`temu.train.protocol`) writes one such set into each ``split-K`` subfolder and its summary
beside them. A new run refuses a folder that holds either, unless it resumes it or is allowed
to overwrite it; overwriting deletes only these files (and split folders left empty).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import DataError
from ..files import atomic_write
from ..model.hub import CONFIG_NAME, WEIGHTS_NAME
from .checkpoint import CHECKPOINT_NAME
from .trainer import CURVES_NAME, METRICS_NAME

__all__ = [
    "BAD_ROWS_NAME",
    "CARD_NAME",
    "PROTOCOL_NAME",
    "RUN_FILE_NAMES",
    "RUN_NAME",
    "SUMMARY_CSV_NAME",
    "SUMMARY_MD_NAME",
    "delete_run_files",
    "old_run_files",
    "split_folder",
    "write_run_file",
]

RUN_NAME = "run.json"
BAD_ROWS_NAME = "bad_rows.txt"
CARD_NAME = "README.md"
PROTOCOL_NAME = "protocol.json"
SUMMARY_CSV_NAME = "summary.csv"
SUMMARY_MD_NAME = "summary.md"

#: The files one training run writes into its folder.
RUN_FILE_NAMES = (
    CHECKPOINT_NAME, CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, METRICS_NAME, CURVES_NAME, RUN_NAME, BAD_ROWS_NAME,
)  # fmt: skip

_SPLIT_FOLDER = re.compile(r"split-[1-9][0-9]*")


def split_folder(output: Path, split: int) -> Path:
    """The folder of split ``split`` (1-based) of a run over several splits: ``output/split-K``."""
    return Path(output) / f"split-{split}"


def _present(folder: Path, names: tuple[str, ...]) -> list[Path]:
    return [folder / name for name in names if (folder / name).is_file() or (folder / name).is_symlink()]


def _split_folders(output: Path) -> list[Path]:
    if not output.is_dir():
        return []
    found = [p for p in output.iterdir() if p.is_dir() and _SPLIT_FOLDER.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def old_run_files(output: Path, *, protocol: bool = False, resume: bool = False, overwrite: bool = False) -> list[Path]:
    """The files of an earlier run (or a saved head) in ``output`` that ``overwrite=True`` would delete.

    Args:
        output: the run folder.
        protocol: False for a single run (its files in ``output``), True for a run over splits
            (:func:`temu.train.protocol.run_splits`).
        resume: the new run continues the one in ``output``: nothing is deleted.
        overwrite: the new run may delete the earlier run's files.

    Returns:
        The files (the run files, ``summary.csv``, ``summary.md``, ``protocol.json`` and the run files
        in ``split-K`` folders), none when resuming. Other files are never listed.

    Raises:
        DataError: ``output`` is a file; ``resume`` and ``overwrite`` together; such files and neither;
            resuming several splits in a folder that holds a single run, or nothing to resume.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise DataError(f"output={output} is a file; give a folder for the run")
    if resume and overwrite:
        raise DataError("resume=True continues the run in output and overwrite=True deletes it; give one of them")
    top = _present(output, RUN_FILE_NAMES)
    summaries = _present(output, (PROTOCOL_NAME, SUMMARY_CSV_NAME, SUMMARY_MD_NAME))
    in_splits = [path for folder in _split_folders(output) for path in _present(folder, RUN_FILE_NAMES)]
    if resume:
        if protocol and (output / CHECKPOINT_NAME).is_file():
            raise DataError(
                f"output={output} holds a single run ({CHECKPOINT_NAME}), not a run over splits; resume it as a "
                "single run, or choose another output"
            )
        if protocol and not (output / PROTOCOL_NAME).is_file():
            raise DataError(
                f"no {PROTOCOL_NAME} in {output}: no run over splits to resume; start the run without resume=True"
            )
        return []
    found = [*top, *summaries, *in_splits]
    if found and not overwrite:
        if (output / CHECKPOINT_NAME).exists() or summaries or in_splits:
            what = "a run"
        else:
            what = "a head or a run's files"
        names = [str(p.relative_to(output)) for p in found]
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} files)" if len(names) > 8 else "")
        raise DataError(
            f"{output} already holds {what} ({shown}); pass resume=True to continue the run, overwrite=True to "
            "delete those files and start anew, or choose another output"
        )
    return found


def delete_run_files(output: Path, files: list[Path], *, log: Callable[[str], None]) -> None:
    """Delete ``files`` (from :func:`old_run_files`), then the ``split-K`` folders they leave empty."""
    for path in files:
        path.unlink(missing_ok=True)
    for folder in _split_folders(Path(output)):
        if not any(folder.iterdir()):
            folder.rmdir()
    if files:
        names = ", ".join(str(p.relative_to(output)) for p in files[:8]) + (" ..." if len(files) > 8 else "")
        log(f"overwrite=True: deleted {names} of the old run in {output}")


def write_run_file(
    path: Path,
    *,
    data: Any,
    config: Any,
    model: Any,
    world_size: int,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``run.json``: temu's version, ``extra`` (e.g. the command), the data summary, all settings.

    Args:
        path: the file to write (atomically).
        data: a :class:`temu.data.PreparedData`; config: the run's :class:`TrainConfig`.
        model: the :class:`TeMuIQA` being trained; world_size: the number of processes.
        extra: more JSON-ready entries, written after the version.
    """
    info = {
        "temu_version": __version__,
        **dict(extra or {}),
        "data": data.summary(),
        "train": config.to_dict(),
        "model": model.saved_config().to_dict(),
        "head_parameters": model.num_head_parameters,
        "world_size": world_size,
    }
    atomic_write(Path(path), (json.dumps(info, indent=2, default=str) + "\n").encode("utf-8"))
