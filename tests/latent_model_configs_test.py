"""The posterior and prior config keys: checks, and tiny runs trained and evaluated end to end."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from vaex import experiment

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))


def _tiny(**overrides):
  config = experiment.default_config()
  config.update(dict(
      data_dir=str(DATA_DIR), num_train_examples=200, batch_size=100, num_epochs=1, latent_dim=4,
      hidden_sizes=(16,), eval_batch_size=500, eval_iwae_samples=8, num_sample_images=4,
      num_devices=1, estimator="A", num_flows=2, num_components=3))
  config.update(overrides)
  return config


@pytest.mark.parametrize("latent", [
    dict(posterior="full_covariance"), dict(posterior="flow"), dict(prior="mixture"),
    dict(prior="vamp", estimator="iwae", num_samples=2)], ids=lambda d: "-".join(map(str, d.values())))
def test_tiny_run_trains_and_evaluates(tmp_path, latent):
  config = _tiny(**latent)
  result = experiment.train_and_evaluate(config, str(tmp_path))
  assert result["step"] == 2 and np.isfinite(result["test_elbo"]) and result["test_elbo"] < 0
  record = experiment.evaluate_checkpoint(config, str(tmp_path), num_test_examples=50)
  assert np.isfinite(record["test_log_likelihood"]) and record["test_log_likelihood"] < 0
  closed_form = latent.get("posterior") == "full_covariance"  # Its KL to N(0, I) is closed form.
  assert record["test_elbo_estimator"] == ("B" if closed_form else "A")
  assert "kl_per_dimension" not in record
  assert 0 <= record["active_units"] <= 4
  assert (tmp_path / "samples.png").stat().st_size > 0
  assert json.loads((tmp_path / "config.json").read_text())[next(iter(latent))] == latent[
      next(iter(latent))]


def test_old_run_without_the_new_keys_still_resumes(tmp_path):
  defaults = experiment.default_config()
  old = dict(estimator="B", num_flows=defaults.num_flows, num_components=defaults.num_components)
  experiment.train_and_evaluate(_tiny(**old), str(tmp_path))
  stored = json.loads((tmp_path / "config.json").read_text())
  for key in ("posterior", "num_flows", "prior", "num_components"):
    del stored[key]
  (tmp_path / "config.json").write_text(json.dumps(stored))
  result = experiment.train_and_evaluate(_tiny(**old, num_epochs=2), str(tmp_path))
  assert result["step"] == 4


@pytest.mark.parametrize("overrides, key, message", [
    (dict(posterior="normal"), "posterior", "must be one of"),
    (dict(prior="gmm"), "prior", "must be one of"),
    (dict(num_flows=-1), "num_flows", "int >= 0"),
    (dict(num_components=0), "num_components", "int >= 1"),
    (dict(posterior="flow", estimator="B"), "estimator", "closed form.*estimator='A' or 'iwae'"),
    (dict(posterior="full_covariance", prior="mixture", estimator="B"), "estimator", "closed form"),
    (dict(posterior="full_covariance", estimator="B", free_bits=0.5), "free_bits", "diagonal"),
    (dict(prior="mixture", estimator="B"), "estimator", "closed form"),
    (dict(prior="vamp", estimator="B", free_bits=0.5), "estimator", "closed form"),
    (dict(posterior="flow", algorithm="wake_sleep"), "posterior", "wake-sleep"),
    (dict(prior="mixture", algorithm="wake_sleep"), "prior", "wake-sleep"),
    (dict(prior="vamp", posterior="flow"), "prior", "VampPrior.*posterior='diagonal'"),
])
def test_nonsense_combinations_are_refused_naming_the_key(overrides, key, message):
  with pytest.raises(experiment.ConfigError, match=rf"config\.{key}: .*{message}"):
    experiment.validate_config(_tiny(**overrides))


def test_free_bits_refused_with_a_mixture_prior():
  config = _tiny(prior="mixture")
  config.free_bits = 0.5
  config.estimator = "B"
  with pytest.raises(experiment.ConfigError, match="config.estimator"):
    experiment.validate_config(config)


def test_full_covariance_with_estimator_b_uses_its_closed_form_kl(tmp_path):
  config = _tiny(posterior="full_covariance", estimator="B", num_epochs=1)
  experiment.validate_config(config)
  result = experiment.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(result["test_elbo"])
  record = experiment.evaluate_checkpoint(config, str(tmp_path))
  assert record["test_elbo_estimator"] == "B"


def test_conv_architecture_takes_only_the_diagonal_posterior():
  config = _tiny(posterior="flow")
  config.architecture = "conv"
  with pytest.raises(experiment.ConfigError, match="config.posterior: .*architecture='conv'"):
    experiment.validate_config(config)


@pytest.mark.parametrize("name", ["vamp_prior", "flow_posterior", "full_covariance"])
def test_the_configs_build_their_models(name):
  import importlib.util

  import jax

  spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  experiment.validate_config(config)
  model = experiment.build_model(config, 784)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jax.numpy.zeros((1, 784)))
  assert "encoder" in shapes["params"]
  assert ("prior" in shapes["params"]) == (config.prior != "standard_normal")


@pytest.mark.parametrize("likelihood, outputs_per_pixel", [("bernoulli", 1), ("categorical", 256)])
def test_iwae_chunks_bound_the_decoder_outputs_whatever_the_likelihood(likelihood, outputs_per_pixel):
  import jax

  from vaex._src import builders, run_evaluation

  config = _tiny(likelihood=likelihood, dataset="mnist5k_grayscale",
                 input_transform="binary" if likelihood == "bernoulli" else "intensity")
  model = builders.build_model(config, 784)
  params = model.init(jax.random.key(0), np.zeros((1, 784), np.float32))
  batch, chunk = run_evaluation.iwae_chunking(model, params, config.latent_dim, 5000, 2)
  assert batch % 2 == 0
  outputs = batch * chunk * 784 * outputs_per_pixel
  assert outputs <= run_evaluation.IWAE_CHUNK_OUTPUTS  # 4 GB of categorical logits before: 5,000 rows.
  if likelihood == "bernoulli":
    assert (batch, chunk) == (10, 500)  # Unchanged for the benchmark models.
  else:
    assert outputs >= run_evaluation.IWAE_CHUNK_OUTPUTS // 2
