"""Pixel likelihoods: normalization, float64 numpy/scipy references, extreme parameters, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import vaex

SHAPES = [(7,), (3, 5), (2, 4, 6)]


def _rng(seed=0):
  return np.random.default_rng(seed)


def _finite_value_and_grads(fn, *params):
  value, grads = jax.jit(jax.value_and_grad(lambda *p: fn(*p).sum(),
                                            argnums=tuple(range(len(params)))))(*params)
  assert np.isfinite(value), value
  for grad in grads:
    assert np.all(np.isfinite(grad)), grad
  return value, grads


# Categorical.


@pytest.mark.parametrize("shape, dtype", list(zip(SHAPES, [np.uint8, np.int32, np.float32])))
def test_categorical_matches_float64_log_softmax(variant, shape, dtype):
  rng = _rng()
  num_classes = 5
  logits = rng.normal(scale=3.0, size=(*shape, num_classes)).astype(np.float32)
  x = rng.integers(0, num_classes, size=shape).astype(dtype)
  got = variant(vaex.categorical_log_likelihood)(x, logits)
  log_probs = special.log_softmax(logits.astype(np.float64), axis=-1)
  want = np.take_along_axis(log_probs, x.astype(np.int64)[..., None], axis=-1)[..., 0].sum(-1)
  assert got.shape == shape[:-1]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_categorical_probabilities_over_all_classes_sum_to_one(variant):
  num_classes, rows = 256, 4
  logits = _rng(1).normal(scale=4.0, size=(rows, num_classes)).astype(np.float32)
  # x: [rows, K, 1], every class once per row; logits broadcast to [rows, K, 1, K].
  x = np.broadcast_to(np.arange(num_classes, dtype=np.uint8)[None, :, None], (rows, num_classes, 1))
  logits = np.broadcast_to(logits[:, None, None, :], (rows, num_classes, 1, num_classes))
  log_p = variant(vaex.categorical_log_likelihood)(x, logits)
  np.testing.assert_allclose(np.exp(np.asarray(log_p, np.float64)).sum(-1), 1.0, rtol=1e-5)


def test_categorical_extreme_logits_are_finite():
  rng = _rng(2)
  logits = jnp.asarray(np.where(rng.uniform(size=(3, 4, 6)) < 0.5, -1e4, 1e4), jnp.float32)
  x = jnp.asarray(rng.integers(0, 6, size=(3, 4)), jnp.int32)
  _finite_value_and_grads(lambda lg: vaex.categorical_log_likelihood(x, lg), logits)
  # The class a one-hot logit row picks has probability 1.
  one_hot = 2e4 * jax.nn.one_hot(x, 6) - 1e4
  np.testing.assert_allclose(jax.jit(vaex.categorical_log_likelihood)(x, one_hot), 0.0, atol=1e-6)


def test_categorical_values_outside_the_classes_give_nan():
  x = jnp.array([[0, 2], [3, 0], [-1, 0]])
  got = jax.jit(vaex.categorical_log_likelihood)(x, jnp.zeros((3, 2, 3)))
  np.testing.assert_allclose(got[0], 2 * np.log(1 / 3), rtol=1e-6)
  assert np.isnan(got[1]) and np.isnan(got[2])


# Discretized logistic.

MEANS = [-100.0, -0.3, 0.0, 0.2, 0.5, 1.0, 1.4, 100.0]
LOG_SCALES = [-20.0, -8.0, -4.0, -1.0, 0.0, 3.0, 20.0]


def _grid(num_bins):
  return (np.arange(num_bins) / (num_bins - 1)).astype(np.float32)


def _logistic_bin_log_probs(x, mean, scale, num_bins):
  """float64 scipy reference: CDF differences, taken on the side of the mean that avoids cancelling."""
  x, mean, scale = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (x, mean, scale)))
  half = 0.5 / (num_bins - 1)
  upper = stats.logistic.cdf(x + half, mean, scale)
  lower = stats.logistic.cdf(x - half, mean, scale)
  upper_sf = stats.logistic.sf(x + half, mean, scale)
  lower_sf = stats.logistic.sf(x - half, mean, scale)
  interior = np.where(x > mean, lower_sf - upper_sf, upper - lower)
  first = x < half
  last = x > 1 - half
  return np.log(np.where(first, upper, np.where(last, lower_sf, interior)))


@pytest.mark.parametrize("num_bins", [2, 256])
def test_discretized_logistic_probabilities_over_all_bins_sum_to_one(variant, num_bins):
  # x: [P, num_bins, 1], every grid value once for each of P parameter pairs.
  mean, log_scale = (np.asarray(a, np.float32).reshape(-1) for a in np.meshgrid(MEANS, LOG_SCALES))
  shape = (mean.size, num_bins, 1)
  x = np.broadcast_to(_grid(num_bins)[None, :, None], shape)
  params = tuple(np.broadcast_to(a[:, None, None], shape) for a in (mean, log_scale))
  fn = lambda x, p: vaex.discretized_logistic_log_likelihood(x, p, num_bins=num_bins)  # noqa: E731
  log_p = variant(fn)(x, params)
  np.testing.assert_allclose(np.exp(np.asarray(log_p, np.float64)).sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("shape, num_bins", list(zip(SHAPES, [256, 5, 256])))
def test_discretized_logistic_matches_scipy_cdf_differences(variant, shape, num_bins):
  rng = _rng(3)
  x = _grid(num_bins)[rng.integers(0, num_bins, size=shape)]
  x.reshape(-1)[:2] = 0.0, 1.0  # Both open-ended bins.
  mean = rng.uniform(-0.2, 1.2, size=shape).astype(np.float32)
  log_scale = rng.uniform(-4.0, 0.0, size=shape).astype(np.float32)
  fn = lambda x, m, s: vaex.discretized_logistic_log_likelihood(x, (m, s), num_bins=num_bins)  # noqa: E731
  got = variant(fn)(x, mean, log_scale)
  want = _logistic_bin_log_probs(x, mean, np.exp(log_scale.astype(np.float64)), num_bins).sum(-1)
  assert got.shape == shape[:-1]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_discretized_logistic_below_the_floor_is_the_floor():
  x = jnp.asarray(_grid(256)[[[0, 7, 128, 255]]])
  mean = jnp.full_like(x, 0.5)
  fn = jax.jit(vaex.discretized_logistic_log_likelihood)
  at_floor = fn(x, (mean, jnp.full_like(x, -8.0)))
  below = fn(x, (mean, jnp.full_like(x, -30.0)))
  np.testing.assert_array_equal(below, at_floor)


def test_discretized_logistic_extreme_parameters_are_finite():
  # [means, log_scales, bins]: every pair at the two open end bins and three interior ones.
  mean, log_scale = np.meshgrid([-100.0, 0.5, 100.0], [-20.0, -8.0, 20.0, 1e4], indexing="ij")
  shape = (*mean.shape, 5)
  x = jnp.broadcast_to(_grid(256)[[0, 1, 128, 254, 255]], shape)
  _, (d_mean, d_log_scale) = _finite_value_and_grads(
      lambda m, s: vaex.discretized_logistic_log_likelihood(x, (m, s)),
      jnp.broadcast_to(jnp.asarray(mean[..., None], jnp.float32), shape),
      jnp.broadcast_to(jnp.asarray(log_scale[..., None], jnp.float32), shape))
  assert np.all(d_log_scale[:, 0] == 0.0)  # Below the floor the log-scale has no gradient.


def _mixture_params(rng, shape, num_components=3):
  logits = rng.normal(scale=2.0, size=(*shape, num_components)).astype(np.float32)
  means = rng.uniform(-0.2, 1.2, size=(*shape, num_components)).astype(np.float32)
  log_scales = rng.uniform(-4.0, 0.0, size=(*shape, num_components)).astype(np.float32)
  return logits, means, log_scales


@pytest.mark.parametrize("shape", SHAPES[::2])
def test_discretized_logistic_mixture_matches_scipy(variant, shape):
  rng = _rng(4)
  x = _grid(256)[rng.integers(0, 256, size=shape)]
  x.reshape(-1)[:2] = 0.0, 1.0
  logits, means, log_scales = _mixture_params(rng, shape)
  got = variant(vaex.discretized_logistic_mixture_log_likelihood)(x, (logits, means, log_scales))
  components = _logistic_bin_log_probs(x[..., None], means, np.exp(log_scales.astype(np.float64)),
                                       256)
  log_weights = special.log_softmax(logits.astype(np.float64), axis=-1)
  want = special.logsumexp(log_weights + components, axis=-1).sum(-1)
  assert got.shape == shape[:-1]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_discretized_logistic_mixture_probabilities_sum_to_one(variant):
  rng = _rng(5)
  rows, num_bins = 6, 256
  logits = rng.normal(scale=3.0, size=(rows, 3)).astype(np.float32)
  means = rng.choice(MEANS, size=(rows, 3)).astype(np.float32)
  log_scales = rng.choice(LOG_SCALES, size=(rows, 3)).astype(np.float32)
  shape = (rows, num_bins, 1)
  x = np.broadcast_to(_grid(num_bins)[None, :, None], shape)
  params = tuple(np.broadcast_to(a[:, None, None, :], (*shape, 3)) for a in (logits, means, log_scales))
  log_p = variant(vaex.discretized_logistic_mixture_log_likelihood)(x, params)
  np.testing.assert_allclose(np.exp(np.asarray(log_p, np.float64)).sum(-1), 1.0, rtol=1e-5)


def test_a_one_component_mixture_is_the_single_logistic(variant):
  rng = _rng(6)
  x = _grid(256)[rng.integers(0, 256, size=SHAPES[2])]
  logits, means, log_scales = _mixture_params(rng, SHAPES[2], num_components=1)
  mixture = variant(vaex.discretized_logistic_mixture_log_likelihood)(x, (logits, means, log_scales))
  single = variant(vaex.discretized_logistic_log_likelihood)(x, (means[..., 0], log_scales[..., 0]))
  np.testing.assert_allclose(mixture, single, rtol=1e-6)


def test_discretized_logistic_mixture_extreme_parameters_are_finite():
  x = jnp.asarray(_grid(256)[[[0, 1, 128, 254, 255]]])
  shape = (*x.shape, 3)
  logits = jnp.broadcast_to(jnp.array([1e4, -1e4, 0.0]), shape)
  means = jnp.broadcast_to(jnp.array([-100.0, 100.0, 0.5]), shape)
  log_scales = jnp.broadcast_to(jnp.array([-20.0, 20.0, 1e4]), shape)
  _finite_value_and_grads(
      lambda lg, m, s: vaex.discretized_logistic_mixture_log_likelihood(x, (lg, m, s)),
      logits, means, log_scales)


# Continuous Bernoulli.

CB_LOGITS = [-20.0, -3.0, -1e-3, 0.0, 1e-4, 2.0, 20.0]


def _cb_log_density_float64(x, logits):
  """The paper's formula in float64: the Bernoulli kernel plus log(2 atanh(1 - 2 lam) / (1 - 2 lam))."""
  x, logits = np.asarray(x, np.float64), np.asarray(logits, np.float64)
  lam = special.expit(logits)
  log_c = np.log(2.0 * np.arctanh(1.0 - 2.0 * lam) / (1.0 - 2.0 * lam))
  return x * np.log(lam) + (1.0 - x) * np.log1p(-lam) + log_c


