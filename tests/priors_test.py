"""p(z) as an object: a mixture-of-Gaussians prior on the linear-Gaussian model, and bad priors.

With p(z) = sum_k pi_k N(mu_k, diag(s_k^2)) and p(x|z) = N(W z + b, s^2 I), the marginal is a Gaussian
mixture in x: p(x) = sum_k pi_k N(x; W mu_k + b, W diag(s_k^2) W^T + s^2 I).
"""

import distrax
import jax
import jax.numpy as jnp
import linear_gaussian
import numpy as np
import pytest
from scipy import special, stats

import vaex

pytestmark = pytest.mark.usefixtures("allow_rank_promotion")

WEIGHTS = np.array([0.3, 0.7])
MEANS = np.array([[-1.5, 0.5, 0.0], [1.0, -0.5, 0.8]])
STDS = np.array([[0.6, 0.8, 1.0], [0.9, 0.5, 0.7]])


def _mixture_prior():
  return distrax.MixtureSameFamily(
      distrax.Categorical(probs=jnp.asarray(WEIGHTS, jnp.float32)),
      distrax.MultivariateNormalDiag(jnp.asarray(MEANS, jnp.float32), jnp.asarray(STDS, jnp.float32)),
  )


def _mixture_log_prior_np(z):
  per_component = [np.log(w) + stats.norm(m, s).logpdf(z).sum(-1)
                   for w, m, s in zip(WEIGHTS, MEANS, STDS)]
  return special.logsumexp(np.stack(per_component), axis=0)


def _exact_log_marginal(model):
  per_component = []
  for w, m, s in zip(WEIGHTS, MEANS, STDS):
    cov = model.w @ np.diag(s**2) @ model.w.T + linear_gaussian.NOISE_STD**2 * np.eye(len(model.b))
    marginal = stats.multivariate_normal(model.w @ m + model.b, cov)
    per_component.append(np.log(w) + marginal.logpdf(model.x))
  return special.logsumexp(np.stack(per_component), axis=0)


def _proposal(model):
  """A diagonal Gaussian q(z|x), wider than the posterior (a valid proposal, not the exact one)."""
  means, cov = model.posterior()
  mean = means.astype(np.float32)
  log_var = np.broadcast_to(np.log(2.0 * np.diag(cov)), mean.shape).astype(np.float32)
  return mean, log_var


def test_importance_sampled_log_likelihood_converges_to_the_mixture_marginal():
  model = linear_gaussian.make()
  mean, log_var = _proposal(model)
  encode = lambda x: (jnp.asarray(mean), jnp.asarray(log_var))  # noqa: E731
  x = model.x.astype(np.float32)
  prior = _mixture_prior()
  exact = _exact_log_marginal(model)

  k = 20_000
  estimates = np.asarray(jax.jit(jax.vmap(lambda key: vaex.importance_sampled_log_likelihood(
      key, x, encode, model.decode, log_likelihood=vaex.gaussian_log_likelihood, prior=prior,
      num_samples=k, chunk_size=5000)))(jax.random.split(jax.random.key(0), 8)), np.float64)
  # The estimator's bias is about Var(w) / (2 k E[w]^2) (delta method); estimate it from weights.
  log_w = np.asarray(vaex.log_importance_weights(
      jax.random.key(1), x, encode, model.decode, log_likelihood=vaex.gaussian_log_likelihood,
      prior=prior, num_samples=k), np.float64)
  w = np.exp(log_w - log_w.max(0))
  bias = w.var(0) / (2 * k * w.mean(0) ** 2)
  stderr = estimates.std(0, ddof=1) / np.sqrt(len(estimates))
  assert np.all(np.abs(estimates.mean(0) - exact) < 4 * stderr + 2 * bias + 1e-4), (
      estimates.mean(0), exact, stderr, bias)
  # And with few samples it is a lower bound that is visibly loose: the test can fail.
  low = np.asarray(vaex.iwae_bound(jax.random.key(2), x, encode, model.decode,
                                   log_likelihood=vaex.gaussian_log_likelihood, prior=prior,
                                   num_samples=1))
  assert np.mean(low) < np.mean(exact) - 0.05


def test_estimator_a_with_a_mixture_prior_agrees_with_numpy_in_expectation():
  model = linear_gaussian.make()
  mean, log_var = _proposal(model)
  encode = lambda x: (jnp.asarray(mean), jnp.asarray(log_var))  # noqa: E731
  x = model.x.astype(np.float32)
  prior = _mixture_prior()
  n = 20_000
  values = np.asarray(jax.jit(jax.vmap(lambda key: vaex.elbo(
      key, x, encode, model.decode, log_likelihood=vaex.gaussian_log_likelihood, prior=prior,
      analytic_kl=False)))(jax.random.split(jax.random.key(3), n)), np.float64)

  rng = np.random.default_rng(0)
  std = np.exp(0.5 * log_var.astype(np.float64))
  z = mean + std * rng.standard_normal((n, *mean.shape))
  reference = (model.log_likelihood_np(z) + _mixture_log_prior_np(z)
               - stats.norm(mean, std).logpdf(z).sum(-1))
  se = np.hypot(values.std(0), reference.std(0)) / np.sqrt(n)
  assert np.all(np.abs(values.mean(0) - reference.mean(0)) < 4 * se), (values.mean(0), reference.mean(0))
  # The ELBO with this proposal is below log p(x), by more than the Monte Carlo error.
  assert np.all(values.mean(0) < _exact_log_marginal(model) - 4 * se)


