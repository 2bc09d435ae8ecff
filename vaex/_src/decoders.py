"""Generative models p(x|z): Flax linen modules that output the parameters of p(x|z).

Each decoder names the log-likelihood its output feeds (`log_likelihood`), so that a bound or a
training loop can pair them without being told twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaex._src import densities
from vaex._src.encoders import MLP, dense_initializers


class BernoulliMLPDecoder(nn.Module):
  """MLP decoder for binary data: `z: [batch, dim_z] -> logits: [batch, data_dim]`.

  The defaults are the paper's MNIST decoder: one tanh hidden layer of 500 units, 784 outputs.
  Pair it with `vaex.bernoulli_log_likelihood`.
  """

  data_dim: int = 784
  hidden_sizes: Sequence[int] = (500,)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  paper_init: bool = False

  log_likelihood: ClassVar = staticmethod(densities.bernoulli_log_likelihood)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = MLP(self.hidden_sizes, self.activation, self.paper_init, name="mlp")(z)
    return nn.Dense(self.data_dim, name="logits", **dense_initializers(self.paper_init))(h)

  def mean(self, params_of_x: jax.Array) -> jax.Array:
    """E[x|z] = sigmoid(logits): what a sample grid shows."""
    return jax.nn.sigmoid(params_of_x)


class GaussianMLPDecoder(nn.Module):
  """MLP decoder for continuous data: `z -> (mean, log_var)`, each `[batch, data_dim]`.

  The defaults are the paper's Frey Face decoder: one tanh hidden layer of 200 units, and the mean
  squashed into (0, 1) by a sigmoid ("means constrained to the interval (0, 1) using a sigmoidal
  activation function at the decoder output"). Pair it with `vaex.gaussian_log_likelihood`.

  The variance is `softplus(h) + min_variance`, so `log_var = log(softplus(h) + min_variance)`:
  it can neither overflow (softplus grows linearly) nor collapse to zero on pixels that are
  constant in the data (which would send the likelihood to +infinity).

  Attributes:
    data_dim: dim_x.
    hidden_sizes: sizes of the hidden layers.
    activation: nonlinearity after each hidden layer.
    mean_activation: applied to the mean head; `None` leaves it linear.
    min_variance: floor on the per-dimension variance.
    paper_init: N(0, 0.01^2) initialization of every weight and bias.
  """

  data_dim: int = 784
  hidden_sizes: Sequence[int] = (200,)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  mean_activation: Callable[[jax.Array], jax.Array] | None = nn.sigmoid
  min_variance: float = 1e-3
  paper_init: bool = False

  log_likelihood: ClassVar = staticmethod(densities.gaussian_log_likelihood)

  @nn.compact
  def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = MLP(self.hidden_sizes, self.activation, self.paper_init, name="mlp")(z)
    out = nn.Dense(2 * self.data_dim, name="gaussian_head", **dense_initializers(self.paper_init))(h)
    mean, pre_variance = jnp.split(out, 2, axis=-1)
    if self.mean_activation is not None:
      mean = self.mean_activation(mean)
    log_var = jnp.log(jax.nn.softplus(pre_variance) + self.min_variance)
    return mean, log_var

  def mean(self, params_of_x: tuple[jax.Array, jax.Array]) -> jax.Array:
    """E[x|z]: the mean head."""
    return params_of_x[0]
