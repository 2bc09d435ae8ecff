"""Log densities and the Gaussian KL, as pure functions reducing over the event (last) axis.

All functions take arrays of any leading (batch) shape `[...]` and an event axis last, and return
`[...]`. They are computed in log space so that extreme parameters stay finite: Bernoulli from logits
with `softplus`, Gaussians from log-variances with the scaled residual formed before squaring.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vaex._src import checks

_LOG_2PI = math.log(2.0 * math.pi)


def bernoulli_log_likelihood(x: jax.Array, logits: jax.Array) -> jax.Array:
  """log Bernoulli(x | sigmoid(logits)) summed over the last axis.

  Computed as `x * log_sigmoid(logits) + (1 - x) * log_sigmoid(-logits)`, with the two log-sigmoids
  sharing one `log1p(exp(-|logits|))`: finite with finite gradients for logits of +-1e4, and accurate
  when the model is confident and right (log sigmoid(20) = -2.1e-9, which `x * logits -
  softplus(logits)` rounds to 0). The gradient is exactly `x - sigmoid(logits)`, also at 0 (the
  `maximum`s split their tie evenly). Values of x in [0, 1] give the usual binary cross-entropy.

  Args:
    x: `[..., dim]` floating data, normally in {0, 1}.
    logits: `[..., dim]` logits of the success probability.

  Returns:
    `[...]` log-likelihood in nats.
  """
  checks.check_floating(x, "x")
  checks.check_floating(logits, "logits")
  checks.check_same_shape(x, "x", logits, "logits")
  # log_sigmoid(l) = -max(-l, 0) - log1p(exp(-|l|)) and log_sigmoid(-l) = -max(l, 0) - log1p(exp(-|l|)).
  shared = jnp.log1p(jnp.exp(-jnp.maximum(logits, -logits)))
  penalty = x * jnp.maximum(-logits, 0.0) + (1.0 - x) * jnp.maximum(logits, 0.0)
  return -jnp.sum(penalty + shared, axis=-1)


def diag_gaussian_log_prob(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """log N(z | mean, diag(exp(log_var))) summed over the last axis.

  Args:
    z: `[..., dim]` points.
    mean: `[..., dim]` means.
    log_var: `[..., dim]` log-variances (natural log).

  Returns:
    `[...]` log-density in nats.
  """
  checks.check_floating(z, "z")
  checks.check_same_shape(mean, "mean", log_var, "log_var")
  checks.check_same_shape(z, "z", mean, "mean")
  scaled = (z - mean) * jnp.exp(-0.5 * log_var)
  return -0.5 * jnp.sum(_LOG_2PI + log_var + jnp.square(scaled), axis=-1)


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
  """log N(z | 0, I) summed over the last axis: `[..., dim] -> [...]`."""
  checks.check_floating(z, "z")
  return -0.5 * jnp.sum(_LOG_2PI + jnp.square(z), axis=-1)


def gaussian_log_likelihood(
    x: jax.Array, params: tuple[jax.Array, jax.Array]
) -> jax.Array:
  """log N(x | mean, diag(exp(log_var))) summed over the last axis, with `params = (mean, log_var)`.

  The likelihood for continuous data; `params` is what `vaex.GaussianMLPDecoder` returns.

  Args:
    x: `[..., dim]` floating data.
    params: a pair `(mean, log_var)`, each `[..., dim]`.

  Returns:
    `[...]` log-likelihood in nats.
  """
  if not isinstance(params, (tuple, list)) or len(params) != 2:
    raise TypeError(
        "`params` of gaussian_log_likelihood must be a pair (mean, log_var); got "
        f"{type(params).__name__}. A Bernoulli decoder returns logits: use "
        "vaex.bernoulli_log_likelihood with it, or a Gaussian decoder with this function."
    )
  mean, log_var = params
  checks.check_floating(x, "x")
  checks.check_same_shape(x, "x", mean, "params[0] (mean)")
  return diag_gaussian_log_prob(x, mean, log_var)


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, diag(exp(log_var))) || N(0, I)) in closed form, summed over the last axis.

  Kingma & Welling (2013), Appendix B: -KL = 1/2 sum(1 + log_var - mean^2 - exp(log_var)).

  Args:
    mean: `[..., dim]` means of q.
    log_var: `[..., dim]` log-variances of q.

  Returns:
    `[...]` KL divergence in nats (>= 0).
  """
  checks.check_floating(mean, "mean")
  checks.check_same_shape(mean, "mean", log_var, "log_var")
  return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1)
