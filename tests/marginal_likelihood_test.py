"""The importance-sampled marginal log-likelihood and the posterior diagnostics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bounds_test import NOISE_STD, _linear_gaussian, _linear_gaussian_bounds, _small_vae
from scipy import stats

import vaex
from vaex._src import evaluation


@pytest.mark.parametrize("num_samples, chunk_size", [(1, 1), (1000, 300), (1000, 5000)])
def test_exact_with_the_true_posterior_for_any_chunking(variant, num_samples, chunk_size):
  x, exact, encode, decode, kwargs = _linear_gaussian_bounds()
  got = variant(lambda k, x: vaex.importance_sampled_log_likelihood(
      k, x, encode, decode, num_samples=num_samples, chunk_size=chunk_size, **kwargs))(
          jax.random.key(0), x)
  np.testing.assert_allclose(got, exact, rtol=2e-6, atol=5e-5)


def test_converges_to_the_exact_log_likelihood_with_a_poor_proposal_and_increases_with_k():
  """With the prior as proposal the log-weights vary, so the estimate is biased low for small k and
  approaches log p(x) = log N(x; b, WW^T + s^2 I) as k grows."""
  w, b, x, _ = _linear_gaussian()
  x = x[:3].astype(np.float32) / 4  # Closer to the prior's reach, so k = 5000 suffices.
  exact = stats.multivariate_normal(b, w @ w.T + NOISE_STD**2 * np.eye(w.shape[0])).logpdf(x)
  _, _, _, decode, kwargs = _linear_gaussian_bounds()
  prior = lambda x: (jnp.zeros((x.shape[0], 3)), jnp.zeros((x.shape[0], 3)))  # noqa: E731
  estimates = {}
  for k in (10, 5000):
    keys = jax.random.split(jax.random.key(k), 20)
    values = jax.vmap(lambda key, k=k: vaex.importance_sampled_log_likelihood(
        key, x, prior, decode, num_samples=k, chunk_size=1000, **kwargs))(keys)
    estimates[k] = np.asarray(values, np.float64)
  gap_small = exact - estimates[10].mean(0)
  gap_large = exact - estimates[5000].mean(0)
  assert np.all(gap_large < gap_small)  # Increases with k.
  assert np.all(np.abs(gap_large) < 0.05), gap_large


def test_is_at_least_the_elbo_on_average():
  _, _, x, encode, decode = _small_vae()
  keys = jax.random.split(jax.random.key(3), 200)
  ll = jax.vmap(lambda k: vaex.importance_sampled_log_likelihood(
      k, x, encode, decode, num_samples=100, chunk_size=30))(keys)
  elbo = jax.vmap(lambda k: vaex.elbo(k, x, encode, decode))(keys)
  assert np.all(np.asarray(ll).mean(0) > np.asarray(elbo).mean(0))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_samples=0), ValueError, "`num_samples` must be >= 1"),
    (dict(num_samples=10, chunk_size=0), ValueError, "`chunk_size` must be >= 1"),
    (dict(num_samples=2.5), TypeError, "`num_samples`"),
])
def test_bad_sample_counts(kwargs, error, match):
  _, _, x, encode, decode = _small_vae()
  with pytest.raises(error, match=match):
    vaex.importance_sampled_log_likelihood(jax.random.key(0), x, encode, decode, **kwargs)


def test_dataset_log_likelihood_runs_in_batches_with_a_remainder():
  model, params, x, _, _ = _small_vae()
  data = np.concatenate([x] * 5)[:27].astype(np.uint8)  # 27 examples, batches of 10.
  fn = evaluation.make_dataset_bound(model, estimator="log_likelihood", num_samples=64,
                                     chunk_size=20, batch_size=10)
  values = np.asarray(fn(params, jax.random.key(0), jnp.asarray(data)))
  assert values.shape == (27,) and np.all(np.isfinite(values))
  elbo = np.asarray(evaluation.make_dataset_bound(model, batch_size=10)(
      params, jax.random.key(0), jnp.asarray(data)))
  assert values.mean() > elbo.mean()


def test_empty_split_is_refused():
  model, params, _, _, _ = _small_vae()
  with pytest.raises(ValueError, match="empty"):
    evaluation.make_dataset_bound(model, batch_size=10)(
        params, jax.random.key(0), jnp.zeros((0, 10), jnp.uint8))


def test_kl_per_dimension_sums_to_the_kl():
  mean = jnp.array([[0.5, -1.0, 0.0]])
  log_var = jnp.array([[0.2, -0.3, 0.0]])
  per_dim = vaex.kl_per_dimension(mean, log_var)
  assert per_dim.shape == (1, 3) and float(per_dim[0, 2]) == 0.0
  np.testing.assert_allclose(per_dim.sum(-1), vaex.gaussian_kl(mean, log_var), rtol=1e-6)


def test_active_units_counts_dimensions_whose_mean_moves_with_x():
  rng = np.random.default_rng(0)
  means = np.stack([rng.normal(0, 1.0, 1000), rng.normal(0, 0.05, 1000),  # var 0.0025: inactive
                    rng.normal(0, 0.2, 1000), np.full(1000, 3.0)], axis=1)  # var 0.04: active
  assert int(vaex.active_units(jnp.asarray(means, jnp.float32))) == 2
