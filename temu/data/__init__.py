"""Labelled IQA datasets: formats, records, splits, checks, the torch Dataset, and preparation.

``formats``   the known pyiqa meta-info layouts (:data:`DATASET_FORMATS`)
``records``   CSV -> one :class:`IQARecord` per row
``splits``    pyiqa split files and columns, seeded random splits
``checks``    every row that cannot be used, with the reason
``dataset``   records -> ``(image, normalised MOS, index)`` batches
``prepare``   the steps ``temu-finetune`` and ``temu eval`` share
"""

from ..model.scale import MOSScale
from .checks import check_records, find_bad_records
from .dataset import IQADataset, collate_by_size, collate_same_size, make_loader
from .formats import DATASET_FORMATS, DatasetFormat, generic_format, get_format
from .prepare import (
    DataOptions,
    PreparedData,
    drop_bad_rows,
    prepare_eval_records,
    prepare_split_data,
    prepare_training_data,
    read_labelled,
    reference_groups,
    select_part,
)
from .records import (
    MOS_CANDIDATES,
    PATH_CANDIDATES,
    REFERENCE_CANDIDATES,
    BadRow,
    IQARecord,
    read_records,
    read_table,
    reference_columns,
    resolve_format,
)
from .splits import SPLIT_PARTS, apply_split, column_split, random_split, write_split_file

__all__ = [
    "DATASET_FORMATS",
    "MOS_CANDIDATES",
    "PATH_CANDIDATES",
    "REFERENCE_CANDIDATES",
    "SPLIT_PARTS",
    "BadRow",
    "DataOptions",
    "DatasetFormat",
    "IQADataset",
    "IQARecord",
    "MOSScale",
    "PreparedData",
    "apply_split",
    "check_records",
    "collate_by_size",
    "collate_same_size",
    "column_split",
    "drop_bad_rows",
    "find_bad_records",
    "generic_format",
    "get_format",
    "make_loader",
    "prepare_eval_records",
    "prepare_split_data",
    "prepare_training_data",
    "random_split",
    "read_labelled",
    "read_records",
    "read_table",
    "reference_columns",
    "reference_groups",
    "resolve_format",
    "select_part",
    "write_split_file",
]
