"""Densities and the Gaussian KL against scipy.stats and float64 numpy; extreme inputs; bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import vaex

SHAPES = [(7,), (3, 5), (2, 4, 6)]


def _rng(seed=0):
  return np.random.default_rng(seed)


@pytest.mark.parametrize("shape", SHAPES)
def test_bernoulli_log_likelihood_matches_scipy(variant, shape):
  rng = _rng()
  logits = rng.normal(scale=3.0, size=shape).astype(np.float32)
  x = (rng.uniform(size=shape) < 0.4).astype(np.float32)
  got = variant(vaex.bernoulli_log_likelihood)(x, logits)
  probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  want = stats.bernoulli.logpmf(x, probs).sum(-1)
  assert got.shape == shape[:-1]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_diag_gaussian_log_prob_matches_scipy(variant, shape):
  rng = _rng(1)
  z, mean = rng.normal(size=(2, *shape)).astype(np.float32)
  log_var = rng.uniform(-3, 3, size=shape).astype(np.float32)
  got = variant(vaex.diag_gaussian_log_prob)(z, mean, log_var)
  want = stats.norm.logpdf(z, mean, np.exp(0.5 * log_var.astype(np.float64))).sum(-1)
  assert got.shape == shape[:-1]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_standard_normal_log_prob_matches_scipy(variant, shape):
  z = _rng(2).normal(scale=2.0, size=shape).astype(np.float32)
  got = variant(vaex.standard_normal_log_prob)(z)
  np.testing.assert_allclose(got, stats.norm.logpdf(z).sum(-1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_log_likelihood_matches_scipy(variant, shape):
  rng = _rng(3)
  x = rng.uniform(size=shape).astype(np.float32)
  mean = rng.uniform(size=shape).astype(np.float32)
  log_var = rng.uniform(-4, 1, size=shape).astype(np.float32)
  got = variant(vaex.gaussian_log_likelihood)(x, (mean, log_var))
  want = stats.norm.logpdf(x, mean, np.exp(0.5 * log_var.astype(np.float64))).sum(-1)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_kl_matches_float64_closed_form(variant, shape):
  rng = _rng(4)
  mean = rng.normal(size=shape).astype(np.float32)
  log_var = rng.uniform(-3, 3, size=shape).astype(np.float32)
  got = variant(vaex.gaussian_kl)(mean, log_var)
  m, lv = mean.astype(np.float64), log_var.astype(np.float64)
  # KL(N(m, v) || N(0, 1)) = 1/2 (v + m^2 - 1 - log v), per dimension.
  want = 0.5 * (np.exp(lv) + m**2 - 1.0 - lv).sum(-1)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gaussian_kl_matches_monte_carlo():
  mean = jnp.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
  log_var = jnp.array([[-1.0, 0.5, 0.0], [1.2, -2.0, 0.1]])
  z = vaex.reparameterize(jax.random.key(7), mean, log_var, num_samples=200_000)
  log_ratio = vaex.diag_gaussian_log_prob(
      z, jnp.broadcast_to(mean, z.shape), jnp.broadcast_to(log_var, z.shape)
  ) - vaex.standard_normal_log_prob(z)
  estimate = np.asarray(log_ratio, np.float64).mean(0)
  stderr = np.asarray(log_ratio, np.float64).std(0) / np.sqrt(z.shape[0])
  exact = np.asarray(vaex.gaussian_kl(mean, log_var))
  assert np.all(np.abs(estimate - exact) < 4 * stderr), (estimate, exact, stderr)


def test_kl_is_zero_at_the_prior():
  assert float(vaex.gaussian_kl(jnp.zeros(4), jnp.zeros(4))) == 0.0


@pytest.mark.parametrize("logit", [1e4, -1e4])
@pytest.mark.parametrize("x_value", [0.0, 1.0])
def test_bernoulli_extreme_logits_are_finite(logit, x_value):
  x = jnp.full((3, 5), x_value)
  logits = jnp.full((3, 5), logit)
  value, grad = jax.value_and_grad(lambda lg: vaex.bernoulli_log_likelihood(x, lg).sum())(logits)
  assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
  # The right answer: 0 when the logit agrees with x, about -|logit| per pixel when it does not.
  agrees = (logit > 0) == (x_value == 1.0)
  np.testing.assert_allclose(value, 0.0 if agrees else -15 * abs(logit), rtol=1e-6)


def test_bernoulli_is_exact_for_large_agreeing_logits():
  # log sigmoid(20) = -2.06e-9: a log(sigmoid(.)) implementation returns exactly 0 or loses it.
  got = vaex.bernoulli_log_likelihood(jnp.ones((1,)), jnp.full((1,), 20.0))
  np.testing.assert_allclose(got, -np.log1p(np.exp(-20.0)), rtol=1e-3)


@pytest.mark.parametrize("log_var_value", [80.0, -80.0])
def test_gaussians_extreme_log_var_are_finite(log_var_value):
  z = jnp.array([[0.3, -2.0, 5.0]])
  mean = jnp.zeros_like(z)
  log_var = jnp.full_like(z, log_var_value)

  def total(mean, log_var):
    return (
        vaex.diag_gaussian_log_prob(z, mean, log_var)
        + vaex.gaussian_kl(mean, log_var)
        + vaex.gaussian_log_likelihood(z, (mean, log_var))
    ).sum()

  value, grads = jax.value_and_grad(total, argnums=(0, 1))(mean, log_var)
  assert np.isfinite(value)
  assert all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: vaex.bernoulli_log_likelihood(jnp.ones((2, 3)), jnp.ones((2, 4))), ValueError,
         ["`x`", "`logits`", "(2, 3)", "(2, 4)"]),
        (lambda: vaex.bernoulli_log_likelihood(jnp.ones((2, 3), jnp.int32), jnp.ones((2, 3))),
         TypeError, ["`x`", "int32", "astype"]),
        (lambda: vaex.diag_gaussian_log_prob(jnp.ones(3), jnp.ones(3), jnp.ones(4)), ValueError,
         ["`mean`", "`log_var`"]),
        (lambda: vaex.gaussian_kl(jnp.ones((2, 3)), jnp.ones((3, 2))), ValueError,
         ["`mean`", "`log_var`", "(2, 3)"]),
        (lambda: vaex.gaussian_log_likelihood(jnp.ones(3), jnp.ones(3)), TypeError,
         ["`params`", "(mean, log_var)"]),
        (lambda: vaex.standard_normal_log_prob([0.0, 1.0]), TypeError, ["`z`", "array"]),
    ],
)
def test_bad_inputs_name_the_argument(call, error, words):
  with pytest.raises(error) as info:
    call()
  for word in words:
    assert word in str(info.value)


@pytest.mark.parametrize("x_value", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("logit", [-30.0, -2.0, 0.0, 1.5, 30.0])
def test_bernoulli_gradient_is_x_minus_sigmoid(x_value, logit):
  grad = jax.grad(lambda lg: vaex.bernoulli_log_likelihood(jnp.full((1,), x_value), lg).sum())(
      jnp.full((1,), logit)
  )
  np.testing.assert_allclose(grad, x_value - 1 / (1 + np.exp(-logit)), rtol=1e-5, atol=1e-7)
