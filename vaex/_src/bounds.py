"""Per-example variational bounds on log p(x): the SGVB estimators A and B, and the IWAE bound.

Conventions shared by every bound here:
  * `encode(x) -> (mean, log_var)`, each `[batch, dim_z]`, for `x: [batch, dim_x]`: a diagonal
    Gaussian q(z|x).
  * `decode(z) -> params` of p(x|z) for `z: [batch, dim_z]`: logits `[batch, dim_x]` for
    `bernoulli_log_likelihood`, `(mean, log_var)` for `gaussian_log_likelihood`. The bounds `vmap` the
    decoder over the sample axis, so a decoder only ever sees one batch.
  * The prior is p(z) = N(0, I).
  * `encode`/`decode` are any JAX-traceable callables: `functools.partial(module.apply, params)`, a
    bound method of a bound Flax module, or a closure over parameters being differentiated.
  * The result is one value per example, `[batch]`, in nats; the caller reduces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from vaex._src import checks, densities
from vaex._src.reparameterization import reparameterize

Encoder = Callable[[jax.Array], tuple[jax.Array, jax.Array]]
Decoder = Callable[[jax.Array], Any]
LogLikelihood = Callable[[jax.Array, Any], jax.Array]


def _encode(encode: Encoder, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Calls the encoder and checks that it returned a matching (mean, log_var) pair."""
  out = encode(x)
  if not isinstance(out, (tuple, list)) or len(out) != 2:
    raise TypeError(
        "`encode(x)` must return a pair (mean, log_var) of q(z|x)'s parameters; got "
        f"{type(out).__name__}. Split a single output head with `jnp.split(h, 2, axis=-1)`."
    )
  mean, log_var = out
  checks.check_floating(mean, "mean (encode(x)[0])")
  checks.check_rank(mean, "mean (encode(x)[0])", 2, "[batch, dim_z]")
  checks.check_same_shape(mean, "mean (encode(x)[0])", log_var, "log_var (encode(x)[1])")
  if mean.shape[0] != x.shape[0]:
    raise ValueError(
        f"`encode(x)` must keep the batch size: x has {x.shape[0]} examples but the encoder "
        f"returned mean of shape {tuple(mean.shape)}."
    )
  return mean, log_var


def _reconstruction_log_likelihood(
    x: jax.Array, z: jax.Array, decode: Decoder, log_likelihood: LogLikelihood
) -> jax.Array:
  """log p(x|z_l) for each sample: `x: [batch, dim_x]`, `z: [L, batch, dim_z]` -> `[L, batch]`."""

  def one_sample(z_l: jax.Array) -> jax.Array:
    params = decode(z_l)
    for leaf in jax.tree_util.tree_leaves(params):
      if getattr(leaf, "shape", None) is None or leaf.shape[-1:] != x.shape[-1:]:
        raise ValueError(
            f"`decode(z)` returned parameters of shape {getattr(leaf, 'shape', None)} but x has "
            f"{x.shape[-1]} values per example (x: {tuple(x.shape)}). The decoder's output size "
            "must equal the data dimension dim_x."
        )
    return log_likelihood(x, params)

  return jax.vmap(one_sample)(z)


def _check_inputs(key: jax.Array, x: jax.Array, num_samples: int) -> int:
  checks.check_key(key)
  checks.check_floating(x, "x")
  checks.check_rank(x, "x", 2, "[batch, dim_x]")
  return checks.check_positive_int(num_samples, "num_samples")


def _log_importance_weights(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    log_likelihood: LogLikelihood,
    num_samples: int,
) -> jax.Array:
  """log p(x, z_l) - log q(z_l|x) for z_l ~ q(z|x): `[num_samples, batch]`."""
  mean, log_var = _encode(encode, x)
  z = reparameterize(key, mean, log_var, num_samples)
  log_px_z = _reconstruction_log_likelihood(x, z, decode, log_likelihood)
  log_pz = densities.standard_normal_log_prob(z)
  log_qz = densities.diag_gaussian_log_prob(
      z, jnp.broadcast_to(mean, z.shape), jnp.broadcast_to(log_var, z.shape)
  )
  return log_px_z + log_pz - log_qz


def elbo(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    *,
    log_likelihood: LogLikelihood = densities.bernoulli_log_likelihood,
    num_samples: int = 1,
    analytic_kl: bool = True,
) -> jax.Array:
  """The SGVB estimate of the evidence lower bound, one value per example.

  Kingma & Welling (2013), Section 2.3:
    * `analytic_kl=True`, estimator B (eq. 7): -KL(q(z|x) || p(z)) + 1/L sum_l log p(x|z_l).
    * `analytic_kl=False`, estimator A (eq. 6): 1/L sum_l [log p(x, z_l) - log q(z_l|x)].
  Both are unbiased for the ELBO; B usually has lower variance.

  Args:
    key: a `jax.random.key` for the L samples z_l ~ q(z|x).
    x: `[batch, dim_x]` floating data.
    encode: `x -> (mean, log_var)`, each `[batch, dim_z]`.
    decode: `z: [batch, dim_z] -> params of p(x|z)`.
    log_likelihood: `(x, params) -> [batch]`, e.g. `vaex.bernoulli_log_likelihood`.
    num_samples: L, samples per example (Python int >= 1).
    analytic_kl: estimator B if True, estimator A if False.

  Returns:
    `[batch]` ELBO estimates in nats (to be maximized).
  """
  num_samples = _check_inputs(key, x, num_samples)
  if analytic_kl:
    mean, log_var = _encode(encode, x)
    z = reparameterize(key, mean, log_var, num_samples)
    log_px_z = _reconstruction_log_likelihood(x, z, decode, log_likelihood)
    return jnp.mean(log_px_z, axis=0) - densities.gaussian_kl(mean, log_var)
  log_w = _log_importance_weights(key, x, encode, decode, log_likelihood, num_samples)
  return jnp.mean(log_w, axis=0)


def iwae_bound(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    *,
    log_likelihood: LogLikelihood = densities.bernoulli_log_likelihood,
    num_samples: int,
) -> jax.Array:
  """The importance-weighted bound of Burda et al. (2015), one value per example.

  log (1/k sum_k p(x, z_k) / q(z_k|x)) with z_k ~ q(z|x), computed with `logsumexp`. It is a lower
  bound on log p(x) that tightens as k grows; k = 1 is estimator A of the ELBO.

  Args:
    key: a `jax.random.key` for the k samples.
    x: `[batch, dim_x]` floating data.
    encode: `x -> (mean, log_var)`, each `[batch, dim_z]`.
    decode: `z: [batch, dim_z] -> params of p(x|z)`.
    log_likelihood: `(x, params) -> [batch]`.
    num_samples: k, importance samples per example (Python int >= 1).

  Returns:
    `[batch]` bound values in nats.
  """
  num_samples = _check_inputs(key, x, num_samples)
  log_w = _log_importance_weights(key, x, encode, decode, log_likelihood, num_samples)
  return jax.nn.logsumexp(log_w, axis=0) - math.log(num_samples)
