"""Generative models p(x|z): Flax linen modules that output the parameters of p(x|z).

Each decoder names the log-likelihood its output feeds (`log_likelihood`), so that a bound or a
training loop can pair them without being told twice, and gives E[x|z] (`mean`) for sample grids.

The pixel-likelihood decoders (categorical, discretized logistic, continuous Bernoulli) model
intensities in [0, 1]: 8-bit pixels k / 255, the pipeline's "intensity" data. Their E[x|z] helpers
(`categorical_mean`, `discretized_logistic_mean`, `continuous_bernoulli_mean`) act elementwise over
any leading axes, so the convolutional decoders (`vaex._src.conv_networks`) share them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaex._src import checks, densities, pixel_likelihoods
from vaex._src.encoders import MLP, dense_initializers

# Below this |logit| the continuous Bernoulli's mean uses its Taylor series (error < 1e-8 here).
_CB_MEAN_SERIES_BELOW = 0.5


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


def intensity_categorical_log_likelihood(x: jax.Array, logits: jax.Array) -> jax.Array:
  """`vaex.categorical_log_likelihood` of intensities: class k = round(x * (K - 1)), K classes.

  The bounds take floating data, so the categorical decoders read intensities in [0, 1] on the grid
  k / (K - 1) (e.g. 8-bit pixels / 255 with K = 256) and round them to their class here, inside the
  likelihood: `rint` recovers k exactly from the float32 k / 255. Values outside [0, 1] fall outside
  [0, K) and give NaN (as in `vaex.categorical_log_likelihood`), never a silently clamped class.

  Args:
    x: `[..., dim]` floating intensities in [0, 1].
    logits: `[..., dim, K]` floating logits of the K intensity levels of each element of x.

  Returns:
    `[...]` log-likelihood in nats.
  """
  checks.check_floating(x, "x")
  checks.check_floating(logits, "logits")
  levels = jnp.rint(x * (logits.shape[-1] - 1)).astype(jnp.int32)
  return pixel_likelihoods.categorical_log_likelihood(levels, logits)


def categorical_mean(logits: jax.Array) -> jax.Array:
  """E[x|z] of the categorical over intensities k / (K - 1): `[..., K] -> [...]` in [0, 1]."""
  num_classes = logits.shape[-1]
  levels = jnp.arange(num_classes, dtype=logits.dtype) / (num_classes - 1)
  return jax.nn.softmax(logits, axis=-1) @ levels


def discretized_logistic_mean(params: tuple[jax.Array, jax.Array], num_bins: int = 256) -> jax.Array:
  """E[x|z] of `vaex.discretized_logistic_log_likelihood`, exactly: `(mean, log_scale)` -> `[...]`.

  With the open-ended end bins, E[x] = 1/(B - 1) sum_{k=1}^{B-1} P(bin >= k) and P(bin >= k) =
  sigmoid((mean - (k - 1/2) / (B - 1)) / scale): a sum of B - 1 sigmoids per element, in [0, 1]
  whatever the location (which may lie outside [0, 1]). Uses the likelihood's log-scale floor.
  """
  mean, log_scale = params
  scale = jnp.exp(jnp.maximum(log_scale, pixel_likelihoods._LOG_SCALE_FLOOR))  # noqa: SLF001
  edges = (jnp.arange(1, num_bins, dtype=mean.dtype) - 0.5) / (num_bins - 1)
  edges = edges.reshape((1,) * mean.ndim + (num_bins - 1,))
  return jnp.mean(jax.nn.sigmoid((mean[..., None] - edges) / scale[..., None]), axis=-1)


def continuous_bernoulli_mean(logits: jax.Array) -> jax.Array:
  """E[x|z] of `vaex.continuous_bernoulli_log_likelihood`: `[...] -> [...]` in (0, 1).

  For lambda = sigmoid(l) the mean lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)) is
  1 / (1 - exp(-l)) - 1 / l, whose two terms cancel near l = 0; there it is the series
  1/2 + l/12 - l^3/720 + l^5/30240 - l^7/1209600 (from x / (e^x - 1) = sum B_n x^n / n!), used for
  |l| < 0.5 behind a double `where`. Finite for logits of +-1e4 (-> 1 and 0).
  """
  small = jnp.abs(logits) < _CB_MEAN_SERIES_BELOW
  safe = jnp.where(small, 1.0, logits)
  direct = 1.0 / -jnp.expm1(-safe) - 1.0 / safe
  sq = jnp.square(logits)
  series = 0.5 + logits * (1 / 12 + sq * (-1 / 720 + sq * (1 / 30240 - sq / 1209600)))
  return jnp.where(small, series, direct)


class CategoricalMLPDecoder(nn.Module):
  """MLP decoder for 8-bit intensities: `z: [batch, dim_z] -> logits: [batch, data_dim, num_classes]`.

  One softmax over the num_classes intensity levels k / (num_classes - 1) per pixel (256 for 8-bit
  data). Its `log_likelihood` takes intensities in [0, 1] and rounds them to their level (see
  `intensity_categorical_log_likelihood`). The output layer has data_dim * num_classes units
  (200,704 for MNIST: 100M weights after 500 hidden units), so keep the last hidden layer small.
  """

  data_dim: int = 784
  hidden_sizes: Sequence[int] = (500,)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  num_classes: int = 256
  paper_init: bool = False

  log_likelihood: ClassVar = staticmethod(intensity_categorical_log_likelihood)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = MLP(self.hidden_sizes, self.activation, self.paper_init, name="mlp")(z)
    logits = nn.Dense(self.data_dim * self.num_classes, name="logits",
                      **dense_initializers(self.paper_init))(h)
    return logits.reshape(*logits.shape[:-1], self.data_dim, self.num_classes)

  def mean(self, params_of_x: jax.Array) -> jax.Array:
    """E[x|z] = sum_k softmax(logits)_k k / (K - 1): `[batch, data_dim]` in [0, 1]."""
    return categorical_mean(params_of_x)


class DiscretizedLogisticMLPDecoder(nn.Module):
  """MLP decoder for 8-bit intensities: `z -> (mean, log_scale)`, each `[batch, data_dim]`.

  A logistic per pixel discretized to 256 bins with open-ended end bins (PixelCNN++); pair with
  `vaex.discretized_logistic_log_likelihood` (its `log_likelihood`). The location is linear (it may
  leave [0, 1]: the end bins are open), the log-scale too (the likelihood floors it at -8).
  """

  data_dim: int = 784
  hidden_sizes: Sequence[int] = (500,)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  paper_init: bool = False

  log_likelihood: ClassVar = staticmethod(pixel_likelihoods.discretized_logistic_log_likelihood)

  @nn.compact
  def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = MLP(self.hidden_sizes, self.activation, self.paper_init, name="mlp")(z)
    out = nn.Dense(2 * self.data_dim, name="logistic_head", **dense_initializers(self.paper_init))(h)
    mean, log_scale = jnp.split(out, 2, axis=-1)
    return mean, log_scale

  def mean(self, params_of_x: tuple[jax.Array, jax.Array]) -> jax.Array:
    """E[x|z] over the 256 bins (`discretized_logistic_mean`): `[batch, data_dim]` in [0, 1]."""
    return discretized_logistic_mean(params_of_x)


class ContinuousBernoulliMLPDecoder(nn.Module):
  """MLP decoder for intensities in [0, 1]: `z: [batch, dim_z] -> logits: [batch, data_dim]`.

  Pair with `vaex.continuous_bernoulli_log_likelihood` (its `log_likelihood`), the normalized
  density of Loaiza-Ganem & Cunningham (2019); `mean` is its E[x|z], not sigmoid(logits).
  """

  data_dim: int = 784
  hidden_sizes: Sequence[int] = (500,)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  paper_init: bool = False

  log_likelihood: ClassVar = staticmethod(pixel_likelihoods.continuous_bernoulli_log_likelihood)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = MLP(self.hidden_sizes, self.activation, self.paper_init, name="mlp")(z)
    return nn.Dense(self.data_dim, name="logits", **dense_initializers(self.paper_init))(h)

  def mean(self, params_of_x: jax.Array) -> jax.Array:
    """E[x|z] = 1 / (1 - exp(-l)) - 1 / l (`continuous_bernoulli_mean`)."""
    return continuous_bernoulli_mean(params_of_x)
