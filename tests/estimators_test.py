"""Gradient estimators (STL, DReG) and the KL weight, on the linear-Gaussian model where every gradient
is known: the ELBO of a diagonal q in closed form, and at the exact posterior the IWAE bound's gradient
is zero for the encoder and the gradient of log p(x) for the decoder (Fisher's identity)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vaex

DIM_X, DIM_Z, NOISE_STD, BATCH = 6, 3, 0.5, 4
LOG_NOISE_VAR = float(2 * np.log(NOISE_STD))


@functools.cache
def _model():
  """Orthogonal W (so the exact posterior is diagonal), the exact encoder and a perturbed one."""
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(DIM_X, DIM_Z)))
  w = q * np.array([2.0, 1.0, 0.5])
  b = rng.normal(size=DIM_X)
  x = b + rng.normal(size=(BATCH, DIM_X)) * 2.0
  post_var = 1.0 / (1.0 + np.sum(w**2, axis=0) / NOISE_STD**2)
  gain = post_var[:, None] * w.T / NOISE_STD**2
  exact = {"a": gain, "c": -gain @ b, "log_var": np.log(post_var)}
  off = {"a": gain * 0.7 + 0.05, "c": -gain @ b + 0.3, "log_var": np.log(post_var) + 0.5}
  decoder = {"w": w, "b": b}
  as32 = lambda tree: jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), tree)  # noqa: E731
  return as32(exact), as32(off), as32(decoder), jnp.asarray(x, jnp.float32)


def _encode(phi):
  return lambda x: (x @ phi["a"].T + phi["c"][None],
                    jnp.broadcast_to(phi["log_var"], (x.shape[0], DIM_Z)))


def _decode(theta):
  def decode(z):
    mean = z @ theta["w"].T + theta["b"][None]
    return mean, jnp.full_like(mean, LOG_NOISE_VAR)
  return decode


def _bound(phi, theta, key, x, kind, estimator, k=1, kl_weight=1.0):
  kwargs = dict(log_likelihood=vaex.gaussian_log_likelihood, num_samples=k,
                gradient_estimator=estimator, kl_weight=kl_weight)
  if kind == "iwae":
    return jnp.sum(vaex.iwae_bound(key, x, _encode(phi), _decode(theta), **kwargs))
  return jnp.sum(vaex.elbo(key, x, _encode(phi), _decode(theta), analytic_kl=kind == "B", **kwargs))


def _closed_form_elbo(phi, theta, x):
  """E_q log p(x|z) = log N(x; W m + b, s^2 I) - sum_j ||W_j||^2 v_j / (2 s^2), minus KL(q || p)."""
  mean, log_var = _encode(phi)(x)
  residual = x - (mean @ theta["w"].T + theta["b"][None])
  expected_ll = (-0.5 * DIM_X * jnp.log(2 * jnp.pi * NOISE_STD**2)
                 - 0.5 * jnp.sum(residual**2, -1) / NOISE_STD**2
                 - 0.5 * jnp.sum(jnp.exp(log_var) * jnp.sum(theta["w"] ** 2, 0)[None], -1)
                 / NOISE_STD**2)
  return jnp.sum(expected_ll - vaex.gaussian_kl(mean, log_var))


def _log_marginal(theta, x):
  cov = theta["w"] @ theta["w"].T + NOISE_STD**2 * jnp.eye(DIM_X)
  residual = x - theta["b"][None]
  _, logdet = jnp.linalg.slogdet(cov)
  quad = jnp.sum(residual * jnp.linalg.solve(cov, residual.T).T, -1)
  return jnp.sum(-0.5 * (DIM_X * jnp.log(2 * jnp.pi) + logdet + quad))


def _gradient_samples(phi, theta, kind, estimator, k=1, num_keys=20_000, seed=0, kl_weight=1.0):
  x = _model()[3]
  grad = jax.grad(_bound, argnums=(0, 1))
  keys = jax.random.split(jax.random.key(seed), num_keys)
  return jax.jit(jax.vmap(lambda key: grad(phi, theta, key, x, kind, estimator, k, kl_weight)))(keys)


def _assert_mean_matches(samples, expected, what):
  for path, got in jax.tree_util.tree_leaves_with_path(samples):
    want = functools.reduce(lambda t, p: t[p.idx if hasattr(p, "idx") else p.key], path, expected)
    want = np.asarray(want, np.float64)
    got = np.asarray(got, np.float64)
    stderr = got.std(0) / np.sqrt(len(got))
    assert np.all(np.abs(got.mean(0) - want) < 4 * stderr + 1e-3 * (1 + np.abs(want))), (
        what, jax.tree_util.keystr(path), got.mean(0), want, stderr)


@pytest.mark.parametrize("kind, estimator", [("A", "reparameterization"), ("A", "stl"),
                                             ("B", "reparameterization")])
def test_elbo_gradients_are_unbiased(kind, estimator):
  _, off, theta, x = _model()
  exact = jax.grad(_closed_form_elbo, argnums=(0, 1))(off, theta, x)
  _assert_mean_matches(_gradient_samples(off, theta, kind, estimator), exact, (kind, estimator))


@pytest.mark.parametrize("estimator", ["reparameterization", "dreg"])
def test_iwae_gradients_at_the_exact_posterior_are_zero_and_fisher(estimator):
  exact_phi, _, theta, x = _model()
  expected = (jax.tree.map(jnp.zeros_like, exact_phi), jax.grad(_log_marginal)(theta, x))
  samples = _gradient_samples(exact_phi, theta, "iwae", estimator, k=5, num_keys=4000)
  _assert_mean_matches(samples, expected, estimator)


def test_dreg_and_the_plain_iwae_gradient_agree_in_expectation_away_from_the_optimum():
  _, off, theta, _ = _model()
  plain = _gradient_samples(off, theta, "iwae", "reparameterization", k=5, num_keys=20_000, seed=1)
  dreg = _gradient_samples(off, theta, "iwae", "dreg", k=5, num_keys=20_000, seed=2)
  for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(dreg)):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    se = np.hypot(a.std(0), b.std(0)) / np.sqrt(len(a))
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * se + 1e-4), (a.mean(0), b.mean(0), se)
  # DReG's encoder gradient has the lower variance (the point of it): measured 0.51x here.
  assert np.asarray(dreg[0]["a"]).std(0).mean() < 0.75 * np.asarray(plain[0]["a"]).std(0).mean()


def test_stl_has_zero_variance_at_the_exact_posterior_and_the_reparameterization_gradient_does_not():
  exact_phi, _, theta, _ = _model()
  stl = _gradient_samples(exact_phi, theta, "A", "stl", num_keys=200)[0]
  plain = _gradient_samples(exact_phi, theta, "A", "reparameterization", num_keys=200)[0]
  for name in exact_phi:
    np.testing.assert_allclose(stl[name], 0.0, atol=2e-4)  # float32 rounding of a zero.
    assert np.asarray(plain[name]).std(0).max() > 0.1, name
  dreg = _gradient_samples(exact_phi, theta, "iwae", "dreg", k=5, num_keys=200)[0]
  for name in exact_phi:
    np.testing.assert_allclose(dreg[name], 0.0, atol=2e-4)


@pytest.mark.parametrize("k", [1, 50])
def test_dreg_decoder_gradient_equals_the_plain_iwae_decoder_gradient_for_the_same_key(variant, key, k):
  _, off, theta, x = _model()
  grad = lambda estimator: jax.grad(_bound, argnums=1)(off, theta, key, x, "iwae", estimator, k)  # noqa: E731
  plain, dreg = variant(lambda: grad("reparameterization"))(), variant(lambda: grad("dreg"))()
  for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(dreg)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_dreg_with_one_sample_is_stl(key):
  _, off, theta, x = _model()
  dreg = jax.grad(_bound, argnums=(0, 1))(off, theta, key, x, "iwae", "dreg", 1)
  stl = jax.grad(_bound, argnums=(0, 1))(off, theta, key, x, "A", "stl", 1)
  for a, b in zip(jax.tree_util.tree_leaves(dreg), jax.tree_util.tree_leaves(stl)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, estimator, k", [("A", "stl", 3), ("iwae", "dreg", 7)])
def test_an_estimator_changes_gradients_never_values(variant, key, kind, estimator, k):
  _, off, theta, x = _model()
  plain = variant(lambda: _bound(off, theta, key, x, kind, "reparameterization", k))()
  other = variant(lambda: _bound(off, theta, key, x, kind, estimator, k))()
  np.testing.assert_allclose(other, plain, rtol=1e-6)


def test_estimators_work_with_distribution_objects(key, allow_rank_promotion):
  """q as a distrax.MultivariateNormalDiag (a pytree, rebuilt with stopped parameters): at the exact
  posterior STL's and DReG's encoder gradients vanish for every key, the values are unchanged."""
  import distrax

  exact_phi, _, theta, x = _model()

  def bound(phi, key, estimator, kind):
    def encode(x):
      mean, log_var = _encode(phi)(x)
      return distrax.MultivariateNormalDiag(mean, jnp.exp(0.5 * log_var))
    kwargs = dict(log_likelihood=vaex.gaussian_log_likelihood, gradient_estimator=estimator)
    if kind == "iwae":
      return jnp.sum(vaex.iwae_bound(key, x, encode, _decode(theta), num_samples=4, **kwargs))
    return jnp.sum(vaex.elbo(key, x, encode, _decode(theta), analytic_kl=False, **kwargs))

  value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(bound), in_axes=(None, 0, None, None)),
                           static_argnums=(2, 3))
  keys = jax.random.split(key, 3)
  for kind, estimator in (("A", "stl"), ("iwae", "dreg")):
    values, grads = value_and_grad(exact_phi, keys, estimator, kind)
    plain_values, plain = value_and_grad(exact_phi, keys, "reparameterization", kind)
    np.testing.assert_allclose(values, plain_values, rtol=1e-6)
    for g in jax.tree_util.tree_leaves(grads):
      np.testing.assert_allclose(g, 0.0, atol=2e-4)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(plain)) > 0.1


class _ExactPosteriorObject:
  """A user object (not a pytree) holding the exact diagonal posterior: only the two methods."""
  def __init__(self, mean, log_var):
    self.mean, self.log_var = mean, log_var

  def sample_and_log_prob(self, *, seed, sample_shape):
    z = vaex.reparameterize(seed, self.mean, self.log_var, *sample_shape)
    return z, self.log_prob(z)

  def log_prob(self, z):
    return vaex.diag_gaussian_log_prob(z, jnp.broadcast_to(self.mean, z.shape),
                                       jnp.broadcast_to(self.log_var, z.shape))


@pytest.mark.parametrize("kind, estimator, k", [("A", "stl", 1), ("iwae", "dreg", 5)])
def test_estimators_work_with_any_object_with_log_prob(kind, estimator, k):
  """No pytree needed: the score term is subtracted, not stopped. At the exact posterior the encoder's
  gradient vanishes, and it equals the (mean, log_var) path's gradient for the same key."""
  exact_phi, off, theta, x = _model()

  def as_object(phi, key):
    encode = lambda x: _ExactPosteriorObject(*_encode(phi)(x))  # noqa: E731
    kwargs = dict(log_likelihood=vaex.gaussian_log_likelihood, gradient_estimator=estimator)
    if kind == "iwae":
      return jnp.sum(vaex.iwae_bound(key, x, encode, _decode(theta), num_samples=k, **kwargs))
    return jnp.sum(vaex.elbo(key, x, encode, _decode(theta), analytic_kl=False, **kwargs))

  grad_object = jax.jit(jax.grad(as_object))
  grad_pair = jax.jit(jax.grad(_bound), static_argnums=(4, 5, 6))
  for seed in range(3):
    key = jax.random.key(seed)
    for g in jax.tree_util.tree_leaves(grad_object(exact_phi, key)):
      np.testing.assert_allclose(g, 0.0, atol=2e-4)
    got = grad_object(off, key)
    want = grad_pair(off, theta, key, x, kind, estimator, k)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _call(kind, estimator, encode=None):
  _, off, theta, x = _model()
  encode = encode or _encode(off)
  kwargs = dict(log_likelihood=vaex.gaussian_log_likelihood, gradient_estimator=estimator)
  if kind == "iwae":
    return vaex.iwae_bound(jax.random.key(0), x, encode, _decode(theta), num_samples=3, **kwargs)
  return vaex.elbo(jax.random.key(0), x, encode, _decode(theta), analytic_kl=kind == "B", **kwargs)


