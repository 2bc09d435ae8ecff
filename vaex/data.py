"""Opt-in data loading for vaex: statically binarized MNIST and a grayscale MNIST subset.

    import vaex.data
    x_train = vaex.data.load_binarized_mnist("train")  # uint8 [50000, 784], 0/1
    images, labels = vaex.data.load_mnist_grayscale_subset(data_dir="...")  # float32 [5000, 784]

Files are looked for in the `data_dir` argument, else `$VAEX_DATA_DIR`, else (binarized MNIST only)
tensorflow-datasets' default data dir. Importing this module does not import tensorflow or
tensorflow-datasets; `load_binarized_mnist(..., source="tfds")` imports them when called.
"""

from __future__ import annotations

from vaex._src.data import (
    DataFormatError,
    DataNotFoundError,
    grayscale_train_test_split,
    load_binarized_mnist,
    load_mnist_grayscale_subset,
)

__all__ = [
    "DataFormatError",
    "DataNotFoundError",
    "grayscale_train_test_split",
    "load_binarized_mnist",
    "load_mnist_grayscale_subset",
]
