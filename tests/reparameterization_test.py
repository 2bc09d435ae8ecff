"""The reparameterization trick: shapes, moments, determinism, independence, gradients, bad keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vaex

MEAN = jnp.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
LOG_VAR = jnp.array([[0.0, -1.0, 1.0], [-3.0, 0.5, 2.0]])


def test_shape_and_dtype(variant, key):
  z = variant(lambda k: vaex.reparameterize(k, MEAN, LOG_VAR, num_samples=4))(key)
  assert z.shape == (4, 2, 3) and z.dtype == jnp.float32


def test_moments_match_the_distribution(key):
  n = 100_000
  z = np.asarray(vaex.reparameterize(key, MEAN, LOG_VAR, num_samples=n), np.float64)
  std = np.exp(0.5 * np.asarray(LOG_VAR, np.float64))
  # Sample mean within 4 standard errors; sample variance within 4 of its standard errors.
  assert np.all(np.abs(z.mean(0) - MEAN) < 4 * std / np.sqrt(n))
  var_se = std**2 * np.sqrt(2.0 / (n - 1))
  assert np.all(np.abs(z.var(0, ddof=1) - std**2) < 4 * var_se)


def test_same_key_same_samples_and_split_keys_differ(key):
  a = vaex.reparameterize(key, MEAN, LOG_VAR, num_samples=3)
  b = vaex.reparameterize(key, MEAN, LOG_VAR, num_samples=3)
  np.testing.assert_array_equal(a, b)
  keys = jax.random.split(key, 2000)
  zs = jax.vmap(lambda k: vaex.reparameterize(k, MEAN, LOG_VAR))(keys)[:, 0]  # [2000, 2, 3]
  eps = (np.asarray(zs) - np.asarray(MEAN)) / np.exp(0.5 * np.asarray(LOG_VAR))
  flat = eps.reshape(len(keys), -1)
  # Independent draws across keys: consecutive keys uncorrelated (|r| < 4/sqrt(n)).
  r = np.corrcoef(flat[:-1].ravel(), flat[1:].ravel())[0, 1]
  assert abs(r) < 4 / np.sqrt(flat[:-1].size)
  assert len(np.unique(flat[:, 0])) == len(keys)


def test_gradients_are_the_reparameterization_derivatives(key):
  def first_sample_sum(mean, log_var):
    return vaex.reparameterize(key, mean, log_var).sum()

  d_mean, d_log_var = jax.grad(first_sample_sum, argnums=(0, 1))(MEAN, LOG_VAR)
  eps = (vaex.reparameterize(key, MEAN, LOG_VAR)[0] - MEAN) / jnp.exp(0.5 * LOG_VAR)
  np.testing.assert_allclose(d_mean, np.ones_like(MEAN))
  np.testing.assert_allclose(d_log_var, 0.5 * jnp.exp(0.5 * LOG_VAR) * eps, rtol=1e-5, atol=1e-6)


def test_legacy_uint32_keys_are_accepted():
  z = vaex.reparameterize(jax.random.PRNGKey(0), MEAN, LOG_VAR)
  assert z.shape == (1, 2, 3)


@pytest.mark.parametrize(
    "bad_key", [0, np.float32(1.0), jnp.zeros((3,), jnp.uint32), jnp.zeros(2, jnp.float32)]
)
def test_not_a_key_is_refused(bad_key):
  with pytest.raises(TypeError, match=r"`key` must be a jax.random key.*jax.random.key\(seed\)"):
    vaex.reparameterize(bad_key, MEAN, LOG_VAR)


def test_a_batch_of_keys_is_refused(key):
  with pytest.raises(TypeError, match=r"`key` must be a single PRNG key.*vmap"):
    vaex.reparameterize(jax.random.split(key, 3), MEAN, LOG_VAR)


@pytest.mark.parametrize(
    "num_samples, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_bad_num_samples(key, num_samples, error):
  with pytest.raises(error, match="`num_samples`"):
    vaex.reparameterize(key, MEAN, LOG_VAR, num_samples=num_samples)


def test_mismatched_mean_and_log_var(key):
  with pytest.raises(ValueError, match=r"`mean` and `log_var` must have the same shape"):
    vaex.reparameterize(key, MEAN, LOG_VAR[:, :2])
