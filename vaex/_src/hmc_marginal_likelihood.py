"""The marginal likelihood estimator of the AEVB paper (Kingma & Welling 2013, Appendix D).

For each datapoint x, with p(z) = N(0, I):
  1. sample the posterior p(z|x) ∝ p(z) p(x|z) with HMC (`vaex.hmc_sample`, gradient of
     log p(z) + log p(x|z));
  2. fit a density q(z) to L of those draws;
  3. continue the chain for L fresh draws z_l and estimate
       p(x) ≈ ( 1/L sum_l q(z_l) / (p(z_l) p(x|z_l)) )^-1,
     in log space with `logsumexp`.
The estimator needs no encoder (the MCEM baseline has none). Since E_{p(z|x)}[q(z) / p(x, z)] =
1 / p(x) for any normalized q, step 3 is unbiased for 1/p(x) given q; its variance is finite only when
q has lighter tails than the posterior (int q^2 / p(z|x) < inf), and small when q is close to it.

q is a full-covariance Gaussian fitted by moments (mean and unbiased sample covariance of the first L
draws), regularized by adding 1e-3 times its own diagonal to the diagonal (a ridge relative to each
dimension's variance, so posterior directions of very different scales are treated alike; it widens
q by 0.05%), and optionally narrowed by `covariance_scale`. A chain that never moved has zero
variance and gives a non-finite estimate, which the public function reports.

How good is it (L = 1000, 12 seeds, tests/hmc_test.py models)? On the linear-Gaussian model the
posterior is Gaussian, q is almost exact, and the error is about 0.005 nats (sd; bias < 0.002). On
a 2-D latent Bernoulli decoder with skewed posteriors the moment-fitted q is heavier-tailed than
the posterior in places: errors have sd 0.05-0.14 nats, a bias of +0.03 to +0.08 nats (log p(x) too
high, the usual sign when rare large weights are missed) and an occasional outlier (0.4 nats).
`covariance_scale=0.5` cuts that to sd <= 0.05, bias <= 0.025, max 0.10, at the cost of a larger
error on Gaussian posteriors (sd 0.04 in 3-D; in d dimensions the variance of the weights grows like
(c (2/c - 1)^{1/2})^{-d} - 1 for scale c, so keep c near 1 for large latent spaces).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vaex._src import bounds, checks, densities, hmc

# The ridge added to the fitted covariance, relative to each dimension's variance.
_RIDGE = 1e-3


class _ById:
  """Wraps a callable (the log-likelihood) so that `jax.jit` can take it as a static argument,
  compared by identity: the same function object reuses the compiled program."""

  def __init__(self, fn: Any):
    self.fn = fn

  def __hash__(self) -> int:
    return id(self.fn)

  def __eq__(self, other: object) -> bool:
    return isinstance(other, _ById) and other.fn is self.fn


def _as_partial(decode: bounds.Decoder) -> jax.tree_util.Partial:
  """`decode` as a pytree for `jax.jit`: a `jax.tree_util.Partial`'s bound arguments (e.g. the
  parameters) are traced, so new values reuse the compiled program; any other callable is static
  and compared as Python compares it (a new closure compiles again)."""
  return decode if isinstance(decode, jax.tree_util.Partial) else jax.tree_util.Partial(decode)


def _gaussian_fit_log_prob(fit: jax.Array, z: jax.Array, covariance_scale: jax.Array) -> jax.Array:
  """log q(z) for the Gaussian q fitted to `fit: [n, d]` (see the module docstring); `z: [m, d] -> [m]`.

  Works on the correlation scale for conditioning: q's covariance is
  covariance_scale * D^1/2 (C + ridge I) D^1/2 with D the sample variances and C the sample correlation
  matrix.
  """
  num, dim = fit.shape
  mean = jnp.mean(fit, axis=0)
  centered = fit - mean[None]
  cov = centered.T @ centered / (num - 1)
  std = jnp.sqrt(jnp.diagonal(cov) * covariance_scale)
  corr = cov * covariance_scale / (std[:, None] * std[None, :]) + _RIDGE * jnp.eye(dim, dtype=fit.dtype)
  chol = jnp.linalg.cholesky(corr)
  u = (z - mean[None]) / std[None]
  white = jax.scipy.linalg.solve_triangular(chol, u.T, lower=True)  # [d, m]
  log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol))) + 2.0 * jnp.sum(jnp.log(std))
  return -0.5 * (dim * math.log(2.0 * math.pi) + log_det + jnp.sum(jnp.square(white), axis=0))


@functools.partial(
    jax.jit,
    static_argnames=("log_likelihood", "num_samples", "num_warmup", "num_leapfrog_steps"),
)
def _hmc_log_likelihood(
    key: jax.Array,
    x: jax.Array,
    initial_position: jax.Array,
    step_size: jax.Array,
    target_acceptance: jax.Array,
    covariance_scale: jax.Array,
    decode: jax.tree_util.Partial,
    *,
    log_likelihood: _ById,
    num_samples: int,
    num_warmup: int,
    num_leapfrog_steps: int,
) -> jax.Array:
  """The compiled estimator: one chain per datapoint, `jax.vmap`-ed over the batch. `[batch]`."""

  def one_datapoint(key, x_i, z0):
    def log_joint(z):  # log p(z) + log p(x|z): [dim_z] -> [].
      return densities.standard_normal_log_prob(z) + log_likelihood.fn(x_i[None], decode(z[None]))[0]

    chain = hmc.hmc_sample(
        key, log_joint, z0, num_samples=2 * num_samples, num_warmup=num_warmup,
        num_leapfrog_steps=num_leapfrog_steps, step_size=step_size,
        target_acceptance=target_acceptance,
    )
    fit, fresh = chain.samples[:num_samples], chain.samples[num_samples:]
    x_rep = jnp.broadcast_to(x_i[None], (num_samples, x_i.shape[-1]))
    log_p = densities.standard_normal_log_prob(fresh) + log_likelihood.fn(x_rep, decode(fresh))
    # log q(z_l) - log p(x, z_l): [L].
    log_ratio = _gaussian_fit_log_prob(fit, fresh, covariance_scale) - log_p
    return math.log(num_samples) - jax.nn.logsumexp(log_ratio)

  keys = jax.random.split(key, x.shape[0])
  return jax.vmap(one_datapoint)(keys, x, initial_position)


def _check_decoder(
    x: jax.Array, decode: bounds.Decoder, log_likelihood: bounds.LogLikelihood, latent_dim: int
) -> None:
  """Traces decode and log_likelihood once on one datapoint (shapes only, nothing runs)."""
  z = jax.ShapeDtypeStruct((1, latent_dim), x.dtype)
  try:
    out = jax.eval_shape(lambda z: log_likelihood(x[:1], decode(z)), z)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"`decode` and `log_likelihood` failed on z of shape (1, {latent_dim}) (latent_dim="
        f"{latent_dim}) and one row of x ({x.shape[-1]} values): {e}. Check that latent_dim is the "
        "decoder's input size and that the decoder matches the data and the likelihood."
    ) from e
  if getattr(out, "shape", None) != (1,):
    raise ValueError(
        f"`log_likelihood(x, decode(z))` must return one value per example, shape [n]; for one "
        f"example it returned {out}. Sum over the event axis."
    )


def hmc_log_likelihood(
    key: jax.Array,
    x: jax.Array,
    decode: bounds.Decoder,
    *,
    latent_dim: int,
    log_likelihood: bounds.LogLikelihood = densities.bernoulli_log_likelihood,
    num_samples: int = 1000,
    num_warmup: int = 500,
    num_leapfrog_steps: int = 10,
    step_size: float = 0.1,
    target_acceptance: float = 0.9,
    initial_position: jax.Array | None = None,
    covariance_scale: float = 1.0,
) -> jax.Array:
  """log p(x) by the HMC + fitted-density estimator of Kingma & Welling (2013), Appendix D: `[batch]`.

  Per datapoint: one HMC chain on log p(z) + log p(x|z) (p(z) = N(0, I)) runs `num_warmup`
  step-size-tuning transitions, then `2 * num_samples` more; a full-covariance Gaussian q is fitted
  to the first `num_samples` draws (see the module docstring) and the last `num_samples` give
  log p(x) ≈ log L - logsumexp_l (log q(z_l) - log p(z_l) - log p(x|z_l)).

  The whole batch runs in one compiled call (a `jax.vmap` over datapoints, each chain with its own
  tuned step size); calling again with the same `decode` and `log_likelihood` objects and shapes
  reuses the compiled program. To evaluate many parameter values (e.g. along training) without
  recompiling, pass `decode=jax.tree_util.Partial(apply_decode, params)` with one `apply_decode`
  object, e.g. `functools.partial(model.apply, method=vaex.VAE.decode)`: the parameters are then
  traced arguments of the compiled program. This is a host-side wrapper: it checks its inputs, and
  afterwards fetches the `[batch]` result once to check it is finite, so it cannot itself be jitted.

  Args:
    key: a `jax.random.key`.
    x: `[batch, dim_x]` floating data (batch >= 1).
    decode: `z: [n, dim_z] -> params of p(x|z)` for n points (as for `vaex.elbo`); no encoder is needed.
    latent_dim: dim_z.
    log_likelihood: `(x, params) -> [n]`, e.g. `vaex.bernoulli_log_likelihood` (default) or
      `vaex.gaussian_log_likelihood`.
    num_samples: L >= 2: draws used to fit q, and as many fresh draws used in the estimate.
    num_warmup: step-size tuning transitions per chain, discarded (>= 0).
    num_leapfrog_steps: leapfrog steps per HMC transition (>= 1).
    step_size: initial leapfrog step size (finite, > 0); warmup tunes it per datapoint.
    target_acceptance: warmup's target mean acceptance probability, in (0, 1).
    initial_position: optional `[batch, latent_dim]` chain starts (e.g. an encoder's means);
      defaults to zeros (the prior mode).
    covariance_scale: in (0, 1]: q's covariance is the fitted one times this. 1 (the default) is the
      plain moment fit; smaller values give q lighter tails than the posterior, trading a little
      variance on near-Gaussian posteriors for robustness on skewed ones (see the module docstring).

  Returns:
    `[batch]` estimates of log p(x) in nats.

  Raises:
    ValueError / TypeError: for a bad argument (named in the message), and ValueError naming the
      datapoint indices whose estimate is NaN/inf (a diverging sampler or a decoder producing NaN).
  """
  checks.check_key(key)
  checks.check_floating(x, "x")
  checks.check_rank(x, "x", 2, "[batch, dim_x]")
  if x.shape[0] == 0:
    raise ValueError(
        f"`x` is an empty batch: got {checks._describe(x)}. Pass at least one datapoint."  # noqa: SLF001
    )
  checks.check_finite(x, "x")
  if not callable(decode):
    raise TypeError(
        f"`decode` must be a callable z: [n, dim_z] -> params of p(x|z); got "
        f"{type(decode).__name__}. Pass e.g. `vaex.encoder_decoder(model, params)[1]`."
    )
  if not callable(log_likelihood):
    raise TypeError(
        f"`log_likelihood` must be a callable (x, params) -> [n]; got {type(log_likelihood).__name__}. "
        "Pass e.g. `vaex.bernoulli_log_likelihood`."
    )
  latent_dim = checks.check_positive_int(latent_dim, "latent_dim")
  num_samples = checks.check_positive_int(num_samples, "num_samples")
  if num_samples < 2:
    raise ValueError(
        f"`num_samples` must be >= 2 (q's covariance is fitted to them); got {num_samples}. "
        "Use hundreds, e.g. the default `num_samples=1000`."
    )
  num_warmup = hmc.check_num_warmup(num_warmup)
  num_leapfrog_steps = checks.check_positive_int(num_leapfrog_steps, "num_leapfrog_steps")
  hmc.check_step_size(step_size)
  hmc.check_target_acceptance(target_acceptance)
  if isinstance(covariance_scale, bool) or not isinstance(covariance_scale, numbers.Real):
    raise TypeError(
        f"`covariance_scale` must be a Python float in (0, 1]; got {covariance_scale!r}. "
        "Pass e.g. `covariance_scale=1.0`."
    )
  if not 0.0 < float(covariance_scale) <= 1.0:
    raise ValueError(
        f"`covariance_scale` must be a float in (0, 1]; got {covariance_scale!r}. Use 1 for the "
        "plain moment fit, or e.g. 0.5 for a q with lighter tails than the posterior (values above "
        "1 would make the estimator's variance larger, possibly infinite)."
    )
  if initial_position is None:
    initial_position = jnp.zeros((x.shape[0], latent_dim), x.dtype)
  else:
    checks.check_floating(initial_position, "initial_position")
    checks.check_rank(initial_position, "initial_position", 2, "[batch, latent_dim]")
    if initial_position.shape[0] != x.shape[0]:
      raise ValueError(
          f"`initial_position` must have one row per datapoint: x has {x.shape[0]} but got "
          f"{checks._describe(initial_position)}. Pass `[batch, latent_dim]` starts, or None."
      )
    if initial_position.shape[1] != latent_dim:
      raise ValueError(
          f"`initial_position` has {initial_position.shape[1]} latent dimensions but "
          f"latent_dim={latent_dim}. Make them agree: latent_dim is the decoder's input size."
      )
    checks.check_finite(initial_position, "initial_position")
    initial_position = jnp.asarray(initial_position, x.dtype)
  _check_decoder(x, decode, log_likelihood, latent_dim)

  log_px = _hmc_log_likelihood(
      key, jnp.asarray(x), initial_position,
      jnp.asarray(step_size, x.dtype), jnp.asarray(target_acceptance, x.dtype),
      jnp.asarray(covariance_scale, x.dtype), _as_partial(decode),
      log_likelihood=_ById(log_likelihood), num_samples=num_samples,
      num_warmup=num_warmup, num_leapfrog_steps=num_leapfrog_steps,
  )
  bad = np.flatnonzero(~np.isfinite(np.asarray(log_px)))
  if bad.size:
    shown = bad[:20].tolist()
    more = f" (and {bad.size - 20} more)" if bad.size > 20 else ""
    raise ValueError(
        f"hmc_log_likelihood: non-finite log-likelihood for datapoint(s) {shown}{more} of "
        f"{x.shape[0]}. The chain diverged or never moved, or log p(x|z) is NaN there: check the "
        "decoder's output for those x (and initial_position), reduce `step_size`, or raise "
        "`num_warmup` so the step size can adapt."
    )
  return log_px
