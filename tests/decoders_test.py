"""The pixel-likelihood MLP decoders and their E[x|z] helpers, against float64 numpy and scipy; their
configs, refused and trained through `vaex.experiment`."""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

import vaex
from vaex import experiment
from vaex._src import decoders

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))

PIXEL_DECODERS = {
    "categorical": vaex.CategoricalMLPDecoder,
    "discretized_logistic": vaex.DiscretizedLogisticMLPDecoder,
    "continuous_bernoulli": vaex.ContinuousBernoulliMLPDecoder,
}


def test_categorical_likelihood_reads_every_8bit_intensity_as_its_class():
  levels = np.arange(256)
  x = (levels.astype(np.float32) / np.float32(255.0))[None]  # The pipeline's float32 k / 255.
  logits = np.random.default_rng(0).normal(size=(1, 256, 256)).astype(np.float32) * 3
  got = decoders.intensity_categorical_log_likelihood(jnp.asarray(x), jnp.asarray(logits))
  log_probs = special.log_softmax(logits.astype(np.float64), axis=-1)
  want = log_probs[0, levels, levels].sum()
  np.testing.assert_allclose(float(got[0]), want, rtol=1e-5)
  # Off by one level changes the value: the rounding picks exactly class k.
  shifted = decoders.intensity_categorical_log_likelihood(
      jnp.asarray(np.minimum(x + 1 / 255, 1.0)), jnp.asarray(logits))
  assert abs(float(shifted[0]) - want) > 1.0


def test_categorical_likelihood_gives_nan_outside_unit_interval():
  logits = jnp.zeros((1, 2, 256))
  out = decoders.intensity_categorical_log_likelihood(jnp.array([[0.5, 1.5]]), logits)
  assert np.isnan(float(out[0]))
  with pytest.raises(TypeError, match="`x`"):
    decoders.intensity_categorical_log_likelihood(jnp.array([[0, 1]]), logits)


def test_categorical_mean_matches_float64():
  logits = np.random.default_rng(1).normal(size=(3, 5, 256)) * 4
  want = special.softmax(logits, axis=-1) @ (np.arange(256) / 255)
  np.testing.assert_allclose(decoders.categorical_mean(jnp.asarray(logits, jnp.float32)), want,
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_bins", [256, 4])
def test_discretized_logistic_mean_matches_scipy_bin_probabilities(num_bins):
  mean = np.array([-0.3, 0.0, 0.2, 0.5, 0.97, 1.4, 0.5])
  log_scale = np.array([-2.0, -5.0, -1.0, 0.5, -9.0, -3.0, -20.0])  # -9, -20: below the floor.
  scale = np.exp(np.maximum(log_scale, -8.0))
  k = np.arange(num_bins)[:, None]
  upper = stats.logistic.cdf((k + 0.5) / (num_bins - 1), mean, scale)
  lower = stats.logistic.cdf((k - 0.5) / (num_bins - 1), mean, scale)
  upper[-1], lower[0] = 1.0, 0.0  # Open-ended end bins.
  want = np.sum((upper - lower) * k / (num_bins - 1), axis=0)
  got = decoders.discretized_logistic_mean(
      (jnp.asarray(mean, jnp.float32), jnp.asarray(log_scale, jnp.float32)), num_bins)
  np.testing.assert_allclose(got, want, atol=2e-6)


def test_discretized_logistic_mean_is_the_mean_of_the_likelihood():
  """E over the 256 bins with the likelihood's own bin probabilities (exp of its log values)."""
  mean, log_scale = jnp.array([0.3, -0.1]), jnp.array([-3.0, -1.0])
  bins = jnp.arange(256, dtype=jnp.float32) / 255
  log_p = jax.vmap(lambda v: jax.vmap(lambda m, s: vaex.discretized_logistic_log_likelihood(
      v[None], (m[None], s[None])))(mean, log_scale))(bins)  # [256, 2]
  want = jnp.sum(jnp.exp(log_p) * bins[:, None], axis=0)
  np.testing.assert_allclose(decoders.discretized_logistic_mean((mean, log_scale)), want, atol=2e-6)


def _cb_mean_by_quadrature(logit):
  lam = special.expit(logit)
  density = lambda x: lam**x * (1 - lam) ** (1 - x)  # noqa: E731
  return integrate.quad(lambda x: x * density(x), 0, 1)[0] / integrate.quad(density, 0, 1)[0]


@pytest.mark.parametrize("logit", [-30.0, -4.0, -0.7, -0.5, -0.49, -0.1, -1e-3, 0.0, 1e-4, 0.3,
                                   0.5, 0.51, 2.0, 12.0])
def test_continuous_bernoulli_mean_matches_quadrature(logit):
  got = float(decoders.continuous_bernoulli_mean(jnp.float32(logit)))
  np.testing.assert_allclose(got, _cb_mean_by_quadrature(logit), rtol=2e-6, atol=1e-7)


def test_continuous_bernoulli_mean_is_finite_at_extreme_logits():
  got = decoders.continuous_bernoulli_mean(jnp.array([-1e4, -80.0, 80.0, 1e4]))
  np.testing.assert_allclose(got, [1e-4, 1 / 80, 1 - 1 / 80, 1 - 1e-4], rtol=1e-5)


@pytest.mark.parametrize("name", sorted(PIXEL_DECODERS))
def test_pixel_mlp_decoder_shapes_mean_and_bound(name):
  decoder = PIXEL_DECODERS[name](data_dim=12, hidden_sizes=(8,))
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=3, hidden_sizes=(8,)), decoder)
  x = jnp.asarray(np.random.default_rng(2).integers(0, 256, (5, 12)) / 255, jnp.float32)
  params = model.init(jax.random.key(0), x)
  out = model.apply(params, x)
  leaves = jax.tree.leaves(out)
  want = (5, 12, 256) if name == "categorical" else (5, 12)
  assert [leaf.shape for leaf in leaves] == [want] * len(leaves)
  mean = model.apply(params, jnp.zeros((5, 3)), method=vaex.VAE.decoder_mean)
  assert mean.shape == (5, 12) and bool(jnp.all((mean >= 0) & (mean <= 1)))
  assert model.log_likelihood is type(decoder).log_likelihood
  for estimator in ("B", "iwae"):
    value = vaex.bound(params, jax.random.key(1), x, model, estimator=estimator, num_samples=3)
    assert value.shape == (5,) and bool(jnp.all(jnp.isfinite(value)))


