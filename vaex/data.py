"""Opt-in data loading for vaex: binarized MNIST, grayscale MNIST, Frey Face, tfds image sets.

    import vaex.data
    x_train = vaex.data.load_binarized_mnist("train")  # uint8 [50000, 784], 0/1
    images, labels = vaex.data.load_mnist_grayscale_subset(data_dir="...")  # float32 [5000, 784]
    faces = vaex.data.load_frey_face(data_dir="...")  # float32 [1965, 560], 28x20, in [0, 1]
    train, test = vaex.data.frey_face_train_test_split(faces)  # 1,600 / 365, fixed (seed 0)
    cifar = vaex.data.load_tfds_images("cifar10", "train")  # float32 [50000, 3072], via tfds

Files are looked for in the `data_dir` argument, else `$VAEX_DATA_DIR`, else (binarized MNIST and
the tfds sets) tensorflow-datasets' default data dir. Importing this module does not import
tensorflow or tensorflow-datasets; `load_binarized_mnist(..., source="tfds")` and `load_tfds_images`
import them when called. MNIST (60k), Fashion-MNIST and CIFAR-10 come through tensorflow-datasets;
to use them on a machine without internet, prepare them on one with internet:

    import tensorflow_datasets as tfds
    tfds.builder("mnist", data_dir="/tmp/tfds").download_and_prepare()  # fashion_mnist, cifar10

and copy `/tmp/tfds/mnist/` (the whole `<version>/` tree) into the data dir here.
"""

from __future__ import annotations

from vaex._src.data import (
    FREY_FACE_SHAPE,
    TFDS_IMAGE_SHAPES,
    DataFormatError,
    DataNotFoundError,
    frey_face_train_test_split,
    grayscale_train_test_split,
    load_binarized_mnist,
    load_frey_face,
    load_mnist_grayscale_subset,
    load_tfds_images,
)

__all__ = [
    "FREY_FACE_SHAPE",
    "TFDS_IMAGE_SHAPES",
    "DataFormatError",
    "DataNotFoundError",
    "frey_face_train_test_split",
    "grayscale_train_test_split",
    "load_binarized_mnist",
    "load_frey_face",
    "load_mnist_grayscale_subset",
    "load_tfds_images",
]
