"""Convolutional networks for images `[batch, H, W, C]`: a Gaussian recognition model q(z|x) and a
decoder giving the parameters of a pixel likelihood p(x|z).

Both take an `image_shape` so that they also read and write the training pipeline's flat rows
`[batch, H * W * C]`: the encoder reshapes flat inputs, and the decoder with `flatten=True` returns
flat parameters (`[batch, H * W * C]`, or `[batch, H * W * C, K]` logits). Any H and W work: the
decoder upsamples by 2 per layer from ceil(H / 2^n) x ceil(W / 2^n) and crops to exactly H x W.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaex._src import checks, decoders, densities, pixel_likelihoods

CONV_LIKELIHOODS = ("bernoulli", "gaussian", "categorical", "discretized_logistic",
                    "continuous_bernoulli")


def _check_image_shape(image_shape: Any, module: str) -> tuple[int, int, int]:
  if (not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3
      or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in image_shape)):
    raise ValueError(
        f"`image_shape` of {module} must be (height, width, channels), three ints >= 1; got "
        f"{image_shape!r}. E.g. (28, 28, 1) for MNIST, (32, 32, 3) for CIFAR-10."
    )
  return tuple(image_shape)


def _check_features(features: Any, module: str) -> tuple[int, ...]:
  if (not isinstance(features, (tuple, list)) or not features
      or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in features)):
    raise ValueError(
        f"`features` of {module} must be a non-empty tuple of channel counts >= 1 (one per "
        f"stride-2 layer); got {features!r}. E.g. (32, 64)."
    )
  return tuple(features)


class ConvEncoder(nn.Module):
  """Gaussian convolutional recognition model q(z|x) = N(mean(x), diag(exp(log_var(x)))).

  Stride-2 "SAME" convolutions, one per entry of `features` (28x28 -> 14x14 -> 7x7 for two), an
  activation after each, then one dense head of size 2 * latent_dim split into the mean and the
  (linear) log-variance, as in `vaex.MLPEncoder`.

  Attributes:
    latent_dim: dim_z.
    features: output channels of the stride-2 convolutions, in order.
    kernel_size: side of the square kernels.
    activation: nonlinearity after each convolution.
    image_shape: `(H, W, C)`; needed only to read flat rows `[batch, H * W * C]`.

  Call: `x: [batch, H, W, C]` (or `[batch, H * W * C]` with `image_shape`) float ->
  `(mean, log_var)`, each `[batch, latent_dim]`.
  """

  latent_dim: int = 20
  features: Sequence[int] = (32, 64)
  kernel_size: int = 3
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  image_shape: tuple[int, int, int] | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    features = _check_features(self.features, "ConvEncoder")
    checks.check_floating(x, "x")
    if self.image_shape is not None:
      shape = _check_image_shape(self.image_shape, "ConvEncoder")
      if x.ndim == 2 and x.shape[-1] == math.prod(shape):
        x = x.reshape(x.shape[0], *shape)
      elif tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"ConvEncoder(image_shape={shape}) takes `x` of shape [batch, {', '.join(map(str, shape))}]"
            f" or flat rows [batch, {math.prod(shape)}]; got x of shape {tuple(x.shape)}. Build the "
            "encoder with the data's image shape."
        )
    elif x.ndim != 4:
      raise ValueError(
          f"ConvEncoder takes images `x: [batch, H, W, C]`; got x of shape {tuple(x.shape)}. For "
          "flat rows [batch, H * W * C] set `image_shape=(H, W, C)`."
      )
    h = x
    for i, size in enumerate(features):
      conv = nn.Conv(size, (self.kernel_size, self.kernel_size), strides=(2, 2), padding="SAME",
                     name=f"conv_{i}")
      h = self.activation(conv(h))
    h = h.reshape(h.shape[0], -1)
    out = nn.Dense(2 * self.latent_dim, name="gaussian_head")(h)
    mean, log_var = jnp.split(out, 2, axis=-1)
    return mean, log_var


class ConvDecoder(nn.Module):
  """Convolutional decoder p(x|z) for images: `z: [batch, dim_z] -> params of p(x|z)`.

  A dense layer to ceil(H / 2^n) x ceil(W / 2^n) x features[0] (n = len(features)), then n stride-2
  "SAME" transposed convolutions (through features[1:], the last to C * outputs channels), cropped
  to exactly H x W. `likelihood` picks what the outputs parameterize, and with it
  `log_likelihood` (what the bounds score with) and `mean` (E[x|z] for sample grids):

    * "bernoulli": logits `[batch, H, W, C]` (binary data), `vaex.bernoulli_log_likelihood`.
    * "gaussian": `(mean, log_var)`, sigmoid means, variance softplus(h) + min_variance, as in
      `vaex.GaussianMLPDecoder`; `vaex.gaussian_log_likelihood`.
    * "categorical": logits `[batch, H, W, C, num_classes]` over the intensities k / (K - 1);
      `intensity_categorical_log_likelihood` (rounds intensities in [0, 1] to their class).
    * "discretized_logistic": `(mean, log_scale)`, 256 bins, linear heads;
      `vaex.discretized_logistic_log_likelihood`.
    * "continuous_bernoulli": logits; `vaex.continuous_bernoulli_log_likelihood`.

  With `flatten=True` the parameters come as the pipeline's flat rows: `[batch, H * W * C]` (and
  `[batch, H * W * C, K]` for the categorical), and `mean` gives `[batch, H * W * C]`.

  `ConvDecoder(likelihood=...)` builds an instance of a private subclass per likelihood, so that
  `type(decoder).log_likelihood` (which `vaex.VAE` reads) is that likelihood's function; compare
  decoders with `decoder.likelihood`, not their type.

  Attributes:
    image_shape: `(H, W, C)` of the data.
    likelihood: one of `CONV_LIKELIHOODS`.
    features: channels of the dense layer's feature map and of the transposed convolutions.
    kernel_size: side of the square kernels.
    activation: nonlinearity after the dense layer and each hidden transposed convolution.
    flatten: return flat parameters (the training pipeline's layout).
    num_classes: K of the categorical (256 for 8-bit pixels).
    min_variance: variance floor of the Gaussian.
  """

  image_shape: tuple[int, int, int] = (28, 28, 1)
  likelihood: str = "bernoulli"
  features: Sequence[int] = (64, 32)
  kernel_size: int = 3
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  flatten: bool = False
  num_classes: int = 256
  min_variance: float = 1e-3

  log_likelihood: ClassVar[Callable[[jax.Array, Any], jax.Array] | None] = None

  def __new__(cls, *args: Any, **kwargs: Any) -> ConvDecoder:
    if cls is ConvDecoder:
      likelihood = kwargs.get("likelihood", args[1] if len(args) > 1 else "bernoulli")
      if likelihood not in _CONV_DECODERS:
        raise ValueError(
            f"`likelihood` of ConvDecoder must be one of {CONV_LIKELIHOODS}; got {likelihood!r}."
        )
      cls = _CONV_DECODERS[likelihood]
    return super().__new__(cls)

  @property
  def data_dim(self) -> int:
    """H * W * C: the length of a flat row."""
    return math.prod(self.image_shape)

  def _outputs(self) -> int:
    """Output channels per data element."""
    return 2 if self.likelihood in ("gaussian", "discretized_logistic") else (
        self.num_classes if self.likelihood == "categorical" else 1)

  def _params(self, out: jax.Array) -> Any:
    """`out: [batch, H, W, C, outputs]` -> the parameters of p(x|z)."""
    raise NotImplementedError

  @nn.compact
  def __call__(self, z: jax.Array) -> Any:
    height, width, channels = _check_image_shape(self.image_shape, "ConvDecoder")
    features = _check_features(self.features, "ConvDecoder")
    checks.check_floating(z, "z")
    checks.check_rank(z, "z", 2, "[batch, dim_z]")
    factor = 2 ** len(features)
    h0, w0 = -(-height // factor), -(-width // factor)
    h = nn.Dense(h0 * w0 * features[0], name="dense")(z)
    h = self.activation(h).reshape(z.shape[0], h0, w0, features[0])
    kernel = (self.kernel_size, self.kernel_size)
    for i, size in enumerate(features[1:]):
      h = self.activation(nn.ConvTranspose(size, kernel, strides=(2, 2), padding="SAME",
                                           name=f"deconv_{i}")(h))
    outputs = self._outputs()
    out = nn.ConvTranspose(channels * outputs, kernel, strides=(2, 2), padding="SAME",
                           name="output")(h)
    out = out[:, :height, :width].reshape(z.shape[0], height, width, channels, outputs)
    params = self._params(out)
    if self.flatten:
      params = jax.tree.map(
          lambda p: p.reshape(z.shape[0], height * width * channels, *p.shape[4:]), params)
    return params

  def mean(self, params_of_x: Any) -> jax.Array:
    """E[x|z] in [0, 1], the shape of x: what a sample grid shows."""
    raise NotImplementedError


class _BernoulliConvDecoder(ConvDecoder):
  log_likelihood: ClassVar = staticmethod(densities.bernoulli_log_likelihood)

  def _params(self, out):
    return out[..., 0]

  def mean(self, params_of_x):
    return jax.nn.sigmoid(params_of_x)


class _GaussianConvDecoder(ConvDecoder):
  log_likelihood: ClassVar = staticmethod(densities.gaussian_log_likelihood)

  def _params(self, out):
    return jax.nn.sigmoid(out[..., 0]), jnp.log(jax.nn.softplus(out[..., 1]) + self.min_variance)

  def mean(self, params_of_x):
    return params_of_x[0]


class _CategoricalConvDecoder(ConvDecoder):
  log_likelihood: ClassVar = staticmethod(decoders.intensity_categorical_log_likelihood)

  def _params(self, out):
    return out

  def mean(self, params_of_x):
    return decoders.categorical_mean(params_of_x)


class _DiscretizedLogisticConvDecoder(ConvDecoder):
  log_likelihood: ClassVar = staticmethod(pixel_likelihoods.discretized_logistic_log_likelihood)

  def _params(self, out):
    return out[..., 0], out[..., 1]

  def mean(self, params_of_x):
    return decoders.discretized_logistic_mean(params_of_x)


class _ContinuousBernoulliConvDecoder(ConvDecoder):
  log_likelihood: ClassVar = staticmethod(pixel_likelihoods.continuous_bernoulli_log_likelihood)

  def _params(self, out):
    return out[..., 0]

  def mean(self, params_of_x):
    return decoders.continuous_bernoulli_mean(params_of_x)


_CONV_DECODERS = {
    "bernoulli": _BernoulliConvDecoder,
    "gaussian": _GaussianConvDecoder,
    "categorical": _CategoricalConvDecoder,
    "discretized_logistic": _DiscretizedLogisticConvDecoder,
    "continuous_bernoulli": _ContinuousBernoulliConvDecoder,
}
