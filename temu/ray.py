"""Ray Data integration (extra ``temu-iqa[ray]``): :class:`TeMuScorer`, a callable class for
``Dataset.map_batches`` that loads the model once per actor (README "In your own Ray Data pipeline").

The code lives in :mod:`temu.corpus.ray` (with the engine of ``temu score --engine ray``); this
module keeps the documented name ``temu.ray.TeMuScorer``.

>>> import ray, temu.ray
>>> ds = ray.data.read_webdataset("s3://bucket/{00000..09999}.tar", decoder=None)  # raw bytes
>>> ds = ds.map_batches(temu.ray.TeMuScorer, batch_format="pyarrow", batch_size=256, num_gpus=1,
...     fn_constructor_kwargs=dict(model="temu-iqa-s", image_column="jpg", id_column="__key__"),
...     compute=ray.data.ActorPoolStrategy(min_size=1, max_size=8))
>>> ds.write_parquet("s3://bucket/scores/")   # __key__, score (float32), error (string)
"""

from __future__ import annotations

from .corpus.ray import SCORE_FIELDS, TeMuScorer, choose_device, image_values

__all__ = ["SCORE_FIELDS", "TeMuScorer", "choose_device", "image_values"]