def _pixel_config(likelihood, **overrides):
  config = experiment.default_config()
  config.dataset = "mnist5k_grayscale"
  config.data_dir = str(DATA_DIR)
  config.input_transform = "intensity"
  config.likelihood = likelihood
  config.num_train_examples = 100
  config.batch_size = 50
  config.num_epochs = 1
  config.latent_dim = 4
  config.hidden_sizes = (8,)
  config.eval_batch_size = 100
  config.eval_iwae_samples = 2
  config.num_sample_images = 4
  config.num_devices = 1
  for key, value in overrides.items():
    config[key] = value
  return config


@pytest.mark.parametrize("likelihood", sorted(PIXEL_DECODERS))
def test_pixel_likelihood_conv_configs_train_and_draw(tmp_path, likelihood):
  """Two steps of a tiny conv VAE through the whole pipeline on 8-bit grey values (k / 255)."""
  config = _pixel_config(likelihood, architecture="conv", conv_features=(4, 8))
  result = experiment.train_and_evaluate(config, str(tmp_path))
  assert result["epoch"] == 1 and np.isfinite(result["test_elbo"])
  assert (tmp_path / "samples.png").stat().st_size > 0


@pytest.mark.parametrize("likelihood", sorted(PIXEL_DECODERS))
def test_configs_build_the_pixel_mlp_decoders(likelihood):
  model = experiment.build_model(_pixel_config(likelihood), 784)
  assert type(model.decoder) is PIXEL_DECODERS[likelihood]
  assert model.decoder.hidden_sizes == (8,) and model.decoder.data_dim == 784


@pytest.mark.parametrize("overrides, match", [
    (dict(likelihood="categorical", input_transform="dynamic_binarization"),
     r"config\.likelihood: 'categorical' models 8-bit.*'dynamic_binarization'"),
    (dict(dataset="binarized_mnist", likelihood="discretized_logistic", input_transform="binary"),
     r"config\.likelihood: 'discretized_logistic' models 8-bit.*'binary'"),
    (dict(likelihood="continuous_bernoulli", input_transform="dynamic_binarization"),
     r"config\.likelihood: 'continuous_bernoulli' is a density on \[0, 1\].*unbounded"),
    (dict(likelihood="categorical", algorithm="wake_sleep"), r"config\.algorithm: .*wake-sleep"),
    (dict(likelihood="poisson"), r"config\.likelihood: must be one of"),
])
def test_pixel_likelihoods_that_do_not_fit_the_data_are_refused(tmp_path, overrides, match):
  config = _pixel_config("categorical")
  config.update(overrides)
  with pytest.raises(experiment.ConfigError, match=match):
    experiment.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
