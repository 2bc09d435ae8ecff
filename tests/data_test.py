"""Tests for vaex.data: binarized MNIST (files and tfds) and the grayscale MNIST subset.

Real data is read from the shared data directory (`../shared/data` from the repository root), or
from $VAEX_DATA_DIR when that directory is absent. Format errors use small synthetic files in
tmp dirs. Nothing downloads: the tfds test prepares the dataset from files copied into
`<tmp>/downloads/manual/`.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vaex.data
from vaex._src import data as data_lib
from vaex.data import DataFormatError, DataNotFoundError

_REPO_ROOT = Path(__file__).resolve().parents[1]
_SHARED_DATA = _REPO_ROOT.parent / "shared" / "data"


def _find_shared_data() -> Path | None:
  """The directory holding the real files; looked up at import, before any env monkeypatching."""
  for directory in (_SHARED_DATA, Path(os.environ.get("VAEX_DATA_DIR", "") or "/nonexistent")):
    if (directory / "binarized_mnist_test.amat.gz").is_file():
      return directory
  return None


SHARED_DATA_DIR = _find_shared_data()
SPLIT_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}


@pytest.fixture
def shared_data() -> Path:
  if SHARED_DATA_DIR is None:
    pytest.fail(f"real data not found in {_SHARED_DATA} or $VAEX_DATA_DIR: the tests need the "
                "binarized MNIST files of ../shared/data (nothing downloads at test time).")
  return SHARED_DATA_DIR


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
  """No test sees the caller's VAEX_DATA_DIR, TFDS_DATA_DIR or ~/tensorflow_datasets."""
  monkeypatch.delenv("VAEX_DATA_DIR", raising=False)
  monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
  home = tmp_path / "home"
  home.mkdir()
  monkeypatch.setenv("HOME", os.fspath(home))


def _gunzip(source: Path, target: Path) -> Path:
  target.parent.mkdir(parents=True, exist_ok=True)
  target.write_bytes(gzip.decompress(source.read_bytes()))
  return target


def _amat_line(values) -> str:
  return " ".join(str(v) for v in values) + "\n"


def _valid_amat_lines(num_lines: int) -> list[str]:
  rng = np.random.default_rng(0)
  return [_amat_line(rng.integers(0, 2, size=784)) for _ in range(num_lines)]


def _sorted_rows(x: np.ndarray) -> list[bytes]:
  return sorted(row.tobytes() for row in x)


# ------------------------------------------------------------------------------------------------
# Binarized MNIST through the direct file reader.


def test_real_test_split_via_files(shared_data):
  x = vaex.data.load_binarized_mnist("test", data_dir=shared_data, source="files")
  assert x.shape == (10_000, 784)
  assert x.dtype == np.uint8
  assert set(np.unique(x).tolist()) == {0, 1}
  assert 0.1 < x.mean() < 0.2


@pytest.mark.parametrize("split", ["train", "valid"])
def test_real_train_and_valid_sizes(shared_data, split):
  x = vaex.data.load_binarized_mnist(split, data_dir=shared_data, source="files")
  assert x.shape == (SPLIT_SIZES[split], 784)
  assert x.dtype == np.uint8
  assert 0.1 < x.mean() < 0.2


def test_real_file_takes_fast_path(shared_data, monkeypatch):
  """The canonical layout never reaches the slow line-by-line parser (keeps train < 2 s)."""

  def fail(*args, **kwargs):
    raise AssertionError("the line-by-line parser was used for a canonical .amat file")

  monkeypatch.setattr(data_lib, "_parse_amat_lines", fail)
  x = vaex.data.load_binarized_mnist("test", data_dir=shared_data, source="files")
  assert x.shape == (10_000, 784)


def test_amat_and_amat_gz_are_identical(shared_data, tmp_path):
  _gunzip(shared_data / "binarized_mnist_test.amat.gz", tmp_path / "binarized_mnist_test.amat")
  from_plain = vaex.data.load_binarized_mnist("test", data_dir=tmp_path, source="files")
  from_gzip = vaex.data.load_binarized_mnist("test", data_dir=shared_data, source="files")
  np.testing.assert_array_equal(from_plain, from_gzip)


