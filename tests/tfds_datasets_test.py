"""MNIST, Fashion-MNIST and CIFAR-10 through tensorflow-datasets, offline.

`tfds.testing.mock_data` stands in for the prepared data (8 random examples per split, built from
each data set's feature spec); nothing here touches the network: the failing download is a stub.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import vaex.data
from vaex import experiment
from vaex._src import config as config_lib
from vaex._src import data as data_lib
from vaex.data import DataNotFoundError

tfds = pytest.importorskip("tensorflow_datasets")

NAMES = ("mnist", "fashion_mnist", "cifar10")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
  """No test sees the caller's VAEX_DATA_DIR, TFDS_DATA_DIR or ~/tensorflow_datasets."""
  monkeypatch.delenv("VAEX_DATA_DIR", raising=False)
  monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
  home = tmp_path / "home"
  home.mkdir()
  monkeypatch.setenv("HOME", os.fspath(home))


def _mock():
  return tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE)


@pytest.mark.parametrize("name", NAMES)
def test_images_are_flat_intensities_of_the_right_shape(name, tmp_path):
  with _mock():
    images = vaex.data.load_tfds_images(name, "train", tmp_path)
  height, width, channels = vaex.data.TFDS_IMAGE_SHAPES[name]
  assert images.shape == (8, height * width * channels) and images.dtype == np.float32
  assert 0.0 <= images.min() and images.max() <= 1.0
  pixels = images * 255
  np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-4)  # Exactly uint8 / 255.
  assert images.std() > 0.1  # The mock's uniform random pixels, not a constant.
  assert config_lib.IMAGE_SHAPES[name] == (height, width, channels)


def test_load_datasets_uses_train_and_test_and_test_as_valid(tmp_path):
  config = experiment.default_config()
  config.dataset, config.input_transform = "mnist", "dynamic_binarization"
  config.data_dir = os.fspath(tmp_path)
  config.batch_size = 4
  experiment.validate_config(config)
  with _mock():
    splits = experiment.load_datasets(config)
  assert splits["train"].shape == (8, 784) and splits["test"].shape == (8, 784)
  assert splits["valid"] is splits["test"]


def test_not_prepared_and_download_not_allowed_is_one_clear_error(tmp_path):
  with pytest.raises(DataNotFoundError) as info:
    vaex.data.load_tfds_images("mnist", "test", tmp_path, download=False)
  message = str(info.value)
  assert "tensorflow-datasets data set 'mnist' (split 'test')" in message
  assert f"{tmp_path / 'mnist'}/<version>/dataset_info.json (from the `data_dir` argument)" in message
  home_tfds = os.path.join(os.environ["HOME"], "tensorflow_datasets", "mnist")
  assert f"{home_tfds}/<version>/dataset_info.json (from tensorflow-datasets' default" in message
  assert "download=False" in message
  assert "tfds.builder('mnist', data_dir='/tmp/tfds').download_and_prepare()" in message
  assert f"into {tmp_path}/ here" in message


def test_failed_download_is_one_clear_error_naming_the_cause(tmp_path, monkeypatch):
  calls = []

  def no_network(tfds_module, name, directory):
    calls.append((name, directory))
    raise ConnectionError("Failed to resolve 'storage.googleapis.com' (no network)")

  monkeypatch.setattr(data_lib, "_tfds_download_and_prepare", no_network)
  monkeypatch.setenv("VAEX_DATA_DIR", os.fspath(tmp_path))
  with pytest.raises(DataNotFoundError) as info:
    vaex.data.load_tfds_images("cifar10", "train")
  assert calls == [("cifar10", tmp_path)]  # Downloads go to the data dir.
  message = str(info.value)
  assert "data set 'cifar10' (split 'train')" in message
  assert "(from the VAEX_DATA_DIR environment variable)" in message
  assert (f"Downloading and preparing it in {tmp_path} failed: ConnectionError: Failed to resolve "
          in message)
  assert "tfds.builder('cifar10', data_dir='/tmp/tfds').download_and_prepare()" in message
  assert isinstance(info.value.__cause__, ConnectionError)


def test_the_pipeline_reports_missing_tfds_data_as_data_not_found(tmp_path, monkeypatch):
  def no_network(tfds_module, name, directory):
    raise OSError("Network is unreachable")

  monkeypatch.setattr(data_lib, "_tfds_download_and_prepare", no_network)
  config = experiment.default_config()
  config.dataset, config.likelihood, config.input_transform = "fashion_mnist", "gaussian", "intensity"
  config.data_dir = os.fspath(tmp_path)
  with pytest.raises(DataNotFoundError, match="(?s)'fashion_mnist' .*Network is unreachable"):
    experiment.load_datasets(config)


def test_prepared_data_is_found_without_tfds(tmp_path):
  version = tmp_path / "mnist" / "3.0.1"
  (tmp_path / "mnist" / "incomplete.abc").mkdir(parents=True)
  (tmp_path / "mnist" / "incomplete.abc" / "dataset_info.json").write_text("{}")
  assert not data_lib._tfds_prepared_in("mnist", tmp_path)  # Still being written: not prepared.
  version.mkdir()
  (version / "dataset_info.json").write_text("{}")
  assert data_lib._tfds_prepared_in("mnist", tmp_path)
  assert not data_lib._tfds_prepared_in("cifar10", tmp_path)


def test_bad_name_and_split():
  with pytest.raises(ValueError, match=r"`name` must be one of \('mnist', 'fashion_mnist', 'cifar10'\)"):
    vaex.data.load_tfds_images("svhn", "train")
  with pytest.raises(ValueError, match="`split` must be 'train' or 'test'.*no validation split"):
    vaex.data.load_tfds_images("mnist", "valid")


def test_config_checks_the_input_transform_of_tfds_data_sets():
  config = experiment.default_config()
  config.dataset = "cifar10"  # Default transform "binary": wrong for grey values.
  with pytest.raises(experiment.ConfigError,
                     match=r"config\.input_transform: cifar10 holds grey values"):
    experiment.validate_config(config)
  config.input_transform = "dynamic_binarization"
  experiment.validate_config(config)
  config.likelihood, config.input_transform = "gaussian", "intensity"
  experiment.validate_config(config)


@pytest.mark.slow
def test_tiny_cifar10_run_draws_color_grids(tmp_path):
  """End to end on the mock: a Gaussian MLP on [n, 3072] data, and RGB sample grids."""
  import matplotlib.image

  config = experiment.default_config()
  config.dataset, config.likelihood, config.input_transform = "cifar10", "gaussian", "intensity"
  config.data_dir = os.fspath(tmp_path / "data")
  config.latent_dim, config.hidden_sizes = 2, (8,)
  config.batch_size, config.num_epochs, config.num_devices = 4, 1, 1
  config.eval_batch_size, config.eval_iwae_samples, config.num_sample_images = 8, 2, 4
  with _mock():
    result = experiment.train_and_evaluate(config, os.fspath(tmp_path / "run"))
  assert np.isfinite(result["test_elbo"])
  picture = matplotlib.image.imread(tmp_path / "run" / "reconstructions.png")[..., :3]
  # The test images are the mock's random RGB pixels: their channels differ.
  assert np.abs(picture[..., 0] - picture[..., 1]).max() > 0.2
  samples = matplotlib.image.imread(tmp_path / "run" / "samples.png")
  assert samples.shape[1] >= 2 * 2 * 32  # Two 32-pixel images a row, zoomed at least 2x.
