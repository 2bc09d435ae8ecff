"""Frey Face: the text and .mat readers, their checks and messages, the fixed split, the config, and
experiments/figure2.py's Frey Face panels on a tiny budget.

Format errors use small files written to tmp dirs; the real file is read from the shared data
directory (`../shared/data` from the repository root, else $VAEX_DATA_DIR).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io as scipy_io  # A test dependency (the loader imports it only for .mat files).
from subprocess_env import script_env

import vaex.data
from vaex import experiment
from vaex._src import config as config_lib
from vaex.data import DataFormatError, DataNotFoundError

_REPO_ROOT = Path(__file__).resolve().parents[1]
_SHARED_DATA = _REPO_ROOT.parent / "shared" / "data"
_REAL_SHA256 = "2438ba4f0d2a6bd8bac43de756141eaa33c8d248dd613d464bdb1210d9b7af78"


def _find_real_dir() -> Path | None:
  for directory in (_SHARED_DATA, Path(os.environ.get("VAEX_DATA_DIR", "") or "/nonexistent")):
    if (directory / "frey_faces.txt.gz").is_file():
      return directory
  return None


REAL_DIR = _find_real_dir()
needs_real = pytest.mark.skipif(REAL_DIR is None, reason="frey_faces.txt.gz not in ../shared/data")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
  monkeypatch.delenv("VAEX_DATA_DIR", raising=False)


def _write_text(path: Path, table, compressed: bool = False) -> Path:
  text = "".join(" ".join(str(v) for v in row) + "\n" for row in table).encode()
  path.write_bytes(gzip.compress(text) if compressed else text)
  return path


def _random_pixels(n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, size=(n, 560)).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# The real file.


@needs_real
def test_real_file_shape_values_checksum_and_orientation():
  x = vaex.data.load_frey_face(REAL_DIR)
  assert x.shape == (1965, 560) and x.dtype == np.float32
  assert 0.0 <= x.min() and x.max() <= 1.0
  pixels = np.round(x * 255).astype(np.uint8)
  np.testing.assert_array_equal(pixels.astype(np.float32) / 255, x)  # Exactly value / 255.
  import hashlib

  assert hashlib.sha256(pixels.tobytes()).hexdigest() == _REAL_SHA256
  # Orientation: reshaped row-major to 28 rows x 20 columns, neighbouring pixels are similar (a
  # wrong reshape scrambles them: 0.26 vs 0.15 mean absolute difference), the mean face is
  # left-right symmetric (correlation 0.80 with its mirror image; -0.01 upside down), and the
  # dark band of the eyes is in the upper half: upright faces.
  def roughness(images):
    return np.abs(np.diff(images, axis=1)).mean() + np.abs(np.diff(images, axis=2)).mean()

  faces = x.reshape(-1, 28, 20)
  assert roughness(faces) < 0.7 * roughness(x.reshape(-1, 20, 28))
  mean = faces.mean(0)
  assert np.corrcoef(mean.ravel(), mean[:, ::-1].ravel())[0, 1] > 0.7
  assert np.corrcoef(mean.ravel(), mean[::-1].ravel())[0, 1] < 0.3
  assert int(np.argmin(mean.mean(axis=1))) < 14


@needs_real
def test_real_file_plain_gzip_and_mat_are_identical(tmp_path):
  from_gzip = vaex.data.load_frey_face(REAL_DIR)
  plain = tmp_path / "plain"
  plain.mkdir()
  (plain / "frey_faces.txt").write_bytes(gzip.decompress((REAL_DIR / "frey_faces.txt.gz").read_bytes()))
  np.testing.assert_array_equal(vaex.data.load_frey_face(plain), from_gzip)
  # The original layout: one image a column, `ff: uint8 [560, 1965]`.
  mat = tmp_path / "mat"
  mat.mkdir()
  pixels = np.round(from_gzip * 255).astype(np.uint8)
  scipy_io.savemat(mat / "frey_rawface.mat", {"ff": pixels.T})
  np.testing.assert_array_equal(vaex.data.load_frey_face(mat), from_gzip)
  np.testing.assert_array_equal(vaex.data.load_frey_face(path=mat / "frey_rawface.mat"), from_gzip)


# ------------------------------------------------------------------------------------------------
# Small files: values, checks and messages.


@pytest.mark.parametrize("compressed", [False, True])
def test_small_text_file_loads_without_checksum(tmp_path, compressed):
  pixels = _random_pixels(3)
  name = "frey_faces.txt.gz" if compressed else "frey_faces.txt"
  _write_text(tmp_path / name, pixels, compressed)
  x = vaex.data.load_frey_face(tmp_path, verify_checksum=False)
  assert x.dtype == np.float32 and x.shape == (3, 560)
  np.testing.assert_array_equal(x, pixels.astype(np.float64).astype(np.float32) / np.float32(255))
  with pytest.raises(DataFormatError, match=r"has 3 images; Frey Face has 1965.*verify_checksum"):
    vaex.data.load_frey_face(tmp_path)


def test_small_mat_file_loads_without_checksum(tmp_path):
  pixels = _random_pixels(4)
  scipy_io.savemat(tmp_path / "frey_rawface.mat", {"ff": pixels.T})
  x = vaex.data.load_frey_face(tmp_path, verify_checksum=False)
  np.testing.assert_array_equal(x, pixels / np.float32(255))
  # Double values (MATLAB's default class) holding integers 0..255 are accepted too.
  scipy_io.savemat(tmp_path / "frey_rawface.mat", {"ff": pixels.T.astype(np.float64)})
  np.testing.assert_array_equal(vaex.data.load_frey_face(tmp_path, verify_checksum=False), x)


def test_text_file_is_preferred_over_mat(tmp_path):
  _write_text(tmp_path / "frey_faces.txt", np.zeros((2, 560), np.uint8))
  (tmp_path / "frey_rawface.mat").write_bytes(b"not read")
  assert vaex.data.load_frey_face(tmp_path, verify_checksum=False).shape == (2, 560)


def test_full_size_file_with_other_values_fails_the_checksum(tmp_path):
  _write_text(tmp_path / "frey_faces.txt", _random_pixels(1965))
  with pytest.raises(DataFormatError) as info:
    vaex.data.load_frey_face(tmp_path)
  message = str(info.value)
  assert str(tmp_path / "frey_faces.txt") in message
  assert "differ from the Frey Face data" in message and _REAL_SHA256 in message
  assert "verify_checksum=False" in message


def _line(values) -> str:
  return " ".join(str(v) for v in values) + "\n"


@pytest.mark.parametrize(
    "lines, expected",
    [
        ([_line([1] * 560), _line([1] * 559)],
         r"line 2: expected 560 space-separated grey values \(one 28x20 image\), found 559\. The "
         r"last line is incomplete"),
        ([_line([1] * 561), _line([1] * 560)], r"line 1: expected 560 .*found 561\.$"),
        ([_line([1] * 559 + ["x7"])], r"line 1, value 560: 'x7' is not an integer"),
        ([_line([0] * 560), _line([3] * 10 + [256] + [3] * 549)],
         r"line 2, value 11: grey value 256 is not an integer in 0\.\.255 \(1 such values\)"),
        ([_line([-1] + [0] * 559)], r"line 1, value 1: grey value -1 is not"),
        ([_line([0.5] + [0] * 559)], r"line 1, value 1: '0\.5' is not an integer"),
        ([], r"the file is empty"),
    ],
    ids=["truncated", "too_many", "not_a_number", "above_255", "negative", "fraction", "empty"],
)
def test_text_format_errors_name_the_file_and_line(tmp_path, lines, expected):
  path = tmp_path / "frey_faces.txt"
  path.write_text("".join(lines))
  with pytest.raises(DataFormatError, match=expected) as info:
    vaex.data.load_frey_face(tmp_path, verify_checksum=False)
  assert str(path) in str(info.value)


def test_corrupt_gzip_is_a_format_error(tmp_path):
  path = tmp_path / "frey_faces.txt.gz"
  path.write_bytes(gzip.compress(_line([1] * 560).encode() * 20)[:-30])
  with pytest.raises(DataFormatError, match="not a valid gzip file"):
    vaex.data.load_frey_face(tmp_path, verify_checksum=False)


@pytest.mark.parametrize(
    "contents, expected",
    [
        ({"faces": np.zeros((560, 3), np.uint8)},
         r"has no variable 'ff' \(found \['faces'\]\).*\[560, 1965\]"),
        ({"ff": np.zeros((3, 560), np.uint8)}, r"'ff' has shape \(3, 560\); expected \[560, n\]"),
        ({"ff": np.full((560, 2), 300.0)},
         r"variable ff, image \(column\) 1, pixel 1: grey value 300\.0 is not an integer in 0\.\.255 "
         r"\(1120 such values\)"),
        ({"ff": np.full((560, 2), 0.5)}, r"grey value 0\.5 is not an integer"),
    ],
    ids=["no_ff", "transposed", "above_255", "fraction"],
)
def test_mat_format_errors(tmp_path, contents, expected):
  path = tmp_path / "frey_rawface.mat"
  scipy_io.savemat(path, contents)
  with pytest.raises(DataFormatError, match=expected) as info:
    vaex.data.load_frey_face(tmp_path, verify_checksum=False)
  assert str(path) in str(info.value)


def test_mat_file_that_is_not_a_mat_file(tmp_path):
  path = tmp_path / "frey_rawface.mat"
  path.write_bytes(b"MATLAB? no." * 50)
  with pytest.raises(DataFormatError, match="not a readable MATLAB .mat file.*copy it again"):
    vaex.data.load_frey_face(path=path, verify_checksum=False)


def test_mat_without_scipy_says_scipy_is_a_test_dependency(tmp_path, monkeypatch):
  path = tmp_path / "frey_rawface.mat"
  path.write_bytes(b"")
  monkeypatch.setitem(sys.modules, "scipy.io", None)  # `import scipy.io` raises ImportError.
  with pytest.raises(ImportError, match=r"needs scipy.*only a test dependency.*frey_faces\.txt\.gz"):
    vaex.data.load_frey_face(path=path)


def test_missing_files_lists_every_path_and_the_fix(tmp_path):
  with pytest.raises(DataNotFoundError) as info:
    vaex.data.load_frey_face(tmp_path)
  message = str(info.value)
  for name in ("frey_faces.txt.gz", "frey_faces.txt", "frey_rawface.mat"):
    assert f"{tmp_path / name}: not found" in message
  assert "the `data_dir` argument" in message and "VAEX_DATA_DIR" in message


def test_env_dir_is_used_and_nowhere_to_look_is_reported(tmp_path, monkeypatch):
  with pytest.raises(DataNotFoundError, match="nowhere to look.*VAEX_DATA_DIR"):
    vaex.data.load_frey_face()
  _write_text(tmp_path / "frey_faces.txt", np.zeros((1, 560), np.uint8))
  monkeypatch.setenv("VAEX_DATA_DIR", os.fspath(tmp_path))
  assert vaex.data.load_frey_face(verify_checksum=False).shape == (1, 560)


# ------------------------------------------------------------------------------------------------
# The fixed split.


def test_split_is_fixed_disjoint_and_complete():
  images = np.arange(1965, dtype=np.float32)[:, None] * np.ones((1, 560), np.float32)
  train, test = vaex.data.frey_face_train_test_split(images)
  assert train.shape == (1600, 560) and test.shape == (365, 560)
  train_ids, test_ids = train[:, 0].astype(int), test[:, 0].astype(int)
  assert np.all(np.diff(train_ids) > 0) and np.all(np.diff(test_ids) > 0)  # File order kept.
  np.testing.assert_array_equal(np.sort(np.concatenate([train_ids, test_ids])), np.arange(1965))
  # Pinned: the split must not change between numpy versions or machines.
  np.testing.assert_array_equal(test_ids[:10], [2, 12, 20, 28, 41, 46, 53, 68, 70, 72])
  again = vaex.data.frey_face_train_test_split(images)
  np.testing.assert_array_equal(again[1], test)
  other = vaex.data.frey_face_train_test_split(images, seed=1)[1][:, 0].astype(int)
  assert set(other) != set(test_ids)


@pytest.mark.parametrize("num_test", [0, 1965, -3])
def test_split_bad_num_test(num_test):
  with pytest.raises(ValueError, match="num_test"):
    vaex.data.frey_face_train_test_split(np.zeros((1965, 560)), num_test=num_test)


# ------------------------------------------------------------------------------------------------
# The config.


def _frey_config(**overrides):
  config = experiment.default_config()
  config.dataset = "frey_face"
  config.likelihood = "gaussian"
  config.input_transform = "intensity"
  for key, value in overrides.items():
    config[key] = value
  return config


def test_config_accepts_frey_face_and_checks_the_input_transform():
  experiment.validate_config(_frey_config())
  experiment.validate_config(_frey_config(likelihood="bernoulli",
                                          input_transform="dynamic_binarization"))
  assert config_lib.IMAGE_SHAPES["frey_face"] == (28, 20, 1)
  with pytest.raises(experiment.ConfigError,
                     match=r"config\.input_transform: frey_face holds grey values.*'intensity'"):
    experiment.validate_config(_frey_config(likelihood="bernoulli", input_transform="binary"))
  with pytest.raises(experiment.ConfigError,
                     match=r"config\.dataset: must be one of .*'frey_face'.*got 'frey'"):
    experiment.validate_config(_frey_config(dataset="frey"))


@needs_real
def test_load_datasets_gives_the_fixed_split():
  splits = experiment.load_datasets(_frey_config(data_dir=os.fspath(REAL_DIR)))
  assert splits["train"].shape == (1600, 560) and splits["test"].shape == (365, 560)
  assert splits["valid"] is splits["test"]
  assert splits["train"].dtype == np.float32


# ------------------------------------------------------------------------------------------------
# experiments/figure2.py, the Frey Face row, on a tiny budget.


@needs_real
@pytest.mark.slow
def test_figure2_frey_face_panels_tiny_budget(tmp_path):
  env = script_env()
  out = subprocess.run(
      [sys.executable, str(_REPO_ROOT / "experiments" / "figure2.py"), f"--workdir={tmp_path}",
       f"--data_dir={REAL_DIR}", "--datasets=frey_face", "--frey_epochs=1", "--frey_latent_dims=2"],
      capture_output=True, text=True, timeout=600, env=env, cwd=_REPO_ROOT,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert "Frey Face aevb       Nz=  2: test ELBO" in out.stdout
  summary = json.loads((tmp_path / "figure2.json").read_text())
  assert sorted(summary) == ["frey_face_aevb_nz2", "frey_face_wake_sleep_nz2"]
  for row in summary.values():
    assert row["epochs"] == 1 and np.isfinite(row["test_elbo"]) and np.isfinite(row["train_elbo"])
  for algorithm in ("aevb", "wake_sleep"):
    metrics = (tmp_path / "frey_face" / f"{algorithm}_nz2" / "metrics.jsonl").read_text()
    assert '"test_elbo"' in metrics
  assert (tmp_path / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
