"""q(z|x) as a distribution object: exactness with the full-covariance posterior, and bad encoders."""

import distrax
import jax
import jax.numpy as jnp
import linear_gaussian
import numpy as np
import pytest

import vaex

pytestmark = pytest.mark.usefixtures("allow_rank_promotion")


def _exact_posterior_encoder(model: linear_gaussian.LinearGaussian):
  means, cov = model.posterior()
  scale_tri = np.linalg.cholesky(cov).astype(np.float32)

  def encode(x):  # x is only used for its batch size: the posterior means are precomputed.
    loc = jnp.asarray(means, jnp.float32) + 0.0 * x[:, :1]
    scale = jnp.broadcast_to(scale_tri, (x.shape[0], *scale_tri.shape))
    return distrax.MultivariateNormalTri(loc, scale)

  return encode


@pytest.mark.parametrize("num_samples", [1, 7])
def test_estimator_a_is_exact_with_the_full_covariance_posterior(variant, num_samples):
  model = linear_gaussian.make()
  encode, x = _exact_posterior_encoder(model), model.x.astype(np.float32)
  for seed in range(3):
    got = variant(lambda k, x: vaex.elbo(
        k, x, encode, model.decode, log_likelihood=vaex.gaussian_log_likelihood,
        num_samples=num_samples, analytic_kl=False))(jax.random.key(seed), x)
    np.testing.assert_allclose(got, model.log_marginal(), rtol=2e-6, atol=5e-5)


@pytest.mark.parametrize("num_samples", [1, 10, 500])
def test_iwae_bound_and_every_weight_are_exact_with_the_full_covariance_posterior(variant, num_samples):
  model = linear_gaussian.make()
  encode, x = _exact_posterior_encoder(model), model.x.astype(np.float32)
  kwargs = dict(log_likelihood=vaex.gaussian_log_likelihood, num_samples=num_samples)
  got = variant(lambda k, x: vaex.iwae_bound(k, x, encode, model.decode, **kwargs))(
      jax.random.key(1), x)
  np.testing.assert_allclose(got, model.log_marginal(), rtol=2e-6, atol=5e-5)
  log_w = variant(lambda k, x: vaex.log_importance_weights(k, x, encode, model.decode, **kwargs))(
      jax.random.key(1), x)
  assert log_w.shape == (num_samples, x.shape[0])
  np.testing.assert_allclose(log_w, np.broadcast_to(model.log_marginal(), log_w.shape),
                             rtol=2e-6, atol=1e-4)


def test_a_diagonal_posterior_is_not_exact_when_the_true_one_is_correlated(key):
  """The same model read through the fast path with the true marginal variances: the bound is strictly
  below log p(x), so the full-covariance test above really tests the covariance."""
  model = linear_gaussian.make()
  means, cov = model.posterior()
  encode = lambda x: (jnp.asarray(means, jnp.float32),  # noqa: E731
                      jnp.broadcast_to(jnp.log(jnp.diag(jnp.asarray(cov, jnp.float32))), means.shape))
  values = jax.vmap(lambda k: vaex.elbo(k, model.x.astype(np.float32), encode, model.decode,
                                        log_likelihood=vaex.gaussian_log_likelihood))(
      jax.random.split(key, 2000))
  assert np.all(np.asarray(values).mean(0) < model.log_marginal() - 0.05)


def test_closed_form_kl_of_a_full_covariance_posterior(variant, key):
  """Estimator B with MultivariateNormalTri against N(0, I) uses the closed form:
  KL = (tr S + m^T m - d - log det S) / 2."""
  model = linear_gaussian.make()
  means, cov = model.posterior()
  encode = _exact_posterior_encoder(model)
  terms = variant(lambda k, x: vaex.elbo_terms(
      k, x, encode, model.decode, log_likelihood=vaex.gaussian_log_likelihood))(
      key, model.x.astype(np.float32))
  d = model.dim_z
  exact = 0.5 * (np.trace(cov) + np.sum(means**2, -1) - d - np.linalg.slogdet(cov)[1])
  np.testing.assert_allclose(terms.kl, exact, rtol=1e-5, atol=1e-5)