def test_estimator_b_with_a_mixture_prior_says_there_is_no_closed_form(key):
  model = linear_gaussian.make()
  mean, log_var = _proposal(model)
  with pytest.raises(ValueError) as info:
    vaex.elbo(key, model.x.astype(np.float32), lambda x: (mean, log_var), model.decode,
              log_likelihood=vaex.gaussian_log_likelihood, prior=_mixture_prior())
  message = str(info.value)
  for word in ("closed form", "MixtureSameFamily", "analytic_kl=False"):
    assert word in message, (word, message)


def test_estimator_b_uses_the_registered_kl_for_a_gaussian_prior(key):
  """A diagonal posterior against a learnable N(m, diag(s^2)) prior: the closed form, from numpy."""
  mean = np.array([[0.3, -0.5], [1.0, 0.2]], np.float32)
  log_var = np.array([[-0.5, 0.2], [0.4, -1.0]], np.float32)
  p_loc, p_scale = np.array([0.5, -1.0], np.float32), np.array([2.0, 0.5], np.float32)
  prior = distrax.MultivariateNormalDiag(jnp.asarray(p_loc), jnp.asarray(p_scale))
  terms = vaex.elbo_terms(key, np.zeros((2, 4), np.float32), lambda x: (mean, log_var),
                          lambda z: jnp.zeros((z.shape[0], 4)), prior=prior)
  var = np.exp(log_var.astype(np.float64))
  exact = 0.5 * np.sum(var / p_scale**2 + (mean - p_loc) ** 2 / p_scale**2 - 1
                       + 2 * np.log(p_scale) - np.log(var), axis=-1)
  np.testing.assert_allclose(terms.kl, exact, rtol=1e-5)
  # Estimator A agrees with it in expectation (the KL term of elbo_terms, estimator A).
  kls = jax.vmap(lambda k: vaex.elbo_terms(
      k, np.zeros((2, 4), np.float32), lambda x: (mean, log_var),
      lambda z: jnp.zeros((z.shape[0], 4)), prior=prior, analytic_kl=False).kl)(
      jax.random.split(key, 20_000))
  kls = np.asarray(kls, np.float64)
  assert np.all(np.abs(kls.mean(0) - exact) < 4 * kls.std(0) / np.sqrt(len(kls)))


@pytest.mark.parametrize("analytic_kl", [False, True])
def test_a_prior_over_another_latent_size_is_refused(key, analytic_kl):
  prior = distrax.MultivariateNormalDiag(jnp.zeros(5))
  with pytest.raises(ValueError) as info:
    vaex.elbo(key, np.zeros((2, 4), np.float32), lambda x: (jnp.zeros((2, 3)), jnp.zeros((2, 3))),
              lambda z: jnp.zeros((z.shape[0], 4)), prior=prior, analytic_kl=analytic_kl)
  for word in ("prior's event shape (5,)", "posterior's (3,)", "same latent space"):
    assert word in str(info.value), (word, str(info.value))


def test_a_per_coordinate_prior_is_refused_with_the_fix(key):
  prior = distrax.Normal(jnp.zeros(3), 1.0)  # batch shape (3,), event (): not over z's event.
  with pytest.raises(ValueError) as info:
    vaex.elbo(key, np.zeros((2, 4), np.float32), lambda x: (jnp.zeros((2, 3)), jnp.zeros((2, 3))),
              lambda z: jnp.zeros((z.shape[0], 4)), prior=prior, analytic_kl=False)
  assert "distrax.Independent" in str(info.value)


def test_a_prior_without_log_prob_is_refused(key):
  with pytest.raises(TypeError, match=r"`prior` must be None .*log_prob.*got str"):
    vaex.iwae_bound(key, np.zeros((2, 4), np.float32), lambda x: (jnp.zeros((2, 3)),) * 2,
                    lambda z: jnp.zeros((z.shape[0], 4)), prior="normal", num_samples=2)


def test_sample_prior(key):
  z = vaex.sample_prior(key, None, 1000, (3,))
  assert z.shape == (1000, 3)
  z = np.asarray(vaex.sample_prior(key, _mixture_prior(), 4000, (3,)), np.float64)
  expected_mean = WEIGHTS @ MEANS
  assert np.all(np.abs(z.mean(0) - expected_mean) < 4 * z.std(0) / np.sqrt(len(z)))
