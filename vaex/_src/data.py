"""Opt-in data loading: binarized MNIST, grayscale MNIST, Frey Face, and tfds image data sets.

Data flows from here into the model: `load_binarized_mnist` gives `uint8 [n, 784]` arrays of 0s and
1s for a Bernoulli decoder; `load_mnist_grayscale_subset` (`float32 [n, 784]`), `load_frey_face`
(`float32 [1965, 560]`, 28x20 faces) and `load_tfds_images` (MNIST, Fashion-MNIST, CIFAR-10,
`float32 [n, height * width * channels]`) give intensities in [0, 1] for a Gaussian decoder or for
dynamic binarization. Images are flat and row-major (height, then width, then channel). Values are
checked once, on the host, when a file is read; nothing here runs inside compiled code.

Binarized MNIST is the fixed binarization of Larochelle & Murray (2011), "The Neural Autoregressive
Distribution Estimator", AISTATS, used for the marginal likelihoods of Burda et al. (2015),
"Importance Weighted Autoencoders", Table 3. It can be read two ways:

* `source="files"`: a direct numpy reader of `binarized_mnist_{split}.amat[.gz]` (no tensorflow);
  the 50,000-image train file parses in a fraction of a second.
* `source="tfds"`: tensorflow-datasets' `binarized_mnist` builder, prepared offline from the
  unzipped files in `<dir>/downloads/manual/`. tfds stores the examples in a fixed but shuffled
  order (its writer sorts examples by a hash of their key), so it returns the same images as
  `"files"` but as a permutation of the file order.

Frey Face (Brendan Frey's 1,965 video frames of one face, 28x20 pixels, grey values 0..255; the
second data set of Kingma & Welling 2013) is read from `frey_faces.txt[.gz]` (one image a line) or
from the original `frey_rawface.mat` (variable `ff`, `[560, 1965]`), and checked against the
sha256 of the known array. It has no official split; `frey_face_train_test_split` is a fixed,
seeded one (1,600 train, 365 test).

MNIST (60,000 train / 10,000 test), Fashion-MNIST (60,000 / 10,000) and CIFAR-10 (50,000 / 10,000)
come from tensorflow-datasets (`pip install 'jax-vae[data]'`). `load_tfds_images` uses data that tfds
has already prepared in the data dir (or in tfds' default data dir) and otherwise asks tfds to
download and prepare it there. On a machine without internet, prepare it elsewhere and copy it:

    # On a machine with internet (tensorflow-datasets and tensorflow installed):
    import tensorflow_datasets as tfds
    tfds.builder("mnist", data_dir="/tmp/tfds").download_and_prepare()  # or fashion_mnist, cifar10
    # Then copy /tmp/tfds/mnist/ (the whole <name>/<version>/ tree) into the data dir here,
    # e.g. ../shared/data/mnist/3.0.1/..., and pass data_dir= (or set VAEX_DATA_DIR).

Neither this module nor `vaex` imports tensorflow or tensorflow-datasets at import time; tfds is
imported inside the function that uses it.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import math
import os
import zlib
from pathlib import Path

import numpy as np

from vaex._src.checks import check_binary, check_positive_int

NUM_PIXELS = 784
"""Pixels per MNIST image, 28 * 28."""

BINARIZED_MNIST_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}
"""Images per split of statically binarized MNIST, in the Larochelle & Murray files."""

GRAYSCALE_SUBSET_FILENAME = "mnist_5k_grayscale.csv.gz"

_SOURCES = ("auto", "files", "tfds")
_TFDS_NAME = "binarized_mnist"
_TFDS_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
_AMAT_LINE_BYTES = 2 * NUM_PIXELS  # "0 1 ... 0\n": a digit and a separator per pixel.
_BINARY_TOKENS = frozenset((b"0", b"1"))
_NUM_CLASSES = 10


class DataNotFoundError(FileNotFoundError):
  """A data file is in none of the places looked at; the message lists them and the fix."""


class DataFormatError(ValueError):
  """A data file is malformed; the message names the file, the 1-based line and the problem."""


# ------------------------------------------------------------------------------------------------
# Locating files.


def _env_dir(name: str) -> Path | None:
  value = os.environ.get(name, "")
  return Path(value).expanduser() if value else None


def _resolve_data_dir(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
  """Returns the directory to look in and a phrase saying where it came from.

  Order: the `data_dir` argument; else `$VAEX_DATA_DIR`; else tensorflow-datasets' default data dir,
  which is `$TFDS_DATA_DIR` if set and `~/tensorflow_datasets` otherwise (the rule tfds itself
  uses in `tfds.core.constants.get_default_data_dir`, reproduced here so tfds is not imported).
  """
  if data_dir is not None:
    return Path(data_dir).expanduser(), "the `data_dir` argument"
  if (directory := _env_dir("VAEX_DATA_DIR")) is not None:
    return directory, "the VAEX_DATA_DIR environment variable"
  if (directory := _env_dir("TFDS_DATA_DIR")) is not None:
    return directory, (
        "tensorflow-datasets' default data dir, $TFDS_DATA_DIR (data_dir is None and "
        "VAEX_DATA_DIR is not set)"
    )
  return Path("~/tensorflow_datasets").expanduser(), (
      "tensorflow-datasets' default data dir ~/tensorflow_datasets (data_dir is None and neither "
      "VAEX_DATA_DIR nor TFDS_DATA_DIR is set)"
  )


def _amat_candidates(directory: Path, split: str) -> list[Path]:
  """The direct files for `split`, in the order they are tried (uncompressed first)."""
  name = f"binarized_mnist_{split}.amat"
  return [directory / name, directory / f"{name}.gz"]


def _manual_dir(directory: Path) -> Path:
  """Where tfds looks for manually downloaded files: `<data_dir>/downloads/manual`."""
  return directory / "downloads" / "manual"


def _manual_files(directory: Path) -> list[Path]:
  """The unzipped files tfds needs to prepare all three splits without a download."""
  return [_manual_dir(directory) / f"binarized_mnist_{s}.amat" for s in BINARIZED_MNIST_SIZES]


def _tfds_prepared(directory: Path) -> bool:
  """Whether tfds has prepared `binarized_mnist` in `directory`, checked without importing tfds.

  A prepared dataset is `<dir>/binarized_mnist/<version>/dataset_info.json`; directories that tfds
  is still writing are called `incomplete.*` and do not count.
  """
  root = directory / _TFDS_NAME
  if not root.is_dir():
    return False
  return any(
      (version / "dataset_info.json").is_file()
      for version in root.iterdir()
      if not version.name.startswith("incomplete.")
  )


def _tfds_importable() -> bool:
  """Whether tensorflow-datasets and tensorflow can be imported, checked without importing them."""
  return all(importlib.util.find_spec(name) is not None
             for name in ("tensorflow_datasets", "tensorflow"))


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # Heavy and optional: imported only when used.
  except ImportError as e:
    raise ImportError(
        "source='tfds' needs tensorflow-datasets and tensorflow, which are not installed. Install "
        "the data extra, `pip install 'jax-vae[data]'`, or read the .amat files directly with "
        f"source='files'. ({e})"
    ) from e
  return tfds


# ------------------------------------------------------------------------------------------------
# Reading and parsing.


def _read_bytes(path: Path) -> bytes:
  """Returns the contents of `path`, gunzipped if it starts with the gzip magic bytes."""
  with open(path, "rb") as f:
    raw = f.read()
  if raw[:2] != b"\x1f\x8b":
    return raw
  try:
    return gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:
    raise DataFormatError(
        f"{path}: not a valid gzip file ({e}). The file is truncated or corrupt; copy it again."
    ) from e


def _split_lines(data: bytes) -> list[bytes]:
  """Splits on b'\\n' and drops trailing blank lines (a final newline, or several)."""
  lines = data.split(b"\n")
  while lines and not lines[-1].strip():
    lines.pop()
  return lines


def _parse_amat_fast(data: bytes) -> np.ndarray | None:
  """Parses the canonical layout ('d d ... d\\n', d in {0, 1}) with whole-array numpy operations.

  Returns None if `data` is not exactly in that layout, so that the caller can fall back to the
  line-by-line parser, which says what is wrong.
  """
  if len(data) % _AMAT_LINE_BYTES:
    return None
  table = np.frombuffer(data, dtype=np.uint8).reshape(-1, _AMAT_LINE_BYTES)
  digits = table[:, 0::2]
  separators = table[:, 1::2]
  if not ((digits | 1) == ord("1")).all():  # Only b'0' (48) and b'1' (49) map to 49.
    return None
  if not (separators[:, :-1] == ord(" ")).all() or not (separators[:, -1] == ord("\n")).all():
    return None
  return digits - np.uint8(ord("0"))


def _parse_binary_tokens(tokens: list[bytes], path: Path, line: int) -> np.ndarray:
  """Parses one line's tokens that are not all b'0'/b'1': accepts '0.0'/'1.0', else raises."""
  row = np.empty(len(tokens), dtype=np.uint8)
  for column, token in enumerate(tokens, start=1):
    text = token.decode("utf-8", errors="replace")
    where = f"{path}, line {line}, value {column}"
    try:
      value = float(token)
    except ValueError:
      raise DataFormatError(f"{where}: {text!r} is not a number; expected 0 or 1.") from None
    if math.isnan(value):
      raise DataFormatError(f"{where}: found NaN ({text!r}); expected 0 or 1.")
    if value not in (0.0, 1.0):
      raise DataFormatError(
          f"{where}: found {text!r}; statically binarized MNIST holds only 0 and 1."
      )
    row[column - 1] = int(value)
  return row


