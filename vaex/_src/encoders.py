"""Recognition models q(z|x): Flax linen modules that output the parameters of a diagonal Gaussian."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# Kingma & Welling (2013), Section 5: "Parameters are initialized by random sampling from
# N(0, 0.01)". We read 0.01 as the standard deviation, as the authors' released code does.
PAPER_INIT_STDDEV = 0.01


def dense_initializers(paper_init: bool) -> dict[str, Callable]:
  """Kernel and bias initializers: the paper's N(0, 0.01) for both, or Flax's defaults."""
  if paper_init:
    init = nn.initializers.normal(stddev=PAPER_INIT_STDDEV)
    return {"kernel_init": init, "bias_init": init}
  return {}


class MLP(nn.Module):
  """A stack of dense layers with an activation after each: `[batch, d] -> [batch, hidden[-1]]`."""

  hidden_sizes: Sequence[int]
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  paper_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, size in enumerate(self.hidden_sizes):
      x = self.activation(
          nn.Dense(size, name=f"hidden_{i}", **dense_initializers(self.paper_init))(x)
      )
    return x


class MLPEncoder(nn.Module):
  """Gaussian MLP recognition model q(z|x) = N(mean(x), diag(exp(log_var(x)))).

  The defaults are the paper's MNIST encoder: one tanh hidden layer of 500 units, 20 latents.
  The mean and log-variance come from one dense head of size 2 * latent_dim (one matmul), split in
  two; the log-variance is linear, as in the paper.

  Attributes:
    latent_dim: dim_z.
    hidden_sizes: sizes of the hidden layers.
    activation: nonlinearity after each hidden layer.
    paper_init: initialize every weight and bias from N(0, 0.01^2) as in the paper; otherwise
      Flax's defaults (LeCun normal kernels, zero biases).

  Call: `x: [batch, dim_x] float -> (mean, log_var)`, each `[batch, latent_dim]`.
  """

  latent_dim: int = 20
  hidden_sizes: Sequence[int] = (500,)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  paper_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = MLP(self.hidden_sizes, self.activation, self.paper_init, name="mlp")(x)
    out = nn.Dense(2 * self.latent_dim, name="gaussian_head", **dense_initializers(self.paper_init))(h)
    mean, log_var = jnp.split(out, 2, axis=-1)
    return mean, log_var
