"""How the bounds read q(z|x): a `(mean, log_var)` pair (the fast path) or a distribution object.

`encode(x)` returns either
  * a pair `(mean, log_var)`, each `[batch, dim_z]`: the diagonal Gaussian of Kingma & Welling (2013),
    sampled with the reparameterization trick and with closed-form densities; or
  * an object with the distrax protocol: `sample_and_log_prob(seed=key, sample_shape=(L,))` returning
    reparameterized samples `[L, batch, *event]` and their log-densities `[L, batch]`, and
    `log_prob(z)`; batch shape `[batch]`, event shape last (e.g. `distrax.MultivariateNormalTri`, a
    `distrax.Transformed` flow, or any user object with those two methods).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from vaex._src import checks, densities
from vaex._src.reparameterization import reparameterize

# What `encode(x)` returns: `(mean, log_var)` or a distribution object.
Posterior = Any


def is_diagonal_gaussian(q: Posterior) -> bool:
  """True for the `(mean, log_var)` fast path."""
  return isinstance(q, (tuple, list))


def encode_posterior(encode: Any, x: jax.Array) -> Posterior:
  """Calls `encode(x)` and checks what it returned against x's batch size (trace time only)."""
  q = encode(x)
  batch = x.shape[0]
  if is_diagonal_gaussian(q):
    if len(q) != 2:
      raise TypeError(
          f"`encode(x)` returned a {type(q).__name__} of {len(q)} items; it must return a pair "
          "(mean, log_var) of q(z|x)'s parameters, or a distribution object with "
          "`sample_and_log_prob` and `log_prob` (e.g. distrax.MultivariateNormalTri)."
      )
    mean, log_var = q
    checks.check_floating(mean, "mean (encode(x)[0])")
    if mean.ndim != 2:
      raise ValueError(
          f"`encode(x)` must return mean and log_var of shape [batch, dim_z]; got mean of shape "
          f"{tuple(mean.shape)} for x of shape {tuple(x.shape)}. A dense encoder maps only the last "
          "axis: flatten image-shaped x inside the encoder (`x.reshape(x.shape[0], -1)`), or return "
          "a distribution object (e.g. distrax.Independent) for latents with several axes."
      )
    checks.check_same_shape(mean, "mean (encode(x)[0])", log_var, "log_var (encode(x)[1])")
    if mean.shape[0] != batch:
      raise ValueError(
          f"`encode(x)` must keep the batch size: x has {batch} examples but the encoder "
          f"returned mean of shape {tuple(mean.shape)}."
      )
    return tuple(q)
  if not (callable(getattr(q, "sample_and_log_prob", None)) and callable(getattr(q, "log_prob", None))):
    raise TypeError(
        "`encode(x)` must return a pair (mean, log_var) of q(z|x)'s parameters, or a distribution "
        "object with `sample_and_log_prob(seed=, sample_shape=)` and `log_prob(z)` (the distrax "
        f"protocol); got {checks._describe(q)}. Split a single output head with "  # noqa: SLF001
        "`jnp.split(h, 2, axis=-1)`, or return e.g. `distrax.MultivariateNormalTri(loc, scale_tri)`."
    )
  batch_shape = getattr(q, "batch_shape", None)
  if batch_shape is not None and tuple(batch_shape) != (batch,):
    raise ValueError(
        f"The posterior returned by `encode(x)` must have batch shape ({batch},), one distribution "
        f"per example of x ({tuple(x.shape)}); got batch shape {tuple(batch_shape)}. Put the latent "
        "axes in the event (e.g. wrap per-dimension distributions in "
        "`distrax.Independent(..., reinterpreted_batch_ndims=1)`)."
    )
  return q


class PosteriorSample(NamedTuple):
  """Samples z_l ~ q(z|x) and their log-densities.

  Attributes:
    z: `[L, batch, *event]` reparameterized samples (gradients flow to q's parameters).
    log_q: `[L, batch]` log q(z_l|x), or None where it was not asked for.
  """

  z: jax.Array
  log_q: jax.Array | None


def sample_posterior(
    key: jax.Array, q: Posterior, num_samples: int, batch: int, *, with_log_prob: bool
) -> PosteriorSample:
  """Draws `num_samples` reparameterized samples per example from q (checked at trace time)."""
  if is_diagonal_gaussian(q):
    mean, log_var = q
    z = reparameterize(key, mean, log_var, num_samples)
    return PosteriorSample(z, posterior_log_prob(q, z) if with_log_prob else None)
  z, log_q = q.sample_and_log_prob(seed=key, sample_shape=(num_samples,))
  checks.check_floating(z, "z (sampled from encode(x))")
  if z.ndim < 3 or tuple(z.shape[:2]) != (num_samples, batch):
    raise ValueError(
        f"`encode(x).sample_and_log_prob(seed=, sample_shape=({num_samples},))` must return samples "
        f"of shape [{num_samples}, {batch}, *event] (samples, batch, latent); got "
        f"{tuple(z.shape)}."
    )
  checks.check_values_shape(
      log_q, "encode(x).sample_and_log_prob", (num_samples, batch),
      "log-densities, one per sample and example",
      " Sum per-dimension densities over the latent axes (distrax.Independent does).")
  return PosteriorSample(z, log_q if with_log_prob else None)


def posterior_log_prob(q: Posterior, z: jax.Array) -> jax.Array:
  """log q(z|x) at given samples `z: [L, batch, *event]` -> `[L, batch]`."""
  if is_diagonal_gaussian(q):
    mean, log_var = q
    return densities.diag_gaussian_log_prob(
        z, jnp.broadcast_to(mean, z.shape), jnp.broadcast_to(log_var, z.shape)
    )
  log_q = q.log_prob(z)
  checks.check_values_shape(log_q, "encode(x).log_prob(z)", z.shape[:2],
                            f"one value per sample and example of z {tuple(z.shape)}")
  return log_q