def _parse_amat_lines(data: bytes, path: Path) -> np.ndarray:
  """Parses an .amat file line by line, raising DataFormatError at the first bad line."""
  lines = _split_lines(data)
  images = np.empty((len(lines), NUM_PIXELS), dtype=np.uint8)
  for index, line in enumerate(lines):
    tokens = line.split()
    if len(tokens) != NUM_PIXELS:
      truncated = index == len(lines) - 1 and len(tokens) < NUM_PIXELS
      raise DataFormatError(
          f"{path}, line {index + 1}: expected {NUM_PIXELS} space-separated values (one image), "
          f"found {len(tokens)}"
          + (". The last line is incomplete: the file looks truncated; copy it again (the sha256 "
             "values are listed in the data README)." if truncated else ".")
      )
    if _BINARY_TOKENS.issuperset(tokens):
      images[index] = np.frombuffer(b"".join(tokens), dtype=np.uint8) - np.uint8(ord("0"))
    else:
      images[index] = _parse_binary_tokens(tokens, path, index + 1)
  return images


def _read_amat(path: Path) -> np.ndarray:
  """Reads a binarized MNIST .amat or .amat.gz file into `uint8 [n, 784]`.

  The canonical layout is parsed with whole-array numpy operations (~0.3 s for the 50,000-line
  train file, most of it gunzip); anything else (CRLF line ends, tabs, '1.0', or an error) goes
  through a line-by-line parser that names the first bad line.
  """
  data = _read_bytes(path)
  images = _parse_amat_fast(data)
  if images is None:
    images = _parse_amat_lines(data, path)
  return images


