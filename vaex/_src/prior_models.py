"""Learnable priors p(z) as Flax linen modules: a mixture of diagonal Gaussians and the VampPrior.

Each module's parameters live in the VAE's parameter tree (`vaex.VAE(prior=...)`); the prior object
the bounds read is a `vaex.DiagGaussianMixture` of arrays, built by `VAE.prior_distribution`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaex._src.distributions import DiagGaussianMixture


class MixturePrior(nn.Module):
  """p(z) = sum_k softmax(logits)_k N(z; mean_k, diag(exp(log_var_k))), all learnable.

  Means start at N(0, 1) draws (components spread over the standard prior's bulk), log-variances at
  0 and logits at 0 (equal weights).

  Attributes:
    latent_dim: D.
    num_components: K (>= 1).

  Call: `() -> vaex.DiagGaussianMixture` with means and log_vars `[K, D]`, logits `[K]`.
  """

  latent_dim: int
  num_components: int = 10

  @nn.compact
  def __call__(self) -> DiagGaussianMixture:
    shape = (self.num_components, self.latent_dim)
    means = self.param("means", nn.initializers.normal(stddev=1.0), shape)
    log_vars = self.param("log_vars", nn.initializers.zeros, shape)
    logits = self.param("logits", nn.initializers.zeros, (self.num_components,))
    return DiagGaussianMixture(logits, means, log_vars)


class VampPrior(nn.Module):
  """The VampPrior of Tomczak & Welling (2018): p(z) = 1/K sum_k q(z | u_k), learnable u_k.

  This module holds only the K pseudo-inputs; `vaex.VAE` passes them through its own (diagonal
  Gaussian) encoder. The pseudo-inputs start at N(init_mean, init_stddev^2) (the authors' code for
  MNIST: 0.05 and 0.01) and are clipped to [0, 1] when read (their hardtanh), like the data.

  Attributes:
    num_components: K (>= 1).
    data_dim: size of a flat example.
    init_mean, init_stddev: the pseudo-inputs' initial distribution.

  Call: `() -> [K, data_dim]` pseudo-inputs.
  """

  num_components: int
  data_dim: int
  init_mean: float = 0.05
  init_stddev: float = 0.01

  @nn.compact
  def __call__(self) -> jax.Array:
    def init(key, shape, dtype=jnp.float32):
      return self.init_mean + self.init_stddev * jax.random.normal(key, shape, dtype)

    u = self.param("pseudo_inputs", init, (self.num_components, self.data_dim))
    return jnp.clip(u, 0.0, 1.0)


def vamp_mixture(mean: jax.Array, log_var: jax.Array) -> DiagGaussianMixture:
  """The equal-weight mixture of the K diagonal Gaussians q(z|u_k): `mean, log_var: [K, D]`."""
  return DiagGaussianMixture(jnp.zeros(mean.shape[:1], mean.dtype), mean, log_var)