@pytest.mark.parametrize(
    "kind, estimator, encode, error, words",
    [
        ("B", "stl", None, ValueError, ["'stl'", "estimator B", "analytic_kl=False"]),
        ("iwae", "stl", None, ValueError, ["biased", "'dreg'"]),
        ("A", "dreg", None, ValueError, ["IWAE", "'stl'"]),
        ("A", "score", None, ValueError, ["`gradient_estimator` must be one of", "'score'"]),
    ],
)
def test_estimators_that_do_not_apply_are_refused(kind, estimator, encode, error, words):
  with pytest.raises(error) as info:
    _call(kind, estimator, encode)
  for word in words:
    assert word in str(info.value), (word, str(info.value))


# ----- the KL weight (beta) -----

@pytest.mark.parametrize("analytic_kl", [True, False])
def test_kl_weight_scales_the_kl_term(variant, key, analytic_kl):
  _, off, theta, x = _model()
  args = (key, x, _encode(off), _decode(theta))
  kwargs = dict(log_likelihood=vaex.gaussian_log_likelihood, num_samples=2, analytic_kl=analytic_kl)
  terms = vaex.elbo_terms(*args, **kwargs)
  for beta in (0.0, 0.25, 1.0, 4.0):
    got = variant(lambda beta: vaex.elbo(*args, kl_weight=beta, **kwargs))(beta)
    np.testing.assert_allclose(got, terms.reconstruction - beta * terms.kl, rtol=1e-5, atol=1e-4)
  # kl_weight = 0 is a pure reconstruction objective, in value and in gradient.
  def objective(phi, which):
    a = (key, x, _encode(phi), _decode(theta))
    if which == "elbo":
      return jnp.sum(vaex.elbo(*a, kl_weight=0.0, **kwargs))
    return jnp.sum(vaex.elbo_terms(*a, **kwargs).reconstruction)

  for g, r in zip(jax.tree_util.tree_leaves(jax.grad(objective)(off, "elbo")),
                  jax.tree_util.tree_leaves(jax.grad(objective)(off, "reconstruction"))):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_a_negative_kl_weight_is_refused(key):
  _, off, theta, x = _model()
  with pytest.raises(ValueError, match=r"`kl_weight` must be >= 0; got -1.0"):
    vaex.elbo(key, x, _encode(off), _decode(theta), kl_weight=-1.0)