def test_slow_parser_matches_fast_parser(shared_data, tmp_path):
  """CRLF line ends miss the fast path; the line-by-line parser must give the same array."""
  text = gzip.decompress((shared_data / "binarized_mnist_test.amat.gz").read_bytes())
  (tmp_path / "binarized_mnist_test.amat").write_bytes(text.replace(b"\n", b"\r\n"))
  from_crlf = vaex.data.load_binarized_mnist("test", data_dir=tmp_path, source="files")
  from_gzip = vaex.data.load_binarized_mnist("test", data_dir=shared_data, source="files")
  np.testing.assert_array_equal(from_crlf, from_gzip)


def test_vaex_data_dir_is_honoured(shared_data, monkeypatch):
  monkeypatch.setenv("VAEX_DATA_DIR", os.fspath(shared_data))
  x = vaex.data.load_binarized_mnist("test", source="files")
  assert x.shape == (10_000, 784)
  x_auto = vaex.data.load_binarized_mnist("test")
  np.testing.assert_array_equal(x, x_auto)


def test_data_dir_argument_wins_over_env(shared_data, monkeypatch, tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  monkeypatch.setenv("VAEX_DATA_DIR", os.fspath(empty))
  x = vaex.data.load_binarized_mnist("test", data_dir=shared_data)
  assert x.shape == (10_000, 784)


def test_tfds_default_dir_is_used_last(shared_data, monkeypatch, tmp_path):
  tfds_dir = tmp_path / "tfds_data"
  _gunzip(shared_data / "binarized_mnist_test.amat.gz", tfds_dir / "binarized_mnist_test.amat")
  monkeypatch.setenv("TFDS_DATA_DIR", os.fspath(tfds_dir))
  x = vaex.data.load_binarized_mnist("test", source="files")
  assert x.shape == (10_000, 784)


# ------------------------------------------------------------------------------------------------
# Format errors, on small synthetic files.


def _bad_value_lines(token: str) -> list[str]:
  lines = _valid_amat_lines(3)
  values = lines[1].split()
  values[4] = token
  lines[1] = " ".join(values) + "\n"
  return lines


@pytest.mark.parametrize(
    "lines, expected",
    [
        pytest.param(
            _valid_amat_lines(2) + [_amat_line([0] * 100)],
            ["line 3", "784", "found 100", "truncated"],
            id="truncated_last_line",
        ),
        pytest.param(
            _valid_amat_lines(2) + [_amat_line([0] * 100).rstrip("\n")],
            ["line 3", "found 100", "truncated"],
            id="truncated_last_line_no_newline",
        ),
        pytest.param(_valid_amat_lines(2) + ["\n"] + _valid_amat_lines(1),
                     ["line 3", "found 0"], id="blank_line"),
        pytest.param(_bad_value_lines("2"), ["line 2", "value 5", "'2'", "only 0 and 1"],
                     id="value_2"),
        pytest.param(_bad_value_lines("x"), ["line 2", "value 5", "'x'", "not a number"],
                     id="non_number"),
        pytest.param(_bad_value_lines("nan"), ["line 2", "value 5", "NaN"], id="nan"),
        pytest.param(_bad_value_lines("0.5"), ["line 2", "value 5", "'0.5'"], id="fraction"),
    ],
)
@pytest.mark.parametrize("compressed", [False, True], ids=["amat", "amat_gz"])
def test_format_errors_name_file_and_line(tmp_path, lines, expected, compressed):
  text = "".join(lines).encode()
  if compressed:
    path = tmp_path / "binarized_mnist_test.amat.gz"
    path.write_bytes(gzip.compress(text))
  else:
    path = tmp_path / "binarized_mnist_test.amat"
    path.write_bytes(text)
  with pytest.raises(DataFormatError) as excinfo:
    vaex.data.load_binarized_mnist("test", data_dir=tmp_path, source="files")
  message = str(excinfo.value)
  assert str(path) in message
  for part in expected:
    assert part in message
  assert isinstance(excinfo.value, ValueError)


def test_wrong_row_count_names_file_and_counts(tmp_path):
  path = tmp_path / "binarized_mnist_test.amat"
  path.write_text("".join(_valid_amat_lines(3)))
  with pytest.raises(DataFormatError) as excinfo:
    vaex.data.load_binarized_mnist("test", data_dir=tmp_path)
  message = str(excinfo.value)
  assert str(path) in message
  assert "3 rows" in message
  assert "expected 10000" in message


def test_corrupt_gzip_is_a_format_error(shared_data, tmp_path):
  raw = (shared_data / "binarized_mnist_test.amat.gz").read_bytes()
  path = tmp_path / "binarized_mnist_test.amat.gz"
  path.write_bytes(raw[: len(raw) // 2])
  with pytest.raises(DataFormatError, match="gzip") as excinfo:
    vaex.data.load_binarized_mnist("test", data_dir=tmp_path)
  assert str(path) in str(excinfo.value)


# ------------------------------------------------------------------------------------------------
# Missing data and bad arguments.


def _expected_paths_auto(directory: Path, split: str) -> list[str]:
  return [
      str(directory / f"binarized_mnist_{split}.amat"),
      str(directory / f"binarized_mnist_{split}.amat.gz"),
      str(directory / "binarized_mnist"),
      *(str(directory / "downloads" / "manual" / f"binarized_mnist_{s}.amat")
        for s in ("train", "valid", "test")),
  ]


@pytest.mark.parametrize("where", ["argument", "vaex_env", "tfds_env", "home"])
def test_missing_data_lists_every_place_looked(tmp_path, monkeypatch, where):
  directory = tmp_path / "data"
  directory.mkdir()
  data_dir = None
  if where == "argument":
    data_dir = directory
  elif where == "vaex_env":
    monkeypatch.setenv("VAEX_DATA_DIR", os.fspath(directory))
  elif where == "tfds_env":
    monkeypatch.setenv("TFDS_DATA_DIR", os.fspath(directory))
  else:
    directory = Path(os.environ["HOME"]) / "tensorflow_datasets"
  with pytest.raises(DataNotFoundError) as excinfo:
    vaex.data.load_binarized_mnist("valid", data_dir=data_dir)
  message = str(excinfo.value)
  assert isinstance(excinfo.value, FileNotFoundError)
  for path in _expected_paths_auto(directory, "valid"):
    assert path in message
  assert "importable" in message
  assert "VAEX_DATA_DIR" in message
  assert "pip install 'jax-vae[data]'" in message


def test_partial_manual_files_are_reported(tmp_path):
  manual = tmp_path / "downloads" / "manual"
  manual.mkdir(parents=True)
  (manual / "binarized_mnist_train.amat").write_text("")
  with pytest.raises(DataNotFoundError) as excinfo:
    vaex.data.load_binarized_mnist("test", data_dir=tmp_path)
  message = str(excinfo.value)
  assert f"{manual / 'binarized_mnist_train.amat'} (tfds manual download): found" in message
  assert f"{manual / 'binarized_mnist_test.amat'} (tfds manual download): not found" in message


def test_missing_files_with_files_source(tmp_path):
  with pytest.raises(DataNotFoundError) as excinfo:
    vaex.data.load_binarized_mnist("train", data_dir=tmp_path, source="files")
  message = str(excinfo.value)
  assert str(tmp_path / "binarized_mnist_train.amat") in message
  assert str(tmp_path / "binarized_mnist_train.amat.gz") in message


@pytest.mark.parametrize("split", ["validation", "Train", "", None])
def test_bad_split_name(split, tmp_path):
  with pytest.raises(ValueError, match="`split` must be one of 'train', 'valid', 'test'"):
    vaex.data.load_binarized_mnist(split, data_dir=tmp_path)


def test_validation_split_name_hint(tmp_path):
  with pytest.raises(ValueError, match="here it is 'valid'"):
    vaex.data.load_binarized_mnist("validation", data_dir=tmp_path)


def test_bad_source(tmp_path):
  with pytest.raises(ValueError, match="`source` must be one of 'auto', 'files', 'tfds'"):
    vaex.data.load_binarized_mnist("test", data_dir=tmp_path, source="web")


# ------------------------------------------------------------------------------------------------
# tensorflow-datasets, offline from <dir>/downloads/manual.


@pytest.mark.slow
def test_tfds_matches_files(shared_data, tmp_path):
  pytest.importorskip("tensorflow_datasets")
  manual = tmp_path / "downloads" / "manual"
  for split in ("train", "valid", "test"):
    name = f"binarized_mnist_{split}.amat"
    _gunzip(shared_data / f"{name}.gz", manual / name)

  from_tfds = vaex.data.load_binarized_mnist("test", data_dir=tmp_path, source="tfds")
  from_files = vaex.data.load_binarized_mnist("test", data_dir=shared_data, source="files")
  assert from_tfds.shape == (10_000, 784)
  assert from_tfds.dtype == np.uint8
  # tfds does not keep the file order: its writer sorts examples by a hash of their key (the line
  # index), so the rows are a fixed permutation of the file. Compare the sorted rows instead.
  assert _sorted_rows(from_tfds) == _sorted_rows(from_files)
  assert data_lib._tfds_prepared(tmp_path)

  # Now prepared and with no direct files in tmp_path, "auto" goes through tfds too.
  from_auto = vaex.data.load_binarized_mnist("valid", data_dir=tmp_path)
  valid_files = vaex.data.load_binarized_mnist("valid", data_dir=shared_data, source="files")
  assert from_auto.shape == (10_000, 784)
  assert _sorted_rows(from_auto) == _sorted_rows(valid_files)


# ------------------------------------------------------------------------------------------------
# Grayscale MNIST subset.


def test_grayscale_subset(shared_data):
  images, labels = vaex.data.load_mnist_grayscale_subset(data_dir=shared_data)
  assert images.shape == (5000, 784)
  assert images.dtype == np.float32
  assert images.min() == 0.0
  assert images.max() == 1.0
  np.testing.assert_allclose(images * 255, np.round(images * 255), atol=1e-4)
  assert labels.shape == (5000,)
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(labels, minlength=10), [500] * 10)


def test_grayscale_subset_from_path_and_env(shared_data, monkeypatch):
  path = shared_data / "mnist_5k_grayscale.csv.gz"
  images, labels = vaex.data.load_mnist_grayscale_subset(path)
  monkeypatch.setenv("VAEX_DATA_DIR", os.fspath(shared_data))
  images_env, labels_env = vaex.data.load_mnist_grayscale_subset()
  np.testing.assert_array_equal(images, images_env)
  np.testing.assert_array_equal(labels, labels_env)


def test_grayscale_missing_file(tmp_path):
  with pytest.raises(DataNotFoundError) as excinfo:
    vaex.data.load_mnist_grayscale_subset(data_dir=tmp_path)
  message = str(excinfo.value)
  assert str(tmp_path / "mnist_5k_grayscale.csv.gz") in message
  assert str(tmp_path / "mnist_5k_grayscale.csv") in message
  assert "VAEX_DATA_DIR" in message

  missing = tmp_path / "nowhere.csv.gz"
  with pytest.raises(DataNotFoundError) as excinfo:
    vaex.data.load_mnist_grayscale_subset(missing)
  assert str(missing) in str(excinfo.value)


def test_grayscale_nowhere_to_look():
  with pytest.raises(DataNotFoundError, match="VAEX_DATA_DIR environment variable is not set"):
    vaex.data.load_mnist_grayscale_subset()


def _csv_lines(num_lines: int) -> list[list[str]]:
  rng = np.random.default_rng(1)
  return [[str(v) for v in rng.integers(0, 256, size=784)] + [str(i % 10)]
          for i in range(num_lines)]


def _with(lines: list[list[str]], row: int, column: int, value: str) -> list[list[str]]:
  lines[row][column] = value
  return lines


@pytest.mark.parametrize(
    "lines, expected",
    [
        pytest.param(_csv_lines(3)[:2] + [_csv_lines(1)[0][:500]], ["line 3", "found 500"],
                     id="truncated"),
        pytest.param(_with(_csv_lines(3), 1, 7, "x"), ["line 2", "value 8", "'x'"],
                     id="non_integer"),
        pytest.param(_with(_csv_lines(3), 1, 7, "1.5"), ["line 2", "value 8", "'1.5'"],
                     id="float"),
        pytest.param(_with(_csv_lines(3), 2, 3, "256"), ["line 3", "value 4", "256", "0..255"],
                     id="pixel_too_large"),
        pytest.param(_with(_csv_lines(3), 0, 0, "-1"), ["line 1", "value 1", "-1", "0..255"],
                     id="pixel_negative"),
        pytest.param(_with(_csv_lines(3), 1, 784, "10"), ["line 2", "label 10", "0..9"],
                     id="label"),
    ],
)
@pytest.mark.parametrize("compressed", [False, True], ids=["csv", "csv_gz"])
def test_grayscale_format_errors(tmp_path, lines, expected, compressed):
  text = "".join(",".join(line) + "\n" for line in lines).encode()
  path = tmp_path / ("subset.csv.gz" if compressed else "subset.csv")
  path.write_bytes(gzip.compress(text) if compressed else text)
  with pytest.raises(DataFormatError) as excinfo:
    vaex.data.load_mnist_grayscale_subset(path)
  message = str(excinfo.value)
  assert str(path) in message
  for part in expected:
    assert part in message


def test_grayscale_small_valid_file(tmp_path):
  lines = _csv_lines(4)
  path = tmp_path / "subset.csv"
  path.write_text("".join(",".join(line) + "\n" for line in lines))
  images, labels = vaex.data.load_mnist_grayscale_subset(path)
  expected = np.array([[int(v) for v in line[:784]] for line in lines], np.float32) / 255
  np.testing.assert_allclose(images, expected, rtol=1e-6)
  np.testing.assert_array_equal(labels, [0, 1, 2, 3])


# ------------------------------------------------------------------------------------------------
# Train/test split of the grayscale subset.


def test_grayscale_split_is_deterministic_disjoint_and_stratified(shared_data):
  images, labels = vaex.data.load_mnist_grayscale_subset(data_dir=shared_data)
  ids = np.arange(len(images))
  train_ids, test_ids = vaex.data.grayscale_train_test_split(ids, labels)
  assert train_ids.shape == (4500,)
  assert test_ids.shape == (500,)
  assert np.intersect1d(train_ids, test_ids).size == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([train_ids, test_ids])), ids)
  np.testing.assert_array_equal(np.bincount(labels[test_ids], minlength=10), [50] * 10)
  # The subset is sorted by digit, so the documented rule picks every 10th image.
  np.testing.assert_array_equal(test_ids, np.arange(9, 5000, 10))

  train, test = vaex.data.grayscale_train_test_split(images, labels)
  train_again, test_again = vaex.data.grayscale_train_test_split(images, labels)
  np.testing.assert_array_equal(train, train_again)
  np.testing.assert_array_equal(test, test_again)
  np.testing.assert_array_equal(test, images[test_ids])
  np.testing.assert_array_equal(train, images[train_ids])
  assert train.dtype == np.float32