def test_continuous_bernoulli_integrates_to_one(variant):
  # [logits, grid, 1]: the density of each logit on a fine grid of [0, 1], by the trapezoid rule.
  grid = np.linspace(0.0, 1.0, 20_001, dtype=np.float32)
  shape = (len(CB_LOGITS), grid.size, 1)
  x = np.broadcast_to(grid[None, :, None], shape)
  logits = np.broadcast_to(np.asarray(CB_LOGITS, np.float32)[:, None, None], shape)
  density = np.exp(np.asarray(variant(vaex.continuous_bernoulli_log_likelihood)(x, logits), np.float64))
  np.testing.assert_allclose(np.trapezoid(density, grid.astype(np.float64), axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_continuous_bernoulli_matches_float64_formula(variant, shape):
  rng = _rng(7)
  x = rng.uniform(size=shape).astype(np.float32)
  logits = (rng.choice([-1, 1], size=shape) * rng.uniform(0.05, 15.0, size=shape)).astype(np.float32)
  logits.reshape(-1)[:4] = [0.1, -0.1, 0.0999999, -0.1000001]  # Either side of the series switch.
  got = variant(vaex.continuous_bernoulli_log_likelihood)(x, logits)
  assert got.shape == shape[:-1]
  np.testing.assert_allclose(got, _cb_log_density_float64(x, logits).sum(-1), rtol=1e-5, atol=1e-5)


def test_continuous_bernoulli_is_smooth_through_zero(variant):
  x = np.array([[0.0, 0.25, 0.5, 0.9, 1.0]], np.float32)
  fn = variant(vaex.continuous_bernoulli_log_likelihood)
  at_zero = fn(x, np.zeros_like(x))
  np.testing.assert_allclose(at_zero, 0.0, atol=1e-7)  # lambda = 1/2 is the uniform density.
  for logit in (1e-6, -1e-6):
    np.testing.assert_allclose(fn(x, np.full_like(x, logit)), at_zero, atol=1e-6)


def test_continuous_bernoulli_gradient_is_analytic():
  x, logits = np.meshgrid([0.0, 0.3, 1.0], [-20.0, -3.0, -0.1, -1e-3, 0.0, 1e-4, 0.05, 0.1, 2.0, 20.0])
  _, (grad,) = _finite_value_and_grads(
      lambda lg: vaex.continuous_bernoulli_log_likelihood(jnp.asarray(x, jnp.float32), lg),
      jnp.asarray(logits, jnp.float32))
  # d/dl log p = x - sigmoid(l) + d/dl log(l / tanh(l/2)) = x - sigmoid(l) + 1/l - 1/sinh(l) (0 at 0).
  safe = np.where(logits == 0.0, 1.0, logits)
  dlog_c = np.where(logits == 0.0, 0.0, 1.0 / safe - 1.0 / np.sinh(safe))
  np.testing.assert_allclose(grad, x - special.expit(logits) + dlog_c, rtol=1e-5, atol=1e-6)


def test_continuous_bernoulli_extreme_logits_are_finite():
  x = jnp.asarray(_rng(8).uniform(size=(2, 3, 5)), jnp.float32)
  x = x.at[:, :, :2].set(jnp.array([0.0, 1.0]))
  logits = jnp.broadcast_to(jnp.array([1e4, -1e4])[:, None, None], x.shape)
  _finite_value_and_grads(lambda lg: vaex.continuous_bernoulli_log_likelihood(x, lg), logits)


# Bad inputs.

_F = jnp.ones((2, 3))


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: vaex.categorical_log_likelihood(jnp.ones((2, 3), jnp.int32), jnp.ones((2, 4, 5))),
         ValueError, ["`logits`", "(2, 3)", "(2, 4, 5)"]),
        (lambda: vaex.categorical_log_likelihood(jnp.ones((2, 3), jnp.int32), jnp.ones((2, 3))),
         ValueError, ["`logits`", "(K,)"]),
        (lambda: vaex.categorical_log_likelihood(jnp.ones((2, 3), jnp.int32),
                                                 jnp.ones((2, 3, 4), jnp.int32)),
         TypeError, ["`logits`", "int32", "floating"]),
        (lambda: vaex.categorical_log_likelihood(jnp.ones((2, 3), bool), jnp.ones((2, 3, 4))),
         TypeError, ["`x`", "bool", "integer"]),
        (lambda: vaex.discretized_logistic_log_likelihood(_F, (_F, _F), num_bins=2.5), TypeError,
         ["`num_bins`", "Python int"]),
        (lambda: vaex.discretized_logistic_log_likelihood(_F, (_F, _F), num_bins=1), ValueError,
         ["`num_bins`", ">= 2"]),
        (lambda: vaex.discretized_logistic_log_likelihood(_F, (_F, jnp.ones((2, 4)))), ValueError,
         ["`x`", "`params[1] (log_scale)`", "(2, 4)"]),
        (lambda: vaex.discretized_logistic_log_likelihood(_F, _F), TypeError,
         ["`params`", "(mean, log_scale)"]),
        (lambda: vaex.discretized_logistic_log_likelihood(_F, (_F, jnp.ones((2, 3), jnp.int32))),
         TypeError, ["`params[1] (log_scale)`", "int32"]),
        (lambda: vaex.discretized_logistic_log_likelihood(jnp.ones((2, 3), jnp.uint8), (_F, _F)),
         TypeError, ["`x`", "uint8", "255"]),
        (lambda: vaex.discretized_logistic_mixture_log_likelihood(_F, (_F, _F)), TypeError,
         ["`params`", "(logits, means, log_scales)"]),
        (lambda: vaex.discretized_logistic_mixture_log_likelihood(
            _F, (jnp.ones((2, 3, 4)), jnp.ones((2, 3, 4)), jnp.ones((2, 3, 5)))), ValueError,
         ["`params[0] (logits)`", "`params[2] (log_scales)`"]),
        (lambda: vaex.discretized_logistic_mixture_log_likelihood(_F, (_F, _F, _F)), ValueError,
         ["params[0] (logits)", "x.shape + (M,)", "(2, 3)"]),
        (lambda: vaex.discretized_logistic_mixture_log_likelihood(_F, (_F, _F, _F), num_bins=True),
         TypeError, ["`num_bins`"]),
        (lambda: vaex.continuous_bernoulli_log_likelihood(_F, jnp.ones((2, 3), jnp.int32)),
         TypeError, ["`logits`", "int32"]),
        (lambda: vaex.continuous_bernoulli_log_likelihood(_F, jnp.ones((3, 2))), ValueError,
         ["`x`", "`logits`", "(3, 2)"]),
        (lambda: vaex.continuous_bernoulli_log_likelihood(jnp.ones(()), jnp.ones(())), ValueError,
         ["`x`", "at least one axis"]),
    ],
)
def test_bad_inputs_name_the_argument(call, error, words):
  with pytest.raises(error) as info:
    call()
  for word in words:
    assert word in str(info.value)


