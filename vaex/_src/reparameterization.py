"""The reparameterization trick for a diagonal Gaussian: z = mean + sigma * eps, eps ~ N(0, I)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vaex._src import checks


def reparameterize(
    key: jax.Array, mean: jax.Array, log_var: jax.Array, num_samples: int = 1
) -> jax.Array:
  """Draws `num_samples` reparameterized samples from N(mean, diag(exp(log_var))).

  Gradients flow to `mean` and `log_var` through z = mean + exp(log_var / 2) * eps.

  Args:
    key: a `jax.random.key`; the same key gives the same samples.
    mean: `[..., dim_z]` means.
    log_var: `[..., dim_z]` log-variances.
    num_samples: number of samples L (a Python int >= 1).

  Returns:
    `[num_samples, ..., dim_z]` samples, in the dtype of `mean`.
  """
  checks.check_key(key)
  checks.check_floating(mean, "mean")
  checks.check_same_shape(mean, "mean", log_var, "log_var")
  num_samples = checks.check_positive_int(num_samples, "num_samples")
  eps = jax.random.normal(key, (num_samples, *mean.shape), dtype=mean.dtype)
  return mean[None] + jnp.exp(0.5 * log_var)[None] * eps