@pytest.mark.parametrize("k", [9])
def test_dreg_encoder_gradient_is_the_published_formula(variant, key, k):
  """Tucker et al. (2019), eq. 7, written directly with the encoder's parameters held apart:
  grad_phi = grad_phi sum_i sg(w~_i^2) log w_i(z_i(phi)), log q's parameters stopped."""
  _, off, theta, x = _model()

  def formula(phi):
    log_w = vaex.log_importance_weights(key, x, _encode(phi), _decode(theta), num_samples=k,
                                        log_likelihood=vaex.gaussian_log_likelihood,
                                        score_term=False)
    weights = jax.lax.stop_gradient(jax.nn.softmax(log_w, axis=0))
    return jnp.sum(weights**2 * log_w)

  want = variant(jax.grad(formula))(off)
  got = variant(jax.grad(lambda phi: _bound(phi, theta, key, x, "iwae", "dreg", k)))(off)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# ----- the KL weight on the IWAE bound (its warm-up) -----

@pytest.mark.parametrize("beta", [0.0, 0.3, 2.0])
def test_weighted_iwae_is_the_log_mean_of_the_weighted_importance_weights(key, beta):
  """Closed form on the samples themselves: log 1/k sum_i exp(log p(x|z_i) + beta log p(z_i)/q(z_i|x)),
  with the densities from scipy in float64."""
  import scipy.special
  import scipy.stats
  _, off, theta, x = _model()
  seen = []

  def decode(z):
    seen.append(np.asarray(z, np.float64))
    return _decode(theta)(z)

  k = 4
  terms = vaex.annealed_iwae(key, x, _encode(off), decode, log_likelihood=vaex.gaussian_log_likelihood,
                             num_samples=k, kl_weight=beta)
  z = seen[0].reshape(k, BATCH, DIM_Z)
  mean, log_var = (np.asarray(v, np.float64) for v in _encode(off)(x))
  w, b = (np.asarray(theta[n], np.float64) for n in ("w", "b"))
  log_px_z = scipy.stats.norm.logpdf(np.asarray(x, np.float64), z @ w.T + b, NOISE_STD).sum(-1)
  log_pz = scipy.stats.norm.logpdf(z).sum(-1)
  log_qz = scipy.stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(-1)
  log_mean = lambda a: scipy.special.logsumexp(a, axis=0) - np.log(k)  # noqa: E731
  np.testing.assert_allclose(terms.objective, log_mean(log_px_z + beta * (log_pz - log_qz)), rtol=1e-5)
  np.testing.assert_allclose(terms.bound, log_mean(log_px_z + log_pz - log_qz), rtol=1e-5)
  np.testing.assert_allclose(terms.kl, np.mean(log_qz - log_pz, 0), rtol=1e-4, atol=1e-4)
  got = vaex.iwae_bound(key, x, _encode(off), _decode(theta), num_samples=k, kl_weight=beta,
                        log_likelihood=vaex.gaussian_log_likelihood)
  np.testing.assert_allclose(got, terms.objective, rtol=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.5])