# In the bounds.

BATCH, H, W, DIM_Z, K, M = 4, 2, 3, 2, 6, 3


def _decoder(rng, outputs, wrap):
  weights = rng.normal(size=(DIM_Z, H * W * outputs)).astype(np.float32)
  return lambda z: wrap((z @ weights).reshape(z.shape[0], H, W, outputs))


LIKELIHOODS = {
    "categorical": (vaex.categorical_log_likelihood, K, lambda out: out),
    "discretized_logistic": (vaex.discretized_logistic_log_likelihood, 2,
                             lambda out: (out[..., 0], out[..., 1])),
    "discretized_logistic_mixture": (vaex.discretized_logistic_mixture_log_likelihood, 3 * M,
                                     lambda out: tuple(jnp.split(out, 3, axis=-1))),
    "continuous_bernoulli": (vaex.continuous_bernoulli_log_likelihood, 1, lambda out: out[..., 0]),
}


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_each_likelihood_works_in_the_elbo(key, name):
  # Jitted only, as a training step runs it; the likelihoods' own tests cover both variants.
  log_likelihood, outputs, wrap = LIKELIHOODS[name]
  rng = _rng(9)
  pixels = rng.integers(0, K if name == "categorical" else 256, size=(BATCH, H, W))
  x = (pixels if name == "categorical" else pixels / 255).astype(np.float32)  # `elbo` wants floats.
  w_enc = rng.normal(size=(H * W, 2 * DIM_Z)).astype(np.float32) * 0.1

  def encode(x):
    h = x.reshape(x.shape[0], -1) @ w_enc
    return h[:, :DIM_Z], h[:, DIM_Z:]

  decode = _decoder(rng, outputs, wrap)
  value = jax.jit(lambda k, x: vaex.elbo(k, x, encode, decode, log_likelihood=log_likelihood,
                                         num_samples=2))(key, x)
  assert value.shape == (BATCH,)
  assert np.all(np.isfinite(value))
