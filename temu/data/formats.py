"""Meta-info CSV formats of the IQA datasets, as IQA-PyTorch (pyiqa) lays them out.

The image root is the folder the CSV's image paths are relative to. For each
format below: that folder, the CSV file and the columns read. pyiqa reads its
meta-info CSVs by position (NR: columns 0 and 1; FR: 0 = reference, 1 =
distorted, 2 = score); temu reads them by header name, which are the same
columns. "DMOS" formats are lower-is-better; ``MOSScale(lower_better=True)``
flips them (``1 - x``) so that 1 = best after normalisation, as pyiqa's
``mos_normalize`` does.

========  ==============================  ===================  ===========  =======
key       image root (pyiqa dataroot)     path column          score        lower?
========  ==============================  ===================  ===========  =======
koniq10k  koniq10k/512x384 (or 1024x768)  img_name             mos          no
spaq      SPAQ/TestImage                  Image name           MOS          no
livec     LIVEC/Images (pyiqa: LIVEC/)    img_name             mos          no
kadid10k  kadid10k/images                 dist_name            dmos         no (!)
csiq      CSIQ/dst_imgs                   dist_name            dmos         yes
live      LIVEIQA_release2                dist_name            mos          yes (!)
flive     FLIVE_Database/database         img_name/patch_name  mos          no
agiqa3k   AGIQA-3K (not in pyiqa)         name                 mos_quality  no
========  ==============================  ===================  ===========  =======

(!) KADID-10k's column is named ``dmos`` but is a 1-5 rating where higher is
better; LIVE's column is named ``mos`` but holds LIVE's DMOS (lower is better).
Each format's ``layout`` text gives the details.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["DATASET_FORMATS", "DatasetFormat", "generic_format", "get_format"]


@dataclass(frozen=True)
class DatasetFormat:
    """How to read one dataset's meta-info CSV.

    name: registry key (pyiqa's yaml key where there is one).
    path_col / mos_col: header names of the image path and the score column;
        matched case-insensitively, ``path_aliases`` are accepted instead.
    lower_better: True when the score is a DMOS (lower = better quality).
    layout: the folder the image root must point at and what is in it.
    pyiqa_key: key in pyiqa's ``default_dataset_configs.yml``, None if absent.
    title: human-readable dataset name.
    ref_col: reference-image column of FR meta-info files (unused for NR).
    mos_range: pyiqa's ``mos_range`` for the dataset (informational; temu
        fits the range on the training set, see ``MOSScale.fit``).
    skip_rows: leading data rows pyiqa drops before splitting (LIVE
        Challenge: its 7 training images); split-file indices count after them.
    """

    name: str
    path_col: str
    mos_col: str
    lower_better: bool
    layout: str
    pyiqa_key: str | None
    title: str = ""
    ref_col: str | None = None
    mos_range: tuple[float, float] | None = None
    skip_rows: int = 0
    path_aliases: tuple[str, ...] = ()


_FORMATS = (
    DatasetFormat(
        name="koniq10k",
        title="KonIQ-10k",
        path_col="img_name",
        mos_col="mos",
        lower_better=False,
        pyiqa_key="koniq10k",
        mos_range=(1.0, 100.0),
        layout=(
            "image root: koniq10k/512x384 (pyiqa 'koniq10k') or koniq10k/1024x768 "
            "(pyiqa 'koniq10k-1024'); a flat folder of the 10,073 JPEGs (e.g. 10004473376.jpg). "
            "CSV meta_info_KonIQ10kDataset.csv: img_name, mos (MOS on 1-100, higher is better), "
            "std, c1..c5, c_total, plus the official train/val/test split (column "
            "'official_split' in current pyiqa files; pickle koniq10k_official.pkl in older ones)."
        ),
    ),
    DatasetFormat(
        name="spaq",
        title="SPAQ",
        path_col="Image name",
        mos_col="MOS",
        lower_better=False,
        pyiqa_key="spaq",
        mos_range=(1.0, 100.0),
        layout=(
            "image root: SPAQ/TestImage, a flat folder of the 11,125 smartphone JPEGs "
            "(00001.jpg ...). CSV meta_info_SPAQDataset.csv: 'Image name', MOS (0-100, higher "
            "is better), then Brightness, Colorfulness, Contrast, Noisiness, Sharpness, nine "
            "scene-category columns and EXIF columns. The photos are full resolution; pyiqa "
            "resizes them (augment resize: 448) before use."
        ),
    ),
    DatasetFormat(
        name="livec",
        title="LIVE Challenge (CLIVE)",
        path_col="img_name",
        mos_col="mos",
        lower_better=False,
        pyiqa_key="livec",
        mos_range=(1.0, 100.0),
        skip_rows=7,
        layout=(
            "image root: LIVEC/Images, the release's Images folder holding 100.bmp ... "
            "(pyiqa's yaml says LIVEC/, but its CSV names are bare file names and pyiqa's own "
            "DBCNN config uses LIVEC/Images). CSV meta_info_LIVEChallengeDataset.csv: "
            "img_name, mos (1-100, higher is better), std; 1,169 rows whose first 7 are "
            "t1.bmp..t7.bmp (Images/trainingImages). Like pyiqa, those 7 are dropped, leaving "
            "1,162; split-file indices count from the first row after them."
        ),
    ),
    DatasetFormat(
        name="kadid10k",
        title="KADID-10k",
        path_col="dist_name",
        mos_col="dmos",
        lower_better=False,
        pyiqa_key="kadid10k",
        ref_col="ref_name",
        mos_range=(1.0, 5.0),
        layout=(
            "image root: kadid10k/images, one flat folder holding the 81 references (I01.png) "
            "and the 10,125 distorted images (I01_01_01.png). CSV "
            "meta_info_KADID10kDataset.csv: ref_name, dist_name, dmos, std. Despite its name "
            "'dmos' is KADID's 1-5 degradation-category rating where HIGHER is better "
            "(pyiqa: lower_better false)."
        ),
    ),
    DatasetFormat(
        name="csiq",
        title="CSIQ",
        path_col="dist_name",
        mos_col="dmos",
        lower_better=True,
        pyiqa_key="csiq",
        ref_col="ref_name",
        mos_range=(0.0, 1.0),
        layout=(
            "image root: CSIQ/dst_imgs, a flat folder of the 866 distorted PNGs "
            "(1600.AWGN.1.png; the original release sorts them into awgn/, jpeg/, ... "
            "subfolders, which must be flattened); references in CSIQ/src_imgs (1600.png). "
            "CSV meta_info_CSIQDataset.csv: ref_name, dist_name, dmos (DMOS on 0-1, LOWER is "
            "better; flipped on normalisation)."
        ),
    ),
    DatasetFormat(
        name="live",
        title="LIVE IQA (Release 2)",
        path_col="dist_name",
        mos_col="mos",
        lower_better=True,
        pyiqa_key="live",
        ref_col="ref_name",
        mos_range=(1.0, 100.0),
        layout=(
            "image root: LIVEIQA_release2, the release folder; paths in the CSV include the "
            "distortion subfolder (jp2k/img2.bmp, jpeg/, wn/, gblur/, fastfading/) and "
            "references are refimgs/<name>.bmp under the same root. CSV "
            "meta_info_LIVEIQADataset.csv: ref_name, dist_name, mos: 779 rows (the reference "
            "copies are left out). The column is named 'mos' but holds LIVE's DMOS, LOWER is "
            "better (pyiqa: lower_better true); flipped on normalisation."
        ),
    ),
    DatasetFormat(
        name="flive",
        title="FLIVE (PaQ-2-PiQ)",
        path_col="img_name/patch_name",
        mos_col="mos",
        lower_better=False,
        pyiqa_key="flive",
        mos_range=(0.0, 100.0),
        path_aliases=("img_name",),
        layout=(
            "image root: FLIVE_Database/database; CSV paths include the source subfolder "
            "(e.g. voc_emotic_ava/<file>.jpg, blur_dataset/..., EE371R/...). CSV "
            "meta_info_FLIVEDataset.csv: 'img_name/patch_name', mos (0-100, higher is "
            "better), split columns. The whole images (~40k) come first, then their "
            "patches (~120k, names with _patch_), all read as separate items as pyiqa does."
        ),
    ),
    DatasetFormat(
        name="agiqa3k",
        title="AGIQA-3K",
        path_col="name",
        mos_col="mos_quality",
        lower_better=False,
        pyiqa_key=None,
        layout=(
            "not supported by pyiqa (no yaml entry, no meta-info CSV); this is the official "
            "AGIQA-3K data.csv: name, prompt, adj1, adj2, style, mos_quality, std_quality, "
            "mos_align, std_align. image root: the folder extracted from file.zip holding the "
            "2,982 images (AttnGAN_normal_000.jpg ...). The perceptual-quality score "
            "mos_quality is used (higher is better), not the alignment score mos_align."
        ),
    ),
)

DATASET_FORMATS: Mapping[str, DatasetFormat] = MappingProxyType({f.name: f for f in _FORMATS})
"""Read-only registry of the known formats, keyed by ``DatasetFormat.name``."""

_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "koniq": "koniq10k",
        "koniq10k1024": "koniq10k",
        "clive": "livec",
        "livechallenge": "livec",
        "livewild": "livec",
        "kadid": "kadid10k",
        "liveiqa": "live",
        "paq2piq": "flive",
        "agiqa": "agiqa3k",
    }
)


def _normalise_name(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def get_format(name: str) -> DatasetFormat:
    """Look up a format by key or common spelling ('KonIQ-10k', 'clive', 'AGIQA-3K').

    Raises ValueError listing the known keys when the name is unknown.
    """
    key = _normalise_name(name)
    key = _ALIASES.get(key, key)
    if key in DATASET_FORMATS:
        return DATASET_FORMATS[key]
    raise ValueError(
        f"unknown dataset format {name!r}; known formats: {', '.join(DATASET_FORMATS)}. "
        "For any other CSV leave the format out and give the columns with "
        "path_col and mos_col"
    )


def generic_format(path_col: str, mos_col: str, *, lower_better: bool = False) -> DatasetFormat:
    """A format for a CSV that is not one of the registered datasets."""
    return DatasetFormat(
        name="generic",
        title="generic CSV",
        path_col=path_col,
        mos_col=mos_col,
        lower_better=lower_better,
        pyiqa_key=None,
        layout="image paths are relative to the image root (absolute paths are kept as they are)",
    )