def _load_from_tfds(split: str, directory: Path) -> np.ndarray:
  """Loads `split` through tensorflow-datasets' `binarized_mnist` builder in `directory`.

  If the dataset is not prepared yet, tfds prepares all three splits (about 40 s on 2 CPU cores).
  It takes a file from `<directory>/downloads/manual/` when one with the expected name is there
  (it checks its size and sha256 against the checksums it records), and downloads it from the
  original URL otherwise. Prepared data goes to `<directory>/binarized_mnist/1.0.0/`.
  """
  tfds = _import_tfds()
  builder = tfds.builder(_TFDS_NAME, data_dir=os.fspath(directory))
  if not builder.is_prepared():
    config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(_manual_dir(directory)),
        try_download_gcs=False,  # Build from the original files, never from a GCS copy.
    )
    builder.download_and_prepare(download_config=config)
  dataset = builder.as_dataset(split=_TFDS_SPLITS[split], batch_size=-1)
  images = np.asarray(tfds.as_numpy(dataset)["image"])  # uint8 [n, 28, 28, 1]
  return images.reshape(images.shape[0], -1).astype(np.uint8, copy=False)


# ------------------------------------------------------------------------------------------------
# Statically binarized MNIST.


def _not_found_message(split: str, source: str, directory: Path, how: str) -> str:
  lines = [
      f"Could not find the {split!r} split of binarized MNIST (source={source!r}). Looked in "
      f"{directory}, from {how}:"
  ]
  for path in _amat_candidates(directory, split):
    lines.append(f"  - {path}: not found")
  if source == "auto":
    prepared = "found" if _tfds_prepared(directory) else "not found"
    lines.append(
        f"  - {directory / _TFDS_NAME}/<version>/dataset_info.json (prepared by "
        f"tensorflow-datasets): {prepared}"
    )
    for path in _manual_files(directory):
      status = "found" if path.is_file() else "not found"
      lines.append(f"  - {path} (tfds manual download): {status}")
    lines.append(
        "  - tensorflow_datasets and tensorflow importable: "
        + ("yes" if _tfds_importable() else "no")
    )
  lines.append(
      "To fix: pass data_dir=... or set VAEX_DATA_DIR to a directory holding "
      f"binarized_mnist_{split}.amat or binarized_mnist_{split}.amat.gz; or install the data "
      "extra (`pip install 'jax-vae[data]'`) and put the unzipped binarized_mnist_{train,valid,test}"
      f".amat in {_manual_dir(directory)}/ and use source='tfds' or 'auto'. The files are at "
      f"{_URL}."
  )
  return "\n".join(lines)


def load_binarized_mnist(
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    source: str = "auto",
) -> np.ndarray:
  """Loads one split of statically binarized MNIST (Larochelle & Murray, 2011).

  Args:
    split: 'train' (50,000 images), 'valid' (10,000) or 'test' (10,000).
    data_dir: directory to look in. If None, `$VAEX_DATA_DIR`; if that is unset too,
      tensorflow-datasets' default data dir (`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
    source: 'files' reads `<dir>/binarized_mnist_{split}.amat` or, failing that, `.amat.gz`
      directly with numpy (no tensorflow), in file order. 'tfds' uses tensorflow-datasets'
      `binarized_mnist` builder with `data_dir=<dir>`, preparing it if needed from the unzipped
      files in `<dir>/downloads/manual/` (downloading them if they are not there); its rows are a
      fixed permutation of the file order. 'auto' uses 'files' if a direct file exists, else
      'tfds' if tfds is importable and the dataset is prepared in `<dir>` or all three manual
      files are present, and raises DataNotFoundError otherwise.

  Returns:
    images: `uint8 [n, 784]` holding only 0 and 1, row-major 28x28 images.

  Raises:
    ValueError: for an unknown `split` or `source`.
    DataNotFoundError: (a FileNotFoundError) if the data is in none of the places looked at; the
      message lists every path tried and how to fix it.
    DataFormatError: (a ValueError) if a file is malformed or has the wrong number of images; the
      message names the file and, for a bad line, its 1-based number.
    ImportError: for source='tfds' without tensorflow-datasets installed.
  """
  if split not in BINARIZED_MNIST_SIZES:
    hint = " (tfds calls it 'validation'; here it is 'valid')" if split == "validation" else ""
    raise ValueError(
        f"`split` must be one of 'train', 'valid', 'test'; got {split!r}{hint}."
    )
  if source not in _SOURCES:
    raise ValueError(f"`source` must be one of 'auto', 'files', 'tfds'; got {source!r}.")
  directory, how = _resolve_data_dir(data_dir)

  path = next((p for p in _amat_candidates(directory, split) if p.is_file()), None)
  if source == "auto" and path is None:
    tfds_usable = _tfds_importable() and (
        _tfds_prepared(directory) or all(p.is_file() for p in _manual_files(directory))
    )
    if not tfds_usable:
      raise DataNotFoundError(_not_found_message(split, source, directory, how))
    source = "tfds"

  if source == "tfds":
    images = _load_from_tfds(split, directory)
    origin = f"the tensorflow-datasets '{_TFDS_NAME}' dataset in {directory}"
  else:
    if path is None:
      raise DataNotFoundError(_not_found_message(split, source, directory, how))
    images = _read_amat(path)
    origin = str(path)

  expected = BINARIZED_MNIST_SIZES[split]
  if images.ndim != 2 or images.shape[1] != NUM_PIXELS:
    raise DataFormatError(
        f"{origin}: expected images of shape [n, {NUM_PIXELS}], got {images.shape}."
    )
  if images.shape[0] != expected:
    raise DataFormatError(
        f"{origin}: has {images.shape[0]} rows; expected {expected} for the {split!r} split of "
        "binarized MNIST. The file is truncated or is not the Larochelle & Murray file; copy it "
        "again (the sha256 values are listed in the data README)."
    )
  check_binary(images, f"binarized MNIST {split!r} split from {origin}")
  return images


