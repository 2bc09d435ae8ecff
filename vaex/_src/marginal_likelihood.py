"""The marginal log-likelihood log p(x) estimated by importance sampling with q(z|x) as proposal.

This is how the field reports test log-likelihoods (Burda et al. 2015, Table 3 protocol: k = 5000).
It is the IWAE-k bound evaluated with a large k, computed in chunks of samples with a running
`logsumexp`, so memory stays O(chunk_size * batch * dim_x) whatever k is.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from vaex._src import bounds, checks, densities


def importance_sampled_log_likelihood(
    key: jax.Array,
    x: jax.Array,
    encode: bounds.Encoder,
    decode: bounds.Decoder,
    *,
    log_likelihood: bounds.LogLikelihood | None = densities.bernoulli_log_likelihood,
    prior: Any = None,
    num_samples: int = 5000,
    chunk_size: int = 500,
) -> jax.Array:
  """log (1/k sum_k p(x, z_k) / q(z_k|x)), z_k ~ q(z|x), in chunks: `[batch]` estimates in nats.

  Same conventions as `vaex.iwae_bound` (which it equals for `chunk_size >= num_samples`, up to the
  keys used). Chunk c draws its samples with `fold_in(key, c)`; a last partial chunk is masked. The
  estimate is a stochastic lower bound on log p(x) in expectation and increases with k.

  Args:
    key: a `jax.random.key`.
    x: `[batch, ...]` floating data.
    encode: `x -> (mean, log_var)`, each `[batch, dim_z]`, or a distribution object over z.
    decode: `z: [chunk_size * batch, dim_z] -> params of p(x|z)` (or a distribution, with
      `log_likelihood=None`).
    log_likelihood: `(x, params) -> [chunk_size * batch]`; None uses `decode(z).log_prob(x)`.
    prior: None for p(z) = N(0, I), or an object with `log_prob(z)`.
    num_samples: k, importance samples per example (>= 1).
    chunk_size: samples drawn at once (>= 1; clamped to k). Memory grows with it, speed too.

  Returns:
    `[batch]` log-likelihood estimates.
  """
  num_samples = bounds._check_inputs(key, x, num_samples, prior)  # noqa: SLF001
  chunk_size = min(checks.check_positive_int(chunk_size, "chunk_size"), num_samples)
  num_chunks = -(-num_samples // chunk_size)

  def one_chunk(running_lse, c):
    log_w = bounds.log_importance_weights(
        jax.random.fold_in(key, c), x, encode, decode, log_likelihood=log_likelihood, prior=prior,
        num_samples=chunk_size,
    )
    index = c * chunk_size + jnp.arange(chunk_size)
    log_w = jnp.where((index < num_samples)[:, None], log_w, -jnp.inf)
    return jnp.logaddexp(running_lse, jax.nn.logsumexp(log_w, axis=0)), None

  init = jnp.full((x.shape[0],), -jnp.inf, dtype=x.dtype)
  total, _ = jax.lax.scan(one_chunk, init, jnp.arange(num_chunks))
  return total - math.log(num_samples)