def test_weighted_iwae_with_one_sample_is_the_weighted_estimator_a(variant, key, beta):
  """k = 1: the value and gradient of `elbo(analytic_kl=False, kl_weight=beta)`; DReG is then STL."""
  _, off, theta, x = _model()
  for iwae_estimator, elbo_estimator in (("reparameterization", "reparameterization"),
                                         ("dreg", "stl")):
    def value_and_grad(kind, estimator):
      return variant(lambda beta: jax.value_and_grad(_bound, argnums=(0, 1))(
          off, theta, key, x, kind, estimator, 1, beta))(beta)

    got, want = value_and_grad("iwae", iwae_estimator), value_and_grad("A", elbo_estimator)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_weighted_dreg_agrees_with_the_weighted_iwae_gradient_in_expectation():
  """beta = 0.5, away from the optimum: DReG's (1 - beta) w~ + beta w~^2 path weights are unbiased
  for the gradient of the weighted objective (the plain reparameterization gradient is, by autodiff)."""
  _, off, theta, _ = _model()
  plain = _gradient_samples(off, theta, "iwae", "reparameterization", k=5, num_keys=20_000, seed=3,
                            kl_weight=0.5)
  dreg = _gradient_samples(off, theta, "iwae", "dreg", k=5, num_keys=20_000, seed=4, kl_weight=0.5)
  for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(dreg)):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    se = np.hypot(a.std(0), b.std(0)) / np.sqrt(len(a))
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * se + 1e-4), (a.mean(0), b.mean(0), se)
  # The weights are not DReG's own at beta = 1: there the means differ (the test can fail).
  wrong = _gradient_samples(off, theta, "iwae", "dreg", k=5, num_keys=20_000, seed=4)
  a, b = np.asarray(plain[0]["c"], np.float64), np.asarray(wrong[0]["c"], np.float64)
  assert np.any(np.abs(a.mean(0) - b.mean(0)) > 4 * np.hypot(a.std(0), b.std(0)) / np.sqrt(len(a)))


def test_weighted_dreg_decoder_gradient_is_the_weighted_iwae_decoder_gradient(variant, key):
  _, off, theta, x = _model()
  def decoder_gradient(estimator):
    return variant(lambda: jax.grad(_bound, argnums=1)(off, theta, key, x, "iwae", estimator, 6, 0.3))()

  grads = [decoder_gradient(estimator) for estimator in ("reparameterization", "dreg")]
  for a, b in zip(*map(jax.tree_util.tree_leaves, grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_negative_kl_weight_on_the_iwae_bound_is_refused(key):
  _, off, theta, x = _model()
  with pytest.raises(ValueError, match=r"`kl_weight` must be >= 0; got -0.5"):
    vaex.iwae_bound(key, x, _encode(off), _decode(theta), num_samples=2, kl_weight=-0.5)
