"""Image input: what users pass -> pixel tensors at the model's input size, in batches.

``names``       which file names are images (no torch: corpus readers use it)
``decode``      files and bytes -> pixels (uint8 for 8-bit images), EXIF orientation, every decoding error
``folders``     folders -> their image files, and what was left out
``sources``     inputs (paths, folders, PIL images, arrays, tensors) -> one ``Source`` per image
``transforms``  the resize rule (``InputSize``)
``loading``     the batched pipeline shared by scoring, the corpus engines, evaluation and training

The package itself imports nothing, so ``temu.images.names`` stays free of torch.
"""