# ------------------------------------------------------------------------------------------------
# Grayscale MNIST subset.


def _parse_grayscale_csv(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
  """Parses '784 pixels, label' CSV lines into `int64 [n, 784]` pixels and `int64 [n]` labels."""
  lines = _split_lines(data)
  if not lines:
    raise DataFormatError(f"{path}: the file is empty; expected one image per line.")
  num_fields = NUM_PIXELS + 1
  table = _parse_int_csv_fast(data)
  if table is None or table.shape != (len(lines), num_fields):
    table = _parse_int_csv_lines(lines, path)
  pixels, labels = table[:, :NUM_PIXELS], table[:, NUM_PIXELS]
  bad = (pixels < 0) | (pixels > 255)
  if bad.any():
    row, column = (int(i) for i in np.argwhere(bad)[0])
    raise DataFormatError(
        f"{path}, line {row + 1}, value {column + 1}: pixel value {pixels[row, column]} is outside "
        f"0..255 ({int(bad.sum())} such values)."
    )
  bad = (labels < 0) | (labels >= _NUM_CLASSES)
  if bad.any():
    row = int(np.argmax(bad))
    raise DataFormatError(
        f"{path}, line {row + 1}, value {num_fields}: digit label {labels[row]} is outside 0..9."
    )
  return pixels, labels


def _parse_int_csv_fast(data: bytes) -> np.ndarray | None:
  """Parses comma-separated integers with numpy's C reader; None if it rejects the data.

  `np.loadtxt` skips blank lines, so the caller also compares the row count with the line count
  and falls back to `_parse_int_csv_lines` (which names the bad line) when they differ.
  """
  try:
    return np.loadtxt(io.BytesIO(data), delimiter=",", dtype=np.int64, comments=None, ndmin=2)
  except (ValueError, OverflowError):
    return None


def _parse_int_csv_lines(lines: list[bytes], path: Path) -> np.ndarray:
  """Parses CSV lines of 785 integers one by one, raising DataFormatError at the first bad one."""
  num_fields = NUM_PIXELS + 1
  table = np.empty((len(lines), num_fields), dtype=np.int64)
  for index, line in enumerate(lines):
    fields = line.split(b",")
    where = f"{path}, line {index + 1}"
    if len(fields) != num_fields:
      truncated = index == len(lines) - 1 and len(fields) < num_fields
      raise DataFormatError(
          f"{where}: expected {num_fields} comma-separated integers ({NUM_PIXELS} pixel values "
          f"then the digit label), found {len(fields)}"
          + (". The last line is incomplete: the file looks truncated; copy it again."
             if truncated else ".")
      )
    try:
      table[index] = [int(field) for field in fields]
    except OverflowError:
      raise DataFormatError(
          f"{where}: a value does not fit in int64; expected pixel values 0..255 and a digit "
          "label 0..9."
      ) from None
    except ValueError:
      column, field = next((c, f) for c, f in enumerate(fields, 1) if not _is_int(f))
      text = field.decode("utf-8", errors="replace")
      raise DataFormatError(
          f"{where}, value {column}: {text!r} is not an integer; expected pixel values 0..255 "
          "and a digit label 0..9."
      ) from None
  return table


def _is_int(field: bytes) -> bool:
  try:
    int(field)
  except ValueError:
    return False
  return True


def load_mnist_grayscale_subset(
    path: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Loads the 5,000-image grayscale MNIST subset (500 training images per digit).

  The file has one image a line: 784 comma-separated pixel values 0..255, then the digit label; no
  header. It may be gzipped (detected from its first bytes) or not. Any number of lines is
  accepted, so a larger file in the same format loads too.

  Args:
    path: the CSV file. If None, `<dir>/mnist_5k_grayscale.csv.gz`, else `<dir>/mnist_5k_grayscale
      .csv`, with `<dir>` the `data_dir` argument or, if that is None, `$VAEX_DATA_DIR`.
    data_dir: directory holding the file; used only when `path` is None.

  Returns:
    images: `float32 [n, 784]` intensities in [0, 1] (pixel value / 255), n = 5,000 for the subset.
    labels: `int32 [n]` digit labels 0..9.

  Raises:
    DataNotFoundError: if the file is not found; the message names the paths looked at.
    DataFormatError: for a malformed line or a value out of range; the message names the file
      and the 1-based line.
  """
  if path is not None:
    candidates = [Path(path).expanduser()]
    how = "the `path` argument"
  else:
    if data_dir is not None:
      directory, how = Path(data_dir).expanduser(), "the `data_dir` argument"
    else:
      directory, how = _env_dir("VAEX_DATA_DIR"), "the VAEX_DATA_DIR environment variable"
    if directory is None:
      raise DataNotFoundError(
          f"Could not locate {GRAYSCALE_SUBSET_FILENAME}: `path` and `data_dir` are None and the "
          "VAEX_DATA_DIR environment variable is not set, so there is nowhere to look. Pass "
          f"path='.../{GRAYSCALE_SUBSET_FILENAME}', or data_dir= (or set VAEX_DATA_DIR) to the "
          "directory holding it."
      )
    candidates = [
        directory / GRAYSCALE_SUBSET_FILENAME,
        directory / GRAYSCALE_SUBSET_FILENAME.removesuffix(".gz"),
    ]
  found = next((p for p in candidates if p.is_file()), None)
  if found is None:
    looked = "\n".join(f"  - {p}: not found" for p in candidates)
    raise DataNotFoundError(
        f"Could not find the grayscale MNIST subset. Looked at (from {how}):\n{looked}\n"
        f"To fix: pass path= to the file, or data_dir= (or set VAEX_DATA_DIR) to the directory "
        f"holding {GRAYSCALE_SUBSET_FILENAME} (5,000 lines of 784 pixel values 0..255 and a "
        "label, comma separated)."
    )
  pixels, labels = _parse_grayscale_csv(_read_bytes(found), found)
  images = pixels.astype(np.float32) / np.float32(255.0)
  return images, labels.astype(np.int32)


def grayscale_train_test_split(
    images: np.ndarray,
    labels: np.ndarray,
    num_test: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
  """Splits images into train and test by a fixed, seed-free, stratified rule.

  Rule: order the examples by label, keeping file order within a label (a stable sort); with
  `stride = n // num_test`, the examples at positions `stride - 1, 2 * stride - 1, ...` of that
  order (`num_test` of them) are the test set. Both outputs keep the input order. For the 5k subset
  (sorted by digit, 500 each) and `num_test=500`, that is every 10th image, indices 9, 19, ...,
  4999: 50 test images per digit.

  Args:
    images: `[n, ...]` array, e.g. `float32 [5000, 784]` from `load_mnist_grayscale_subset`.
    labels: `[n]` integer labels, used to stratify.
    num_test: number of test images, 1 <= num_test < n.

  Returns:
    train_images: `[n - num_test, ...]`, same dtype as `images`.
    test_images: `[num_test, ...]`.
  """
  images = np.asarray(images)
  labels = np.asarray(labels)
  num_test = check_positive_int(num_test, "num_test")
  if images.ndim < 1 or labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise ValueError(
        "`labels` must be a vector with one label per image; got images of shape "
        f"{images.shape} and labels of shape {labels.shape}."
    )
  n = images.shape[0]
  if num_test >= n:
    raise ValueError(
        f"`num_test` must be smaller than the number of images, {n}; got {num_test}."
    )
  stride = n // num_test
  by_label = np.argsort(labels, kind="stable")
  test_index = np.sort(by_label[stride - 1 :: stride][:num_test])
  is_train = np.ones(n, dtype=bool)
  is_train[test_index] = False
  return images[is_train], images[test_index]


# ------------------------------------------------------------------------------------------------
# Frey Face.

FREY_FACE_SHAPE = (28, 20)
"""Rows and columns of a Frey Face image; a flat image is row-major, 28 rows of 20 pixels."""

FREY_FACE_NUM_IMAGES = 1965
FREY_FACE_FILENAMES = ("frey_faces.txt.gz", "frey_faces.txt", "frey_rawface.mat")
"""The files `load_frey_face` looks for in the data dir, in this order."""

_FREY_FACE_PIXELS = FREY_FACE_SHAPE[0] * FREY_FACE_SHAPE[1]
# sha256 of the known uint8 [1965, 560] array in C order (the same for the text file and the .mat).
_FREY_FACE_SHA256 = "2438ba4f0d2a6bd8bac43de756141eaa33c8d248dd613d464bdb1210d9b7af78"
_FREY_FACE_MAT_VARIABLE = "ff"


def _parse_frey_text(data: bytes, path: Path) -> np.ndarray:
  """Parses one image a line, 560 space-separated integers 0..255, into `uint8 [n, 560]`."""
  lines = _split_lines(data)
  if not lines:
    raise DataFormatError(f"{path}: the file is empty; expected one image (560 values) a line.")
  try:
    table = np.loadtxt(io.BytesIO(data), dtype=np.int64, comments=None, ndmin=2)
  except (ValueError, OverflowError):
    table = None
  if table is None or table.shape != (len(lines), _FREY_FACE_PIXELS):
    table = np.empty((len(lines), _FREY_FACE_PIXELS), dtype=np.int64)
    for index, line in enumerate(lines):  # Slow path: find and name the first bad line.
      tokens = line.split()
      where = f"{path}, line {index + 1}"
      if len(tokens) != _FREY_FACE_PIXELS:
        truncated = index == len(lines) - 1 and len(tokens) < _FREY_FACE_PIXELS
        raise DataFormatError(
            f"{where}: expected {_FREY_FACE_PIXELS} space-separated grey values (one 28x20 image), "
            f"found {len(tokens)}"
            + (". The last line is incomplete: the file looks truncated; copy it again."
               if truncated else ".")
        )
      for column, token in enumerate(tokens, start=1):
        try:
          table[index, column - 1] = int(token)
        except (ValueError, OverflowError):
          text = token.decode("utf-8", errors="replace")
          raise DataFormatError(
              f"{where}, value {column}: {text!r} is not an integer; expected grey values 0..255."
          ) from None
  return _check_grey_values(table, path, lambda row, col: f"line {row + 1}, value {col + 1}")


def _check_grey_values(table: np.ndarray, origin, where) -> np.ndarray:
  """`table` as uint8 if every value is an integer 0..255; else DataFormatError at the first bad one."""
  bad = ~np.isfinite(table) | (table < 0) | (table > 255) | (table != np.round(table)) \
      if np.issubdtype(table.dtype, np.floating) else (table < 0) | (table > 255)
  if bad.any():
    row, column = (int(i) for i in np.argwhere(bad)[0])
    raise DataFormatError(
        f"{origin}, {where(row, column)}: grey value {table[row, column]} is not an integer in "
        f"0..255 ({int(bad.sum())} such values)."
    )
  return table.astype(np.uint8)


def _read_frey_mat(path: Path) -> np.ndarray:
  """Reads the variable `ff`, `[560, n]` (one image a column), of a MATLAB file into `uint8 [n, 560]`."""
  try:
    import scipy.io  # Lazy and optional: scipy is a test dependency of vaex, not a runtime one.
  except ImportError as e:
    raise ImportError(
        f"Reading {path.name} needs scipy (scipy.io.loadmat), which is not installed: scipy is only a "
        "test dependency of vaex. Install it (`pip install scipy`), or use the text file "
        f"{FREY_FACE_FILENAMES[0]} instead. ({e})"
    ) from e
  try:
    contents = scipy.io.loadmat(os.fspath(path))
  except NotImplementedError as e:  # MATLAB v7.3 files are HDF5, which loadmat does not read.
    raise DataFormatError(
        f"{path}: scipy.io.loadmat cannot read this MATLAB file ({e}); save it as a v7 (or older) "
        "MAT file, or use frey_faces.txt.gz."
    ) from e
  except Exception as e:  # noqa: BLE001 (loadmat raises ValueError, TypeError, OSError, ...)
    raise DataFormatError(
        f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e}). The file is truncated "
        "or corrupt; copy it again."
    ) from e
  if _FREY_FACE_MAT_VARIABLE not in contents:
    found = sorted(k for k in contents if not k.startswith("__"))
    raise DataFormatError(
        f"{path}: has no variable {_FREY_FACE_MAT_VARIABLE!r} (found {found}); the Frey Face file "
        f"frey_rawface.mat stores the images as `ff`, [{_FREY_FACE_PIXELS}, {FREY_FACE_NUM_IMAGES}]."
    )
  ff = np.asarray(contents[_FREY_FACE_MAT_VARIABLE])
  if ff.ndim != 2 or ff.shape[0] != _FREY_FACE_PIXELS or ff.shape[1] < 1:
    raise DataFormatError(
        f"{path}: variable {_FREY_FACE_MAT_VARIABLE!r} has shape {ff.shape}; expected "
        f"[{_FREY_FACE_PIXELS}, n], one 28x20 image a column ([560, 1965] for Frey Face)."
    )
  if not (np.issubdtype(ff.dtype, np.integer) or np.issubdtype(ff.dtype, np.floating)):
    raise DataFormatError(
        f"{path}: variable {_FREY_FACE_MAT_VARIABLE!r} has dtype {ff.dtype}; expected uint8 grey "
        "values 0..255."
    )
  return _check_grey_values(
      ff.T, path, lambda row, col: f"variable ff, image (column) {row + 1}, pixel {col + 1}")


def _frey_face_candidates(
    path: str | os.PathLike | None, data_dir: str | os.PathLike | None
) -> tuple[list[Path], str]:
  if path is not None:
    return [Path(path).expanduser()], "the `path` argument"
  if data_dir is not None:
    directory, how = Path(data_dir).expanduser(), "the `data_dir` argument"
  else:
    directory, how = _env_dir("VAEX_DATA_DIR"), "the VAEX_DATA_DIR environment variable"
  if directory is None:
    raise DataNotFoundError(
        "Could not locate the Frey Face data: `path` and `data_dir` are None and the VAEX_DATA_DIR "
        f"environment variable is not set, so there is nowhere to look. Pass data_dir= (or set "
        f"VAEX_DATA_DIR) to the directory holding one of {', '.join(FREY_FACE_FILENAMES)}, or "
        "path= to the file."
    )
  return [directory / name for name in FREY_FACE_FILENAMES], how


def load_frey_face(
    data_dir: str | os.PathLike | None = None,
    *,
    path: str | os.PathLike | None = None,
    verify_checksum: bool = True,
) -> np.ndarray:
  """Loads Brendan Frey's face images (the second data set of Kingma & Welling 2013).

  1,965 frames of one face from a video, 28 rows x 20 columns, grey values 0..255. Two formats are
  read: `frey_faces.txt[.gz]`, one image a line (560 space-separated integers, row-major), and the
  original `frey_rawface.mat` from Sam Roweis' data page, variable `ff` of shape `[560, 1965]` (one
  image a column; needs scipy). Both hold the same array, checked against its sha256.

  Args:
    data_dir: directory to look in for `frey_faces.txt.gz`, then `frey_faces.txt`, then
      `frey_rawface.mat`. If None, `$VAEX_DATA_DIR`.
    path: the file itself (a `.mat` suffix selects the MATLAB reader); overrides `data_dir`.
    verify_checksum: if True, the data must be exactly the 1,965 known images (row count and sha256
      of the uint8 array). False accepts any number of valid 28x20 images (a subset, a test file).

  Returns:
    images: `float32 [1965, 560]` intensities in [0, 1] (grey value / 255);
      `images[i].reshape(28, 20)` is image i, upright, row by row.

  Raises:
    DataNotFoundError: (a FileNotFoundError) if no file is found; the message lists the paths.
    DataFormatError: (a ValueError) for a malformed file, a value outside 0..255, or (with
      `verify_checksum`) a different row count or content; the message names the file and, in a
      text file, the 1-based line.
    ImportError: for a `.mat` file without scipy installed.
  """
  candidates, how = _frey_face_candidates(path, data_dir)
  found = next((p for p in candidates if p.is_file()), None)
  if found is None:
    looked = "\n".join(f"  - {p}: not found" for p in candidates)
    raise DataNotFoundError(
        f"Could not find the Frey Face data. Looked at (from {how}):\n{looked}\n"
        "To fix: pass data_dir= (or set VAEX_DATA_DIR) to the directory holding frey_faces.txt.gz "
        "(1,965 lines of 560 grey values) or frey_rawface.mat (variable ff, [560, 1965]; from Sam "
        "Roweis' data page, https://cs.nyu.edu/~roweis/data.html), or path= to the file."
    )
  if found.suffix.lower() == ".mat":
    images = _read_frey_mat(found)
  else:
    images = _parse_frey_text(_read_bytes(found), found)
  if verify_checksum:
    if images.shape[0] != FREY_FACE_NUM_IMAGES:
      raise DataFormatError(
          f"{found}: has {images.shape[0]} images; Frey Face has {FREY_FACE_NUM_IMAGES}. The file "
          "is truncated or is not the Frey Face file: copy it again (the checksums are in the data "
          "README), or pass verify_checksum=False to load a subset on purpose."
      )
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    if digest != _FREY_FACE_SHA256:
      raise DataFormatError(
          f"{found}: the {FREY_FACE_NUM_IMAGES} images differ from the Frey Face data (sha256 of "
          f"the uint8 [1965, 560] array is {digest}, expected {_FREY_FACE_SHA256}). The file is "
          "corrupt or a different data set: copy it again, or pass verify_checksum=False to load "
          "it anyway."
      )
  return images.astype(np.float32) / np.float32(255.0)


FREY_FACE_NUM_TEST = 365
"""Test images of the fixed Frey Face split: 1,965 - 365 = 1,600 for training, 16 minibatches of 100."""


def frey_face_train_test_split(
    images: np.ndarray, num_test: int = FREY_FACE_NUM_TEST, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """Splits Frey Face into train and test by a fixed, seeded random rule.

  Rule: `order = np.random.default_rng(seed).permutation(n)`; the images at indices
  `order[:num_test]` are the test set. Both outputs keep the file order. With the defaults
  (`num_test=365`, `seed=0`) that is 1,600 training and 365 test images, the same on every machine
  (`tests/frey_face_test.py` pins the first test indices). The frames come from one video, so a test
  frame usually has near-identical neighbours in the training set: the test bound measures
  generalization to new frames of the same sequence, as in Kingma & Welling (2013), who report
  train and test bounds without saying how they split.

  Args:
    images: `[n, ...]` array, e.g. `float32 [1965, 560]` from `load_frey_face`.
    num_test: number of test images, 1 <= num_test < n.
    seed: seed of the permutation.

  Returns:
    train_images: `[n - num_test, ...]`, same dtype as `images`.
    test_images: `[num_test, ...]`.
  """
  images = np.asarray(images)
  num_test = check_positive_int(num_test, "num_test")
  if images.ndim < 1 or images.shape[0] < 2:
    raise ValueError(f"`images` must hold at least 2 images, [n, ...]; got shape {images.shape}.")
  n = images.shape[0]
  if num_test >= n:
    raise ValueError(
        f"`num_test` must be smaller than the number of images, {n}; got {num_test}."
    )
  test_index = np.sort(np.random.default_rng(seed).permutation(n)[:num_test])
  is_train = np.ones(n, dtype=bool)
  is_train[test_index] = False
  return images[is_train], images[test_index]


# ------------------------------------------------------------------------------------------------
# Image data sets through tensorflow-datasets: MNIST, Fashion-MNIST, CIFAR-10.

TFDS_IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
"""`(height, width, channels)` of each tensorflow-datasets image set `load_tfds_images` reads."""

TFDS_SPLIT_SIZES = {"mnist": {"train": 60_000, "test": 10_000},
                    "fashion_mnist": {"train": 60_000, "test": 10_000},
                    "cifar10": {"train": 50_000, "test": 10_000}}
"""Images per split in the real data sets (not checked: tfds verifies its own downloads)."""

_TFDS_BATCH = 10_000  # Examples per batch read from tfds (batch_size=-1 fails under mock_data).


def _tfds_dirs(data_dir: str | os.PathLike | None) -> list[tuple[Path, str]]:
  """The directories to look in, each with where it came from: the vaex data dir, then tfds' own."""
  directory, how = _resolve_data_dir(data_dir)
  dirs = [(directory, how)]
  if (default := _env_dir("TFDS_DATA_DIR")) is None:
    default = Path("~/tensorflow_datasets").expanduser()
  if default != directory:
    dirs.append((default, "tensorflow-datasets' default data dir"))
  return dirs


def _tfds_prepared_in(name: str, directory: Path) -> bool:
  """Whether tfds has prepared `name` in `directory` (`<dir>/<name>/<version>/dataset_info.json`,
  versions being written, `incomplete.*`, do not count), checked without importing tfds."""
  root = directory / name
  return root.is_dir() and any(
      (version / "dataset_info.json").is_file()
      for version in root.iterdir() if not version.name.startswith("incomplete."))


def _tfds_download_and_prepare(tfds, name: str, directory: Path) -> None:
  """Downloads and prepares `name` in `directory` (a separate function so tests can stub it)."""
  tfds.builder(name, data_dir=os.fspath(directory)).download_and_prepare()


def _tfds_not_found_message(name: str, split: str, dirs, error: BaseException | None) -> str:
  lines = [f"Could not load the tensorflow-datasets data set {name!r} (split {split!r}): it is not "
           "prepared in any directory looked in:"]
  for directory, how in dirs:
    lines.append(f"  - {directory / name}/<version>/dataset_info.json (from {how}): not found")
  if error is None:
    lines.append("Downloading it was not allowed (download=False).")
  else:
    lines.append(f"Downloading and preparing it in {dirs[0][0]} failed: {type(error).__name__}: "
                 f"{error}")
  lines.append(
      "To fix: on a machine with internet, run\n"
      f"    python -c \"import tensorflow_datasets as tfds; tfds.builder({name!r}, "
      "data_dir='/tmp/tfds').download_and_prepare()\"\n"
      f"then copy /tmp/tfds/{name} (its whole <version>/ directory) into {dirs[0][0]}/ here, and "
      "pass data_dir= (or set VAEX_DATA_DIR, or config.data_dir) to that directory."
  )
  return "\n".join(lines)


def load_tfds_images(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> np.ndarray:
  """Loads an image data set through tensorflow-datasets as flat intensities.

  Looks for the data set already prepared by tfds (`<dir>/<name>/<version>/`) in the data dir
  (`data_dir`, else `$VAEX_DATA_DIR`, else tfds' default) and then in tfds' default data dir
  (`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`). If it is in neither and `download` is True,
  tfds downloads and prepares it in the data dir (needs the network and a writable directory).
  Examples come in tfds' stored order (fixed, not shuffled here).

  Args:
    name: 'mnist' (60,000 train / 10,000 test, 28x28 grey), 'fashion_mnist' (the same sizes) or
      'cifar10' (50,000 / 10,000, 32x32 RGB).
    split: 'train' or 'test'.
    data_dir: the data dir; None uses `$VAEX_DATA_DIR`, else tfds' default data dir.
    download: whether tfds may download the data set when it is not prepared.

  Returns:
    images: `float32 [n, height * width * channels]` intensities in [0, 1] (pixel / 255),
      row-major over (height, width, channel): `images[i].reshape(TFDS_IMAGE_SHAPES[name])`.

  Raises:
    ValueError: for an unknown `name` or `split`.
    ImportError: without tensorflow-datasets and tensorflow installed.
    DataNotFoundError: (a FileNotFoundError) if the data set is not prepared where looked and
      downloading it is not allowed or fails; the message names the data set, every directory looked
      in, the download error, and how to prepare it on another machine.
    DataFormatError: if the prepared data holds images of another shape or dtype.
  """
  if name not in TFDS_IMAGE_SHAPES:
    raise ValueError(f"`name` must be one of {tuple(TFDS_IMAGE_SHAPES)}; got {name!r}.")
  if split not in ("train", "test"):
    hint = " (these data sets have no validation split)" if split in ("valid", "validation") else ""
    raise ValueError(f"`split` must be 'train' or 'test'; got {split!r}{hint}.")
  dirs = _tfds_dirs(data_dir)
  try:
    import tensorflow_datasets as tfds  # Heavy and optional: imported only when used.
  except ImportError as e:
    raise ImportError(
        f"The data set {name!r} is read through tensorflow-datasets, which (with tensorflow) is not "
        f"installed: install the data extra, `pip install 'jax-vae[data]'`. ({e})"
    ) from e
  directory = next((d for d, _ in dirs if _tfds_prepared_in(name, d)), None)
  if directory is None:
    if not download:
      raise DataNotFoundError(_tfds_not_found_message(name, split, dirs, None))
    directory = dirs[0][0]
    try:
      _tfds_download_and_prepare(tfds, name, directory)
    except Exception as e:  # noqa: BLE001 (no network, a read-only dir, a failed checksum, ...)
      raise DataNotFoundError(_tfds_not_found_message(name, split, dirs, e)) from e
  builder = tfds.builder(name, data_dir=os.fspath(directory))
  batches = [np.asarray(batch["image"]) for batch in
             tfds.as_numpy(builder.as_dataset(split=split, batch_size=_TFDS_BATCH))]
  origin = f"the tensorflow-datasets {name!r} {split!r} split in {directory}"
  if not batches:
    raise DataFormatError(f"{origin}: holds no images; prepare it again (delete {directory / name}).")
  images = np.concatenate(batches)
  expected = TFDS_IMAGE_SHAPES[name]
  if images.shape[1:] != expected or images.dtype != np.uint8:
    raise DataFormatError(
        f"{origin}: images have shape {images.shape[1:]} and dtype {images.dtype}; expected uint8 "
        f"{expected}. Prepare it again (delete {directory / name})."
    )
  return images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