def test_grayscale_split_stratifies_unsorted_labels():
  labels = np.random.default_rng(2).permutation(np.repeat(np.arange(10), 100))
  ids = np.arange(labels.size)
  train_ids, test_ids = vaex.data.grayscale_train_test_split(ids, labels, num_test=200)
  assert test_ids.shape == (200,)
  assert train_ids.shape == (800,)
  np.testing.assert_array_equal(np.bincount(labels[test_ids], minlength=10), [20] * 10)
  assert np.all(np.diff(test_ids) > 0)  # Input order is kept.


@pytest.mark.parametrize("num_test", [0, -3, 10])
def test_grayscale_split_bad_num_test(num_test):
  with pytest.raises(ValueError, match="num_test"):
    vaex.data.grayscale_train_test_split(np.zeros((10, 784)), np.zeros(10, int), num_test)


def test_grayscale_split_mismatched_labels():
  with pytest.raises(ValueError, match="one label per image"):
    vaex.data.grayscale_train_test_split(np.zeros((10, 784)), np.zeros(9, int), 2)


# ------------------------------------------------------------------------------------------------
# Import hygiene.


def _run_python(code: str) -> subprocess.CompletedProcess:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      p for p in (os.fspath(_REPO_ROOT), env.get("PYTHONPATH", "")) if p
  )
  return subprocess.run(
      [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
  )


_NO_TF = "assert 'tensorflow' not in sys.modules and 'tensorflow_datasets' not in sys.modules\n"


def test_import_does_not_import_tensorflow():
  result = _run_python("import sys, vaex, vaex.data\n" + _NO_TF)
  assert result.returncode == 0, result.stderr


def test_auto_source_with_files_does_not_import_tensorflow(shared_data):
  code = (
      "import sys, vaex.data\n"
      f"x = vaex.data.load_binarized_mnist('test', data_dir={os.fspath(shared_data)!r})\n"
      "assert x.shape == (10000, 784)\n" + _NO_TF
  )
  result = _run_python(code)
  assert result.returncode == 0, result.stderr
