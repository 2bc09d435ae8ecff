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