class _NoSampling:
  def log_prob(self, z):
    return jnp.zeros(z.shape[:-1])


@pytest.mark.parametrize(
    "encode, error, words",
    [
        (lambda x: _NoSampling(), TypeError, ["encode(x)", "sample_and_log_prob", "_NoSampling"]),
        (lambda x: (x[:, :2], x[:, :2], x[:, :2]), TypeError, ["3 items", "(mean, log_var)"]),
        (lambda x: distrax.MultivariateNormalDiag(jnp.zeros((1, 2))), ValueError,
         ["batch shape (6,)", "got batch shape (1,)"]),
        (lambda x: distrax.Normal(jnp.zeros((x.shape[0], 2)), 1.0), ValueError,
         ["batch shape (6,)", "(6, 2)", "distrax.Independent"]),
    ],
)
def test_bad_posterior_objects_are_refused(encode, error, words):
  x = jnp.ones((6, 10), jnp.float32)
  decode = lambda z: jnp.zeros((z.shape[0], 10))  # noqa: E731
  with pytest.raises(error) as info:
    vaex.elbo(jax.random.key(0), x, encode, decode, analytic_kl=False)
  for word in words:
    assert word in str(info.value), (word, str(info.value))


def _flow_encoder(x):
  """A one-step flow: tanh of a diagonal Gaussian (distrax.Transformed): no closed-form KL."""
  base = distrax.MultivariateNormalDiag(0.1 * x[:, :2], jnp.ones((x.shape[0], 2)))
  return distrax.Transformed(base, distrax.Block(distrax.Tanh(), 1))


class _DuckPosterior:
  """A user object with only the two protocol methods (a diagonal Gaussian, written by hand)."""

  def __init__(self, mean):
    self.mean = mean

  def sample_and_log_prob(self, *, seed, sample_shape):
    z = self.mean + jax.random.normal(seed, (*sample_shape, *self.mean.shape))
    return z, self.log_prob(z)

  def log_prob(self, z):
    return vaex.standard_normal_log_prob(z - self.mean)


@pytest.mark.parametrize("encode, name", [(_flow_encoder, "Transformed"),
                                          (lambda x: _DuckPosterior(x[:, :2]), "_DuckPosterior")])
def test_no_closed_form_kl_is_a_clear_error_and_estimator_a_works(key, encode, name):
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(6, 10)) < 0.5, jnp.float32)
  decode = lambda z: z @ jnp.ones((2, 10))  # noqa: E731
  with pytest.raises(ValueError) as info:
    jax.jit(lambda key, x: vaex.elbo(key, x, encode, decode))(key, x)
  for word in ("closed form", name, "analytic_kl=False"):
    assert word in str(info.value), (word, str(info.value))
  bounds = jax.jit(lambda key, x: (vaex.elbo(key, x, encode, decode, analytic_kl=False),
                                   vaex.iwae_bound(key, x, encode, decode, num_samples=4)))
  for value in bounds(key, x):
    assert value.shape == (6,) and np.all(np.isfinite(value))


def test_a_duck_typed_posterior_equals_the_fast_path(key):
  """The same diagonal Gaussian (unit variance) given as an object and as (mean, log_var)."""
  x = jnp.asarray(np.random.default_rng(1).uniform(size=(6, 10)) < 0.5, jnp.float32)
  decode = lambda z: z @ jnp.ones((2, 10))  # noqa: E731
  as_object = vaex.iwae_bound(key, x, lambda x: _DuckPosterior(x[:, :2]), decode, num_samples=5)
  as_pair = vaex.iwae_bound(key, x, lambda x: (x[:, :2], jnp.zeros((6, 2))), decode, num_samples=5)
  np.testing.assert_allclose(as_object, as_pair, rtol=1e-6)
