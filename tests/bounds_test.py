"""The SGVB estimators A and B and the IWAE bound.

The strongest check is the linear-Gaussian model p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I): with W's
columns orthogonal the exact posterior is a diagonal Gaussian, so with it as the encoder every
importance log-weight equals log p(x) = log N(x; b, W W^T + s^2 I) exactly.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import vaex

DIM_X, DIM_Z, NOISE_STD = 6, 3, 0.5


def _linear_gaussian(seed=0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(DIM_X, DIM_Z)))
  w = q * np.array([2.0, 1.0, 0.5])  # orthogonal columns: W^T W is diagonal.
  b = rng.normal(size=DIM_X)
  x = rng.normal(size=(5, DIM_X)) * 2.0
  cov = w @ w.T + NOISE_STD**2 * np.eye(DIM_X)
  exact = stats.multivariate_normal(b, cov).logpdf(x)  # [5], float64.
  return w, b, x, exact


def _exact_posterior_encoder(w, b):
  w, b = np.asarray(w), np.asarray(b)
  # Posterior covariance (I + W^T W / s^2)^-1 is diagonal; mean = Sigma W^T (x - b) / s^2.
  post_var = 1.0 / (1.0 + np.sum(w**2, axis=0) / NOISE_STD**2)
  gain = (post_var[:, None] * w.T / NOISE_STD**2).astype(np.float32)
  log_var = np.log(post_var).astype(np.float32)

  def encode(x):
    mean = (x - b.astype(np.float32)[None]) @ gain.T
    return mean, jnp.broadcast_to(log_var, mean.shape)

  return encode


def _gaussian_decoder(w, b):
  w32, b32 = w.astype(np.float32), b.astype(np.float32)
  log_var = np.float32(2 * np.log(NOISE_STD))

  def decode(z):
    mean = z @ w32.T + b32[None]
    return mean, jnp.full_like(mean, log_var)

  return decode


def _linear_gaussian_bounds():
  w, b, x, exact = _linear_gaussian()
  kwargs = dict(log_likelihood=vaex.gaussian_log_likelihood)
  encode, decode = _exact_posterior_encoder(w, b), _gaussian_decoder(w, b)
  return x.astype(np.float32), exact, encode, decode, kwargs


@pytest.mark.parametrize("num_samples", [1, 7])
def test_estimator_a_is_exact_with_the_true_posterior(variant, num_samples):
  x, exact, encode, decode, kwargs = _linear_gaussian_bounds()
  for seed in range(5):
    got = variant(
        lambda k, x: vaex.elbo(
            k, x, encode, decode, num_samples=num_samples, analytic_kl=False, **kwargs
        )
    )(jax.random.key(seed), x)
    np.testing.assert_allclose(got, exact, rtol=2e-6, atol=5e-5)


@pytest.mark.parametrize("num_samples", [1, 10, 1000])
def test_iwae_bound_is_exact_with_the_true_posterior(variant, num_samples):
  x, exact, encode, decode, kwargs = _linear_gaussian_bounds()
  got = variant(
      lambda k, x: vaex.iwae_bound(k, x, encode, decode, num_samples=num_samples, **kwargs)
  )(jax.random.key(1), x)
  np.testing.assert_allclose(got, exact, rtol=2e-6, atol=5e-5)


def test_estimator_b_is_exact_in_expectation(variant):
  x, exact, encode, decode, kwargs = _linear_gaussian_bounds()
  keys = jax.random.split(jax.random.key(2), 4000)
  values = variant(
      jax.vmap(lambda k: vaex.elbo(k, x, encode, decode, analytic_kl=True, **kwargs))
  )(keys)
  values = np.asarray(values, np.float64)
  stderr = values.std(0) / np.sqrt(len(keys))
  assert np.all(stderr > 0)  # B is not exact per sample: its reconstruction term varies.
  assert np.all(np.abs(values.mean(0) - exact) < 4 * stderr), (values.mean(0), exact, stderr)


@functools.cache
def _small_vae(seed=0, latent_dim=4, hidden=(32,)):
  """A small untrained VAE on 10-pixel binary data (cached: eager Flax init is slow)."""
  model = vaex.VAE(
      vaex.MLPEncoder(latent_dim=latent_dim, hidden_sizes=hidden),
      vaex.BernoulliMLPDecoder(data_dim=10, hidden_sizes=hidden),
  )
  x = (np.random.default_rng(seed).uniform(size=(6, 10)) < 0.3).astype(np.float32)
  params = model.init(jax.random.key(seed), x)
  encode, decode = vaex.encoder_decoder(model, params)
  return model, params, x, encode, decode


def _mean_and_stderr(fn, num_keys, seed):
  values = np.asarray(jax.jit(jax.vmap(fn))(jax.random.split(jax.random.key(seed), num_keys)))
  values = values.astype(np.float64)
  return values.mean(0), values.std(0) / np.sqrt(num_keys)


def test_estimators_a_and_b_agree_in_expectation():
  _, _, x, encode, decode = _small_vae()
  mean_a, se_a = _mean_and_stderr(lambda k: vaex.elbo(k, x, encode, decode, analytic_kl=False),
                                  20_000, seed=3)
  mean_b, se_b = _mean_and_stderr(lambda k: vaex.elbo(k, x, encode, decode, analytic_kl=True),
                                  20_000, seed=4)
  assert np.all(np.abs(mean_a - mean_b) < 4 * np.hypot(se_a, se_b)), (mean_a, mean_b)
  # Estimator B has the lower variance here (the analytic KL removes the noise of log p/q(z)).
  assert np.all(se_b <= se_a)


def test_iwae_with_one_sample_is_estimator_a(key):
  _, _, x, encode, decode = _small_vae()
  np.testing.assert_allclose(
      vaex.iwae_bound(key, x, encode, decode, num_samples=1),
      vaex.elbo(key, x, encode, decode, analytic_kl=False),
      rtol=1e-6,
  )
  mean_iwae1, se_1 = _mean_and_stderr(
      lambda k: vaex.iwae_bound(k, x, encode, decode, num_samples=1), 20_000, seed=5
  )
  mean_b, se_b = _mean_and_stderr(lambda k: vaex.elbo(k, x, encode, decode), 20_000, seed=6)
  assert np.all(np.abs(mean_iwae1 - mean_b) < 4 * np.hypot(se_1, se_b))


def test_iwae_bound_increases_with_k():
  _, _, x, encode, decode = _small_vae(latent_dim=2)
  means, ses = [], []
  for k in (1, 5, 50):
    mean, se = _mean_and_stderr(
        lambda key, k=k: vaex.iwae_bound(key, x, encode, decode, num_samples=k), 4000, seed=k
    )
    means.append(mean)
    ses.append(se)
  for lo, hi, se_lo, se_hi in zip(means, means[1:], ses, ses[1:]):
    assert np.all(hi - lo > 4 * np.hypot(se_lo, se_hi)), (means, ses)


def test_reparameterized_gradient_matches_closed_form_elbo():
  """For p(x|z) = N(Wz + b, s^2 I) and q = N(m, diag(v)), the ELBO has a closed form:
  E_q log p(x|z) = log N(x; Wm + b, s^2 I) - sum_j ||W_j||^2 v_j / (2 s^2)."""
  w, b, x, _ = _linear_gaussian()
  x = jnp.asarray(x[:2], jnp.float32)
  w32, b32 = jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)
  decode = _gaussian_decoder(w, b)
  mean = jnp.array([[0.3, -0.5, 1.0], [0.1, 0.2, -0.4]])
  log_var = jnp.array([[-0.5, 0.2, -1.0], [0.4, -0.3, 0.0]])

  def closed_form(mean, log_var):
    residual = x - (mean @ w32.T + b32[None])
    expected_ll = (
        -0.5 * DIM_X * jnp.log(2 * jnp.pi * NOISE_STD**2)
        - 0.5 * jnp.sum(residual**2, -1) / NOISE_STD**2
        - 0.5 * jnp.sum(jnp.exp(log_var) * jnp.sum(w32**2, 0)[None], -1) / NOISE_STD**2
    )
    return jnp.sum(expected_ll - vaex.gaussian_kl(mean, log_var))

  def estimate(key, mean, log_var):
    encode = lambda _: (mean, log_var)  # noqa: E731  (q's parameters are what we differentiate)
    return jnp.sum(vaex.elbo(key, x, encode, decode, log_likelihood=vaex.gaussian_log_likelihood))

  exact_grads = jax.grad(closed_form, argnums=(0, 1))(mean, log_var)
  keys = jax.random.split(jax.random.key(8), 20_000)
  values, grads = jax.jit(
      jax.vmap(jax.value_and_grad(estimate, argnums=(1, 2)), in_axes=(0, None, None))
  )(keys, mean, log_var)
  values = np.asarray(values, np.float64)
  assert abs(values.mean() - closed_form(mean, log_var)) < 4 * values.std() / np.sqrt(len(keys))
  for got, want in zip(grads, exact_grads):
    got = np.asarray(got, np.float64)
    stderr = got.std(0) / np.sqrt(len(keys))
    assert np.all(np.abs(got.mean(0) - want) < 4 * stderr + 1e-6), (got.mean(0), want, stderr)


def test_vmap_over_keys_gives_independent_values_and_same_key_same_value(key):
  _, _, x, encode, decode = _small_vae()
  a = vaex.elbo(key, x, encode, decode)
  np.testing.assert_array_equal(a, vaex.elbo(key, x, encode, decode))
  values = jax.vmap(lambda k: vaex.elbo(k, x, encode, decode))(jax.random.split(key, 64))
  assert len(np.unique(np.asarray(values[:, 0]))) == 64


def test_bounds_accept_a_flax_apply_partial_and_differentiate_through_params(key):
  model, params, x, _, _ = _small_vae()

  def loss(params):
    encode = functools.partial(model.apply, params, method=vaex.VAE.encode)
    decode = functools.partial(model.apply, params, method=vaex.VAE.decode)
    return -jnp.mean(vaex.iwae_bound(key, x, encode, decode, num_samples=3))

  value, grads = jax.value_and_grad(loss)(params)
  assert np.isfinite(value)
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
  assert any(np.any(g != 0) for g in jax.tree_util.tree_leaves(grads))


def test_gaussian_decoder_works_with_the_bounds(key):
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=2, hidden_sizes=(16,)),
                   vaex.GaussianMLPDecoder(data_dim=10, hidden_sizes=(16,)))
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(4, 10)), jnp.float32)
  params = model.init(key, x)
  for estimator in vaex.ESTIMATORS if hasattr(vaex, "ESTIMATORS") else ("A", "B", "iwae"):
    value = vaex.bound(params, key, x, model, estimator=estimator, num_samples=3)
    assert value.shape == (4,) and np.all(np.isfinite(value))


@pytest.mark.parametrize("log_var_value", [80.0, -80.0])
@pytest.mark.parametrize("estimator", ["A", "B", "iwae"])
def test_extreme_posterior_variances_give_finite_bounds_and_gradients(key, log_var_value, estimator):
  _, _, x, _, decode = _small_vae()

  def objective(mean, log_var):
    encode = lambda _: (mean, log_var)  # noqa: E731
    if estimator == "iwae":
      return jnp.sum(vaex.iwae_bound(key, x, encode, decode, num_samples=5))
    return jnp.sum(vaex.elbo(key, x, encode, decode, num_samples=2, analytic_kl=estimator == "B"))

  mean = jnp.zeros((x.shape[0], 4))
  log_var = jnp.full_like(mean, log_var_value)
  value, grads = jax.jit(jax.value_and_grad(objective, argnums=(0, 1)))(mean, log_var)
  assert np.isfinite(value)
  assert all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("logit", [1e4, -1e4])
def test_extreme_decoder_logits_give_finite_bounds_and_gradients(key, logit):
  _, _, x, encode, _ = _small_vae()
  decode = lambda z: jnp.full((z.shape[0], 10), logit) + 0.0 * jnp.sum(z, -1, keepdims=True)  # noqa: E731
  value = vaex.elbo(key, x, encode, decode)
  assert np.all(np.isfinite(value))
  grad = jax.grad(lambda x: jnp.sum(vaex.iwae_bound(key, x, encode, decode, num_samples=4)))(x)
  assert np.all(np.isfinite(grad))


# ----- bad inputs: each names the argument and the fix -----

def _bound_call(**overrides):
  _, _, x, encode, decode = _small_vae()
  args = dict(key=jax.random.key(0), x=x, encode=encode, decode=decode)
  args.update(overrides)
  return lambda: vaex.elbo(args["key"], args["x"], args["encode"], args["decode"],
                           num_samples=args.get("num_samples", 1))


@pytest.mark.parametrize(
    "overrides, error, words",
    [
        (dict(x=np.ones((2, 3, 10), np.float32)), ValueError,
         ["encode(x)", "[batch, dim_z]", "(2, 3, 4)", "x.reshape(x.shape[0], -1)"]),
        (dict(x=np.ones((10,), np.float32)), ValueError, ["`x`", "rank 2", "x[None]"]),
        (dict(x=np.ones((6, 10), np.uint8)), TypeError, ["`x`", "uint8", "astype"]),
        (dict(x=np.ones((6, 12), np.float32), encode=lambda x: (x[:, :4], x[:, :4])), ValueError,
         ["decode(z)", "(6, 10)", "(12,) values per example"]),
        (dict(num_samples=0), ValueError, ["`num_samples`", "got 0"]),
        (dict(num_samples=2.0), TypeError, ["`num_samples`", "int"]),
        (dict(key=7), TypeError, ["`key`", "jax.random.key"]),
        (dict(encode=lambda x: x), TypeError, ["encode(x)", "(mean, log_var)"]),
        (dict(encode=lambda x: (x[:, :4], x[:, :3])), ValueError, ["mean", "log_var"]),
        (dict(decode=lambda z: jnp.zeros((z.shape[0], 9))), ValueError,
         ["decode(z)", "(6, 9)", "(10,) values per example"]),
    ],
)
def test_bad_inputs_to_the_bounds(overrides, error, words):
  with pytest.raises(error) as info:
    _bound_call(**overrides)()
  for word in words:
    assert word in str(info.value), (word, str(info.value))


def test_bad_inputs_are_caught_at_trace_time_under_jit():
  _, _, x, encode, decode = _small_vae()
  with pytest.raises(ValueError, match=r"\[batch, dim_z\]"):
    jax.jit(lambda k, x: vaex.iwae_bound(k, x, encode, decode, num_samples=2))(
        jax.random.key(0), x[None]
    )


def test_unknown_estimator_is_refused(key):
  model, params, x, _, _ = _small_vae()
  with pytest.raises(ValueError, match=r"`estimator` must be one of .*'C'"):
    vaex.loss(params, key, x, model, estimator="C")
