"""Mixture and VampPrior priors: densities against scipy, sampling moments, and the VAE plumbing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import vaex

K, DIM, DATA, HIDDEN = 3, 2, 12, 16


def _mixture(key):
  k1, k2, k3 = jax.random.split(key, 3)
  return vaex.DiagGaussianMixture(jax.random.normal(k1, (K,)), 2.0 * jax.random.normal(k2, (K, DIM)),
                                  0.5 * jax.random.normal(k3, (K, DIM)))


def test_mixture_log_prob_is_a_logsumexp_of_scipy_densities(key, variant):
  p = _mixture(key)
  z = jax.random.normal(jax.random.key(1), (4, 5, DIM)) * 3.0  # [L, batch, D]
  log_p = variant(lambda p, z: p.log_prob(z))(p, z)
  assert log_p.shape == (4, 5) and p.event_shape == (DIM,) and p.batch_shape == ()
  zz = np.asarray(z, np.float64)
  log_w = np.log(special.softmax(np.asarray(p.logits, np.float64)))
  comps = [np.sum(stats.norm(np.asarray(p.means[k], np.float64),
                             np.exp(0.5 * np.asarray(p.log_vars[k], np.float64))).logpdf(zz), -1)
           for k in range(K)]
  expected = special.logsumexp(np.stack(comps, -1) + log_w, axis=-1)
  np.testing.assert_allclose(log_p, expected, rtol=1e-5, atol=1e-5)


def test_mixture_log_prob_is_finite_far_away(key):
  p = _mixture(key)
  assert np.all(np.isfinite(p.log_prob(jnp.full((2, DIM), 1e4))))


def test_mixture_sample_moments(key):
  p = _mixture(key)
  n = 100_000
  z = np.asarray(p.sample(seed=jax.random.key(2), sample_shape=(n,)), np.float64)
  assert z.shape == (n, DIM)
  w = special.softmax(np.asarray(p.logits, np.float64))
  means, var = np.asarray(p.means, np.float64), np.exp(np.asarray(p.log_vars, np.float64))
  mean = w @ means
  second = w @ (var + means**2)
  variance = second - mean**2
  np.testing.assert_array_less(np.abs(z.mean(0) - mean), 4 * np.sqrt(variance / n))
  # Var of the sample second moment is Var(z^2) / n; bound it by the sample's own estimate.
  se_second = np.sqrt(np.var(z**2, axis=0) / n)
  np.testing.assert_array_less(np.abs((z**2).mean(0) - second), 4 * se_second)


def test_sample_prior_draws_from_the_mixture(key):
  p = _mixture(key)
  z = vaex.sample_prior(jax.random.key(3), p, 7, (DIM,))
  assert z.shape == (7, DIM)


def _model(prior, encoder=None):
  encoder = encoder or vaex.MLPEncoder(latent_dim=DIM, hidden_sizes=(HIDDEN,))
  return vaex.VAE(encoder, vaex.BernoulliMLPDecoder(data_dim=DATA, hidden_sizes=(HIDDEN,)), prior)


def _x(key):
  return (jax.random.uniform(key, (5, DATA)) < 0.5).astype(jnp.float32)


def test_mixture_prior_module_parameters_and_bound(key):
  model = _model(vaex.MixturePrior(latent_dim=DIM, num_components=K))
  params = model.init(key, _x(key))
  prior_params = params["params"]["prior"]
  assert prior_params["means"].shape == (K, DIM) and prior_params["log_vars"].shape == (K, DIM)
  assert prior_params["logits"].shape == (K,)
  p = vaex.prior_distribution(model, params)
  np.testing.assert_array_equal(p.means, prior_params["means"])
  # The VAE's bound is the bound with that prior object; the prior's parameters get gradients.
  x = _x(jax.random.key(1))
  encode, decode = vaex.encoder_decoder(model, params)
  expected = vaex.iwae_bound(jax.random.key(2), x, encode, decode, prior=p, num_samples=4)
  np.testing.assert_allclose(
      vaex.bound(params, jax.random.key(2), x, model, estimator="iwae", num_samples=4), expected,
      rtol=1e-6)
  grads = jax.jit(jax.grad(lambda p: vaex.loss(p, key, x, model, estimator="A")))(params)
  assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads["params"]["prior"]))
  with pytest.raises(ValueError, match="closed form.*DiagGaussianMixture.*analytic_kl=False"):
    vaex.loss(params, key, x, model, estimator="B")


def test_vamp_prior_is_the_mixture_of_the_encoders_posteriors(key):
  model = _model(vaex.VampPrior(num_components=K, data_dim=DATA))
  params = model.init(key, _x(key))
  u = params["params"]["prior"]["pseudo_inputs"]
  assert u.shape == (K, DATA)
  assert abs(float(u.mean()) - 0.05) < 4 * 0.01 / np.sqrt(u.size)  # N(0.05, 0.01^2) init
  p = vaex.prior_distribution(model, params)
  mean, log_var = model.apply(params, jnp.clip(u, 0, 1), method=vaex.VAE.encode)
  z = np.asarray(jax.random.normal(jax.random.key(1), (6, DIM)), np.float64)
  comps = [np.sum(stats.norm(np.asarray(mean[k], np.float64),
                             np.exp(0.5 * np.asarray(log_var[k], np.float64))).logpdf(z), -1)
           for k in range(K)]
  expected = special.logsumexp(np.stack(comps, -1), axis=-1) - np.log(K)
  np.testing.assert_allclose(p.log_prob(jnp.asarray(z, jnp.float32)), expected, rtol=1e-5, atol=1e-5)
  # Training moves the pseudo-inputs and the shared encoder.
  x = _x(key)
  grads = jax.jit(jax.grad(lambda p: vaex.loss(p, key, x, model, estimator="iwae", num_samples=3)))(
      params)
  assert float(jnp.abs(grads["params"]["prior"]["pseudo_inputs"]).sum()) > 0


def test_vamp_prior_needs_a_diagonal_encoder(key):
  model = _model(vaex.VampPrior(num_components=K, data_dim=DATA),
                 vaex.FullCovarianceMLPEncoder(latent_dim=DIM, hidden_sizes=(HIDDEN,)))
  with pytest.raises(TypeError, match="VampPrior.*diagonal Gaussian.*FullCovarianceMLPEncoder"):
    model.init(key, _x(key))


def test_default_model_has_no_prior_parameters(key):
  model = _model(None)
  params = model.init(key, _x(key))
  assert set(params["params"]) == {"encoder", "decoder"}
  assert vaex.prior_distribution(model, params) is None
