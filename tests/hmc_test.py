"""Hamiltonian Monte Carlo and the HMC marginal-likelihood estimator (Kingma & Welling 2013, App. D).

References: a correlated Gaussian target with known moments; the leapfrog map's exact properties
(reversible, volume-preserving, second-order energy error); the linear-Gaussian model, whose
log p(x) = log N(x; b, W W^T + s^2 I) is known in closed form; a 2-D latent Bernoulli decoder whose
log p(x) is integrated on a float64 grid.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bounds_test import DIM_Z, NOISE_STD, _gaussian_decoder, _linear_gaussian, _linear_gaussian_bounds
from scipy import special, stats

import vaex
from vaex._src import hmc

# A correlated 3-D Gaussian target with unequal scales.
_COV = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 2.0]])
_MEAN = np.array([1.0, -2.0, 0.5])
_PRECISION = np.linalg.inv(_COV).astype(np.float32)


def _gaussian_log_prob(z):
  d = z - _MEAN.astype(np.float32)
  return -0.5 * d @ _PRECISION @ d


def test_moments_and_acceptance_of_a_correlated_gaussian(variant):
  """Chain means and covariances match the target within 4 standard errors. The standard errors
  are the spread across independent chains (vmap over keys), which accounts for autocorrelation."""
  num_chains, target = 8, 0.8
  run = variant(jax.vmap(lambda k: vaex.hmc_sample(
      k, _gaussian_log_prob, jnp.zeros(3), num_samples=1000, num_warmup=300,
      target_acceptance=target)))
  result = run(jax.random.split(jax.random.key(0), num_chains))
  assert result.samples.shape == (num_chains, 1000, 3)
  assert result.step_size.shape == (num_chains,) and result.acceptance_rate.shape == (num_chains,)
  samples = np.asarray(result.samples, np.float64)
  means = samples.mean(1)  # [chains, 3]
  covs = np.stack([np.cov(s.T) for s in samples])  # [chains, 3, 3]
  for estimate, truth in ((means, _MEAN), (covs, _COV)):
    stderr = estimate.std(0, ddof=1) / math.sqrt(num_chains)
    assert np.all(np.abs(estimate.mean(0) - truth) < 4 * stderr), (estimate.mean(0), truth, stderr)
  assert abs(float(np.mean(result.acceptance_rate)) - target) < 0.1, result.acceptance_rate


def test_one_step_leaves_the_target_invariant_with_per_chain_step_sizes():
  """Start 20,000 independent chains at exact draws of N(0, diag(1, 4)) and take one jitted, vmapped
  step, each chain with its own (traced) step size: mostly 1.9, where about half the proposals are
  rejected. Any fixed step size leaves the target invariant, so the second moments stay those of the
  target within 4 standard errors; the same proposals without the Metropolis correction move them by
  many (checked below, so the test has power)."""
  scales = np.array([1.0, 2.0], np.float32)
  log_prob = lambda z: -0.5 * jnp.sum(jnp.square(z / scales))  # noqa: E731
  num = 20_000
  z0 = jax.random.normal(jax.random.key(1), (num, 2)) * scales[None]

  def run(key, z, step_size):
    state, info = vaex.hmc_step(key, vaex.hmc_init(log_prob, z), log_prob, step_size=step_size,
                                num_leapfrog_steps=3, step_size_jitter=0.0)
    always_accepted, _ = hmc._leapfrog(  # noqa: SLF001  (the proposal, accepted or not)
        log_prob, vaex.hmc_init(log_prob, z), jax.random.normal(jax.random.split(key, 3)[1], (2,)),
        step_size, 3)
    return state, info, always_accepted.position

  step_sizes = jnp.full((num,), 1.9).at[:2].set(jnp.array([1e-3, 50.0]))
  state, info, z_bad = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(2), num), z0,
                                              step_sizes)
  assert isinstance(state, vaex.HMCState) and isinstance(info, vaex.HMCInfo)
  assert state.position.shape == (num, 2) and state.log_prob.shape == (num,)
  assert info.acceptance_probability.dtype == jnp.float32 and info.is_accepted.dtype == jnp.bool_
  np.testing.assert_allclose(state.log_prob, jax.vmap(log_prob)(state.position), rtol=1e-6)
  acceptance = np.asarray(info.acceptance_probability)
  assert acceptance[0] > 0.99 and acceptance[1] < 1e-3  # A tiny step is exact; a huge one diverges.
  assert not info.is_accepted[1] and np.all(state.position[1] == z0[1])  # Rejected: it stays put.
  assert 0.2 < float(acceptance[2:].mean()) < 0.8
  second = np.asarray(state.position, np.float64) ** 2
  stderr = second.std(0) / math.sqrt(num)
  assert np.all(np.abs(second.mean(0) - scales**2) < 4 * stderr), (second.mean(0), stderr)
  second_bad = np.asarray(z_bad, np.float64) ** 2
  assert np.any(np.abs(second_bad.mean(0) - scales**2) > 10 * stderr), second_bad.mean(0)


def test_leapfrog_is_reversible_volume_preserving_and_second_order():
  log_prob = lambda z: _gaussian_log_prob(z) - 0.1 * jnp.sum(z**4)  # noqa: E731  (non-Gaussian)
  position, momentum = jnp.array([0.3, -1.0, 0.8]), jnp.array([0.5, 1.0, -0.7])

  def flow(position, momentum, step_size=0.05, num_steps=20):
    end, p = hmc._leapfrog(log_prob, vaex.hmc_init(log_prob, position), momentum, step_size, num_steps)  # noqa: SLF001
    energy_change = (-end.log_prob + 0.5 * jnp.sum(p**2)) - (
        -log_prob(position) + 0.5 * jnp.sum(momentum**2))
    return end.position, p, energy_change

  @jax.jit
  def properties(position, momentum):
    end, p, _ = flow(position, momentum)
    back, p_back, _ = flow(end, -p)  # Flip the momentum at the end and integrate again.
    jacobian = jax.jacfwd(lambda v: jnp.concatenate(flow(v[:3], v[3:])[:2]))(
        jnp.concatenate([position, momentum]))
    # The energy error over a fixed time (1.0), for two step sizes.
    coarse, fine = flow(position, momentum, 0.1, 10)[2], flow(position, momentum, 0.05, 20)[2]
    return back, -p_back, jnp.linalg.det(jacobian), jnp.abs(coarse), jnp.abs(fine)

  back, p_back, det, coarse, fine = properties(position, momentum)
  np.testing.assert_allclose(back, position, atol=2e-5)  # Reversible: back at the start.
  np.testing.assert_allclose(p_back, momentum, atol=2e-5)
  assert abs(float(det) - 1.0) < 1e-4  # Volume-preserving.
  # Second order: the energy error is small and shrinks ~4x when the step halves.
  assert coarse < 0.05 and 2.5 < coarse / fine < 6.0, (coarse, fine)


def test_no_warmup_keeps_the_step_size_and_results_are_reproducible():
  run = jax.jit(lambda k: vaex.hmc_sample(
      k, _gaussian_log_prob, jnp.zeros(3), num_samples=50, num_warmup=0, step_size=0.3))
  a, b = run(jax.random.key(5)), run(jax.random.key(5))
  np.testing.assert_allclose(a.step_size, 0.3, rtol=1e-6)
  np.testing.assert_array_equal(a.samples, b.samples)
  assert not np.array_equal(a.samples, run(jax.random.key(6)).samples)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(step_size=0.0), ValueError, "`step_size` must be a finite number > 0; got 0.0"),
    (dict(step_size=float("nan")), ValueError, "`step_size` must be a finite number > 0; got nan"),
    (dict(step_size=-1.0), ValueError, "`step_size`.*e.g. `step_size=0.1`"),
    (dict(num_samples=0), ValueError, "`num_samples` must be >= 1"),
    (dict(num_warmup=-1), ValueError, "`num_warmup` must be >= 0; got -1"),
    (dict(num_warmup=2.0), TypeError, "`num_warmup` must be a Python int"),
    (dict(num_leapfrog_steps=0), ValueError, "`num_leapfrog_steps` must be >= 1"),
    (dict(target_acceptance=1.0), ValueError, "`target_acceptance` must lie strictly between 0 and 1"),
    (dict(target_acceptance=0.0), ValueError, "`target_acceptance`.*got 0.0"),
    (dict(step_size_jitter=1.0), ValueError, "`step_size_jitter` must lie in \\[0, 1\\)"),
    (dict(initial_position=jnp.zeros((2, 3))), ValueError, "`initial_position` must be one chain"),
    (dict(initial_position=jnp.zeros(3, jnp.int32)), TypeError, "`initial_position` must have a float"),
    (dict(log_prob_fn=lambda z: -0.5 * z**2), ValueError, "`log_prob_fn` must map a \\[dim_z\\]"),
])
def test_sampler_bad_inputs(kwargs, error, match):
  args = dict(log_prob_fn=_gaussian_log_prob, initial_position=jnp.zeros(3), num_samples=10,
              num_warmup=10)
  args.update(kwargs)
  with pytest.raises(error, match=match):
    vaex.hmc_sample(jax.random.key(0), **args)


def test_step_bad_inputs():
  state = vaex.hmc_init(_gaussian_log_prob, jnp.zeros(3))
  with pytest.raises(ValueError, match="`step_size` must be a finite number > 0; got inf"):
    vaex.hmc_step(jax.random.key(0), state, _gaussian_log_prob, step_size=float("inf"))
  with pytest.raises(TypeError, match="`key` must be a jax.random key"):
    vaex.hmc_step(0, state, _gaussian_log_prob, step_size=0.1)


# The marginal-likelihood estimator.

def test_exact_on_the_linear_gaussian_model_deterministic_and_compiled_once():
  """For a Gaussian posterior the fitted q is nearly the posterior, so the estimate is nearly exact.

  With q moment-fitted to L draws in d dimensions, chi^2(q || posterior) ~ d(d+3) / (2L), so
  log L - logsumexp(log q - log p(x, z_l)) over L fresh draws has a standard error of about
  sqrt(tau * d(d+3) / 2) / L; tau = 4 is a conservative autocorrelation factor (about 1-2 is seen).
  """
  x, exact, _, decode, kwargs = _linear_gaussian_bounds()
  traces = []

  num_samples = 1000

  def counting_decode(z):
    if z.shape[0] == num_samples:  # The decode of the L fresh draws: only in the compiled core.
      traces.append(1)
    return decode(z)

  stderr = math.sqrt(4 * DIM_Z * (DIM_Z + 3) / 2) / num_samples
  got = vaex.hmc_log_likelihood(jax.random.key(0), x, counting_decode, latent_dim=DIM_Z,
                                num_samples=num_samples, **kwargs)
  assert got.shape == (5,) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, exact, atol=4 * stderr, rtol=0)
  count = len(traces)
  again = vaex.hmc_log_likelihood(jax.random.key(0), x, counting_decode, latent_dim=DIM_Z,
                                  num_samples=num_samples, **kwargs)
  np.testing.assert_array_equal(got, again)
  assert count >= 1 and len(traces) == count  # The second call reused the compiled program.


def test_reference_without_jit_or_vmap_on_one_datapoint():
  """The same estimator assembled by hand from an eager `vaex.hmc_sample`, fitted and evaluated in
  float64 with scipy, is also exact (tolerance as in the previous test, for L = 500)."""
  w, b, x64, exact = _linear_gaussian()
  x, decode = x64.astype(np.float32), _gaussian_decoder(w, b)
  i, num_samples = 3, 500  # The datapoint farthest from the prior.

  def log_joint(z):
    log_lik = vaex.gaussian_log_likelihood(x[i][None], decode(z[None]))[0]
    return vaex.standard_normal_log_prob(z) + log_lik

  chain = vaex.hmc_sample(jax.random.key(4), log_joint, jnp.zeros(DIM_Z),
                          num_samples=2 * num_samples, num_warmup=300)
  samples = np.asarray(chain.samples, np.float64)
  fit, fresh = samples[:num_samples], samples[num_samples:]
  log_q = stats.multivariate_normal(fit.mean(0), np.cov(fit.T)).logpdf(fresh)
  log_p = (stats.multivariate_normal(np.zeros(DIM_Z)).logpdf(fresh)
           + stats.norm(fresh @ w.T + b[None], NOISE_STD).logpdf(x64[i][None]).sum(-1))
  estimate = math.log(num_samples) - special.logsumexp(log_q - log_p)
  stderr = math.sqrt(4 * DIM_Z * (DIM_Z + 3) / 2) / num_samples
  assert abs(estimate - exact[i]) < 4 * stderr, (estimate, exact[i])


# A 2-D latent Bernoulli decoder with a random tanh layer. It returns NaN logits where z_0 > 50, so a
# chain started there (and only there) yields NaN; the tests share its compiled program.
_W1 = np.random.default_rng(7).normal(size=(2, 16)).astype(np.float32) * 1.5
_W2 = np.random.default_rng(8).normal(size=(16, 12)).astype(np.float32)
_B2 = np.random.default_rng(9).normal(size=12).astype(np.float32)
_X_BERNOULLI = (np.random.default_rng(10).uniform(size=(4, 12)) < 0.5).astype(np.float32)


def _bernoulli_decode(z):
  logits = jnp.tanh(z @ _W1) @ _W2 + _B2[None]
  return jnp.where(z[:, :1] > 50.0, jnp.nan, logits)


def _grid_log_likelihood(x):
  """log p(x) = log int N(z; 0, I) p(x|z) dz by a Riemann sum on [-7, 7]^2, in float64."""
  axis = np.linspace(-7.0, 7.0, 401)
  z = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
  logits = np.tanh(z @ _W1.astype(np.float64)) @ _W2.astype(np.float64) + _B2
  log_prior = stats.multivariate_normal(np.zeros(2)).logpdf(z)
  log_lik = x @ -np.logaddexp(0, -logits).T + (1 - x) @ -np.logaddexp(0, logits).T  # [batch, grid]
  return special.logsumexp(log_prior[None] + log_lik, axis=1) + 2 * np.log(axis[1] - axis[0])


def test_bernoulli_decoder_agrees_with_quadrature():
  """The posteriors are skewed here, so the moment-fitted q is heavier-tailed than the posterior in
  places and the estimate is only close. Over 12 seeds the errors had sd 0.05-0.14 nats and at most
  0.41; with `covariance_scale=0.5` (a lighter-tailed q) sd <= 0.05 and at most 0.10. The bounds
  below leave a wide margin: 1 nat per datapoint (0.2 on the batch mean), and 0.25 with the scale.
  (Importance sampling with the prior as proposal and 100,000 samples agreed with the quadrature to
  0.02 nats; it is left out to keep the test fast.)"""
  exact = _grid_log_likelihood(_X_BERNOULLI.astype(np.float64))
  got = np.asarray(vaex.hmc_log_likelihood(
      jax.random.key(0), _X_BERNOULLI, _bernoulli_decode, latent_dim=2, num_samples=1000))
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, exact, atol=1.0, rtol=0)
  assert abs(np.mean(got - exact)) < 0.2, got - exact
  narrow = np.asarray(vaex.hmc_log_likelihood(
      jax.random.key(0), _X_BERNOULLI, _bernoulli_decode, latent_dim=2, num_samples=1000,
      covariance_scale=0.5))
  np.testing.assert_allclose(narrow, exact, atol=0.25, rtol=0)


def test_names_the_datapoints_with_non_finite_estimates():
  start = np.zeros((4, 2), np.float32)
  start[[1, 3], 0] = 100.0  # The decoder returns NaN there.
  with pytest.raises(ValueError, match=r"non-finite log-likelihood for datapoint\(s\) \[1, 3\] of 4"):
    vaex.hmc_log_likelihood(jax.random.key(0), _X_BERNOULLI, _bernoulli_decode, latent_dim=2,
                            num_samples=1000, initial_position=start)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(step_size=0.0), ValueError, "`step_size` must be a finite number > 0; got 0.0.*step_size=0.1"),
    (dict(step_size=float("inf")), ValueError, "`step_size` must be a finite number > 0; got inf"),
    (dict(num_samples=1), ValueError, "`num_samples` must be >= 2.*got 1"),
    (dict(num_warmup=-5), ValueError, "`num_warmup` must be >= 0; got -5"),
    (dict(num_leapfrog_steps=0), ValueError, "`num_leapfrog_steps` must be >= 1"),
    (dict(target_acceptance=1.5), ValueError, "`target_acceptance` must lie strictly between 0 and 1"),
    (dict(latent_dim=0), ValueError, "`latent_dim` must be >= 1"),
    (dict(x=np.zeros((0, 12), np.float32)), ValueError, "`x` is an empty batch"),
    (dict(x=np.zeros(12, np.float32)), ValueError, "`x` must have rank 2.*Add a batch axis"),
    (dict(x=np.full((4, 12), np.nan, np.float32)), ValueError, "`x` must be finite"),
    (dict(x=np.zeros((4, 12), np.int32)), TypeError, "`x` must have a floating dtype"),
    (dict(decode=None), TypeError, "`decode` must be a callable"),
    (dict(key=3), TypeError, "`key` must be a jax.random key"),
    (dict(initial_position=np.zeros((4, 3), np.float32)), ValueError,
     "`initial_position` has 3 latent dimensions but latent_dim=2"),
    (dict(initial_position=np.zeros((3, 2), np.float32)), ValueError,
     "`initial_position` must have one row per datapoint: x has 4"),
    (dict(initial_position=np.zeros(2, np.float32)), ValueError, "`initial_position` must have rank 2"),
    (dict(covariance_scale=0.0), ValueError, r"`covariance_scale` must be a float in \(0, 1\]; got 0.0"),
    (dict(covariance_scale=2.0), ValueError, "`covariance_scale`.*got 2.0"),
    (dict(covariance_scale="1"), TypeError, "`covariance_scale` must be a Python float"),
    (dict(latent_dim=3), ValueError, r"failed on z of shape \(1, 3\) \(latent_dim=3\)"),
    (dict(log_likelihood=lambda x, logits: -jnp.square(x - logits)), ValueError,
     "must return one value per example"),
])
def test_estimator_bad_inputs(kwargs, error, match):
  args = dict(key=jax.random.key(0), x=_X_BERNOULLI, decode=_bernoulli_decode, latent_dim=2)
  args.update(kwargs)
  with pytest.raises(error, match=match):
    vaex.hmc_log_likelihood(**args)


def test_a_partial_decoder_reuses_the_compiled_estimator_for_new_parameters():
  from vaex._src import hmc_marginal_likelihood

  model = vaex.VAE(vaex.MLPEncoder(2, (8,)), vaex.BernoulliMLPDecoder(16, (8,)))
  apply_decode = functools.partial(model.apply, method=vaex.VAE.decode)
  x = jnp.asarray((np.random.default_rng(0).uniform(size=(3, 16)) < 0.3).astype(np.float32))
  key = jax.random.key(1)
  kwargs = dict(latent_dim=2, num_samples=8, num_warmup=4)
  estimates = []
  for seed in (0, 1, 2):
    params = model.init(jax.random.key(seed), x)
    estimates.append(vaex.hmc_log_likelihood(
        key, x, jax.tree_util.Partial(apply_decode, params), **kwargs))
    if seed == 0:
      compiled = hmc_marginal_likelihood._hmc_log_likelihood._cache_size()
  assert hmc_marginal_likelihood._hmc_log_likelihood._cache_size() == compiled  # No recompilation.
  closure = vaex.encoder_decoder(model, model.init(jax.random.key(2), x))[1]
  np.testing.assert_allclose(estimates[-1], vaex.hmc_log_likelihood(key, x, closure, **kwargs),
                             rtol=1e-3)
  assert not np.allclose(estimates[0], estimates[1])  # The new parameters were used.
