"""Posterior diagnostics: KL per latent dimension and active units (Burda et al. 2015)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def kl_per_dimension(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(q(z_d|x) || N(0, 1)) for each latent dimension: `[..., dim_z] -> [..., dim_z]`."""
  return 0.5 * (jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var)


def posterior_mean_variance(posterior_means: jax.Array) -> jax.Array:
  """Cov_x(E_q[z_d | x]) per dimension over a data set: `[num_examples, dim_z] -> [dim_z]`."""
  return jnp.var(posterior_means, axis=0, ddof=1)


def active_units(posterior_means: jax.Array, threshold: float = 0.01) -> jax.Array:
  """Number of latent dimensions with Cov_x(E_q[z_d|x]) > threshold (Burda et al. 2015, 0.01).

  A unit whose posterior mean does not move with x carries no information about x.

  Args:
    posterior_means: `[num_examples, dim_z]` encoder means over a data set.
    threshold: activity threshold.

  Returns:
    `int32 []` count of active units.
  """
  return jnp.sum(posterior_mean_variance(posterior_means) > threshold).astype(jnp.int32)


def posterior_mean(q, key: jax.Array | None = None, num_samples: int = 100) -> jax.Array:
  """E_q[z | x] of a posterior, `[batch, dim_z]`, for `active_units`.

  `(mean, log_var)`: the mean; an object with `mean()` (e.g. `vaex.FullCovarianceGaussian`): that;
  otherwise (a flow, whose mean has no closed form) the average of `num_samples` draws with `key`.
  """
  if isinstance(q, (tuple, list)):
    return q[0]
  if callable(getattr(q, "mean", None)):
    return q.mean()
  if key is None:
    raise ValueError(
        f"{type(q).__name__} has no closed-form `mean()`: pass a `key` to estimate E_q[z|x] from "
        f"{num_samples} samples.")
  return jnp.mean(q.sample(seed=key, sample_shape=(num_samples,)), axis=0)
