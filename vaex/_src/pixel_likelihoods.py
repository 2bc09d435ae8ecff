"""Normalized likelihoods for pixel intensities: categorical, discretized logistic (and its mixture),
continuous Bernoulli.

Like `vaex.bernoulli_log_likelihood`, each takes data `[..., dim]` with its parameters and returns the
log-likelihood summed over the last data axis, `[...]`; the bounds sum any remaining non-batch axes
(`[n, 28, 28, 1]` images give `[n, 28, 28]` here). Each is a proper probability (mass or density) for
every parameter value, so bounds computed with them are comparable log-likelihoods, and each is
computed in log space: finite values and gradients for logits of +-1e4, means of +-100, log-scales of
+-20 and beyond.

Arguments are checked at trace time (dtypes, shapes, `num_bins`); the data's values are not read.
Check them once per data set on the host (e.g. intensities in [0, 1] on the grid k / (num_bins - 1)).
The arithmetic after the checks is one jitted function each, so that calls outside `jax.jit` run one
compiled kernel rather than some thirty dispatched operations.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from vaex._src import checks

# The smallest log-scale the discretized logistic uses; smaller values are raised to it (with zero
# gradient). PixelCNN++ clamps at -7 on data scaled to [-1, 1]; on [0, 1] the same scale relative to
# the bins is -7 - log 2 = -7.7. At -8 a bin of 256 centred on the mean holds up to 99.4% of the
# mass, and exp(-log_scale) stays far from overflow.
_LOG_SCALE_FLOOR = -8.0

# Below this |logit| the continuous Bernoulli's log-normalizer uses its Taylor series.
_CB_TAYLOR_BELOW = 0.1
# Below this bin width in logistic units, log(1 - exp(-d)) uses its series in log d.
_BIN_SERIES_BELOW = 1e-2


def _check_data_axis(x: Any, name: str) -> None:
  if x.ndim < 1:
    raise ValueError(
        f"`{name}` must have at least one axis (the likelihood sums over the last one); got "
        f"{checks._describe(x)}. Pass data as `[batch, ...]`, e.g. `{name}[None]` for one value."  # noqa: SLF001
    )


def _check_params(params: Any, function: str, names: tuple[str, ...]) -> tuple[jax.Array, ...]:
  """`params` must be a tuple of len(names) floating arrays; returns it as a tuple."""
  if not isinstance(params, (tuple, list)) or len(params) != len(names):
    want = ", ".join(names)
    got = (f"a {type(params).__name__} of length {len(params)}" if isinstance(params, (tuple, list))
           else checks._describe(params))  # noqa: SLF001
    raise TypeError(
        f"`params` of {function} must be a tuple ({want}); got {got}. Make the decoder return "
        f"({want}), e.g. by splitting one output head with `jnp.split`."
    )
  for i, (value, name) in enumerate(zip(params, names)):
    checks.check_floating(value, f"params[{i}] ({name})")
  return tuple(params)


def categorical_log_likelihood(x: jax.Array, logits: jax.Array) -> jax.Array:
  """log Categorical(x | softmax(logits)) summed over the last data axis.

  One K-way softmax per data element, e.g. K = 256 classes for 8-bit pixels (van den Oord et al.,
  Pixel Recurrent Neural Networks, 2016). Computed as `log_softmax(logits)` read at x with
  `take_along_axis`: finite with finite gradients for logits of +-1e4. Values of x outside [0, K)
  give NaN rather than being clamped silently into a class.

  Args:
    x: `[..., dim]` class indices in [0, K): an integer dtype (e.g. uint8 pixels 0..255), or a
      floating dtype holding integers (rounded to the nearest one).
    logits: `[..., dim, K]` floating logits of the K classes of each element of x.

  Returns:
    `[...]` log-likelihood in nats, in the dtype of `logits`.
  """
  checks.check_array(x, "x")
  checks.check_floating(logits, "logits")
  if not (jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.floating)):
    raise TypeError(
        f"`x` must hold integer class indices in [0, K), in an integer dtype or a floating dtype "
        f"holding integers; got {checks._describe(x)}. Convert it, e.g. `x.astype(jnp.int32)`."  # noqa: SLF001
    )
  _check_data_axis(x, "x")
  if logits.ndim != x.ndim + 1 or tuple(logits.shape[:-1]) != tuple(x.shape):
    raise ValueError(
        f"`logits` must have shape x.shape + (K,), one row of K class logits per element of `x`; "
        f"got x: {tuple(x.shape)} and logits: {tuple(logits.shape)}. Make the decoder output "
        f"{tuple(x.shape[1:])} + (K,) per example (e.g. reshape a flat head to "
        f"`(n, *x.shape[1:], K)`)."
    )
  return _categorical(x, logits)


@jax.jit
def _categorical(x: jax.Array, logits: jax.Array) -> jax.Array:
  num_classes = logits.shape[-1]
  index = (jnp.rint(x) if jnp.issubdtype(x.dtype, jnp.floating) else x).astype(jnp.int32)
  # take_along_axis wraps negative indices; send them out of range too, where "fill" gives NaN.
  index = jnp.where(index < 0, num_classes, index)
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  picked = jnp.take_along_axis(log_probs, index[..., None], axis=-1, mode="fill",
                               fill_value=jnp.nan)
  return jnp.sum(picked[..., 0], axis=-1)


def _log1mexp(d: jax.Array, log_d: jax.Array) -> jax.Array:
  """log(1 - exp(-d)) for d > 0, given also log d (finite even where d underflows to 0)."""
  small = d < _BIN_SERIES_BELOW
  safe_d = jnp.where(small, 1.0, d)  # The unused branch must not see d = 0 (log 0, inf gradient).
  series = log_d - 0.5 * d + jnp.square(d) / 24.0  # log d + log((1 - e^-d) / d), error O(d^4).
  return jnp.where(small, series, jnp.log(-jnp.expm1(-safe_d)))


@functools.partial(jax.jit, static_argnames="num_bins")
def _discretized_logistic_log_prob(
    x: jax.Array, mean: jax.Array, log_scale: jax.Array, *, num_bins: int
) -> jax.Array:
  """Per-element log P(bin of x) under Logistic(mean, exp(log_scale)); all arrays the same shape."""
  last = num_bins - 1
  # Snap x to its bin index, so that neighbouring bins share bit-identical edges (k + 1/2) / last
  # and the probabilities telescope to exactly 1; values beyond [0, 1] fall in the open end bins.
  k = jnp.rint(x * last)
  log_scale = jnp.maximum(log_scale, _LOG_SCALE_FLOOR)
  inv_scale = jnp.exp(-log_scale)
  upper = ((k + 0.5) / last - mean) * inv_scale  # Bin edges in standardized (logistic) units.
  lower = ((k - 0.5) / last - mean) * inv_scale
  # Bin width in logistic units, d = upper - lower, formed directly (no cancellation).
  width = inv_scale / last
  log_width = -log_scale - math.log(last)
  # sigmoid(u) - sigmoid(l) = sigmoid(u) sigmoid(-l) (1 - exp(-(u - l))): a sum of finite logs, so
  # the log-probability of an interior bin never underflows, however far the bin is from the mean.
  interior = jax.nn.log_sigmoid(upper) + jax.nn.log_sigmoid(-lower) + _log1mexp(width, log_width)
  first = jax.nn.log_sigmoid(upper)  # P(X <= upper): the first bin is open to -inf.
  final = jax.nn.log_sigmoid(-lower)  # P(X >= lower): the last bin is open to +inf.
  return jnp.where(k <= 0, first, jnp.where(k >= last, final, interior))


def discretized_logistic_log_likelihood(
    x: jax.Array, params: tuple[jax.Array, jax.Array], *, num_bins: int = 256
) -> jax.Array:
  """log P(x | mean, scale) of a logistic discretized to `num_bins` bins, summed over the last axis.

  Salimans et al., PixelCNN++ (2017), eq. 2, on [0, 1]: x lies on the grid k / (num_bins - 1); bin k
  is [x - h, x + h] with h = 1 / (2 (num_bins - 1)), except that the first bin is (-inf, h] and the
  last [1 - h, inf), so the num_bins probabilities sum to 1 for every mean and scale. The probability
  of an interior bin, sigmoid(u) - sigmoid(l) for its standardized edges u > l, is computed as
  log_sigmoid(u) + log_sigmoid(-l) + log(1 - exp(-(u - l))): exact in log space, with no
  underflow far from the mean and no need for PixelCNN++'s density-at-the-centre fallback.

  `log_scale` is raised to a floor of -8, with zero gradient below it, which keeps exp(-log_scale)
  finite (PixelCNN++ clamps at -7 on data in [-1, 1], i.e. -7.7 on [0, 1]); at -8 and 256 bins, a bin
  centred on the mean holds at most 99.4% of the mass. x is snapped to the nearest grid point, so
  neighbouring bins share their edges exactly; values below 0 or above 1 count in the end bins.

  Args:
    x: `[..., dim]` floating data in [0, 1] on the grid k / (num_bins - 1) (e.g. uint8 / 255).
    params: a pair `(mean, log_scale)`, each `[..., dim]` floating: the logistic's location (on the
      data's [0, 1] scale) and natural-log scale.
    num_bins: number of intensity levels (Python int >= 2), 256 for 8-bit data.

  Returns:
    `[...]` log-likelihood in nats.
  """
  num_bins = checks.check_int(num_bins, "num_bins", minimum=2, example=256,
                              fix="Use the number of intensity levels of the data, e.g. 256.")
  mean, log_scale = _check_params(params, "discretized_logistic_log_likelihood",
                                ("mean", "log_scale"))
  checks.check_floating(x, "x")
  _check_data_axis(x, "x")
  checks.check_same_shape(x, "x", mean, "params[0] (mean)")
  checks.check_same_shape(x, "x", log_scale, "params[1] (log_scale)")
  return jnp.sum(_discretized_logistic_log_prob(x, mean, log_scale, num_bins=num_bins), axis=-1)


def discretized_logistic_mixture_log_likelihood(
    x: jax.Array, params: tuple[jax.Array, jax.Array, jax.Array], *, num_bins: int = 256
) -> jax.Array:
  """log P(x) under a mixture of M discretized logistics per element, summed over the last axis.

  Salimans et al., PixelCNN++ (2017), eq. 2 (without its coupling of colour channels): each element
  of x has its own mixture, `log sum_m softmax(logits)_m P_m(x)` with P_m the bin probability of
  `vaex.discretized_logistic_log_likelihood`, combined with `logsumexp`. The same bins, log-scale
  floor and grid snapping apply; one component reproduces the single logistic.

  Args:
    x: `[..., dim]` floating data in [0, 1] on the grid k / (num_bins - 1).
    params: a triple `(logits, means, log_scales)`, each `[..., dim, M]` floating: mixture logits,
      locations and natural-log scales of the M components of each element.
    num_bins: number of intensity levels (Python int >= 2), 256 for 8-bit data.

  Returns:
    `[...]` log-likelihood in nats.
  """
  num_bins = checks.check_int(num_bins, "num_bins", minimum=2, example=256,
                              fix="Use the number of intensity levels of the data, e.g. 256.")
  logits, means, log_scales = _check_params(
      params, "discretized_logistic_mixture_log_likelihood", ("logits", "means", "log_scales"))
  checks.check_floating(x, "x")
  _check_data_axis(x, "x")
  checks.check_same_shape(logits, "params[0] (logits)", means, "params[1] (means)")
  checks.check_same_shape(logits, "params[0] (logits)", log_scales, "params[2] (log_scales)")
  if logits.ndim != x.ndim + 1 or tuple(logits.shape[:-1]) != tuple(x.shape):
    raise ValueError(
        f"The mixture parameters must have shape x.shape + (M,), M components per element of `x`; "
        f"got x: {tuple(x.shape)} and params[0] (logits): {tuple(logits.shape)}. Make the decoder "
        f"output {tuple(x.shape[1:])} + (M,) per example for each of (logits, means, log_scales)."
    )
  return _discretized_logistic_mixture(x, logits, means, log_scales, num_bins=num_bins)


@functools.partial(jax.jit, static_argnames="num_bins")
def _discretized_logistic_mixture(
    x: jax.Array, logits: jax.Array, means: jax.Array, log_scales: jax.Array, *, num_bins: int
) -> jax.Array:
  x_per_component = jnp.broadcast_to(x[..., None], means.shape)
  log_probs = _discretized_logistic_log_prob(x_per_component, means, log_scales, num_bins=num_bins)
  log_weights = jax.nn.log_softmax(logits, axis=-1)
  return jnp.sum(jax.nn.logsumexp(log_weights + log_probs, axis=-1), axis=-1)


def _continuous_bernoulli_log_normalizer(logits: jax.Array) -> jax.Array:
  """log C(l) = log(l / tanh(l / 2)), with its Taylor series near l = 0 (C(0) = 2)."""
  small = jnp.abs(logits) < _CB_TAYLOR_BELOW
  # The double-where trick: the direct branch never sees l = 0, so its gradient there is not NaN.
  safe = jnp.where(small, 1.0, logits)
  direct = jnp.log(safe / jnp.tanh(0.5 * safe))  # l / tanh(l / 2) > 0; -> |l| for large |l|.
  sq = jnp.square(logits)
  # log(l / tanh(l/2)) = log 2 + l^2/12 - 7 l^4/1440 + 31 l^6/90720 + O(l^8); error < 3e-13 here.
  series = math.log(2.0) + sq * (1.0 / 12.0 + sq * (-7.0 / 1440.0 + sq * (31.0 / 90720.0)))
  return jnp.where(small, series, direct)


def continuous_bernoulli_log_likelihood(x: jax.Array, logits: jax.Array) -> jax.Array:
  """log ContinuousBernoulli(x | sigmoid(logits)) summed over the last axis.

  Loaiza-Ganem & Cunningham, The continuous Bernoulli: fixing a pervasive error in variational
  autoencoders (2019): the density on [0, 1] proportional to lambda^x (1 - lambda)^(1 - x), with
  lambda = sigmoid(l),

    log p(x | l) = x log_sigmoid(l) + (1 - x) log_sigmoid(-l) + log C(l),
    C(l) = 2 atanh(1 - 2 lambda) / (1 - 2 lambda) = l / tanh(l / 2),  C(0) = 2.

  log C is formed from the logit directly (no atanh of a rounded 1 - 2 lambda) and from its Taylor
  series for |l| < 0.1, behind a double `where`, so values and gradients are smooth and finite
  through l = 0; for logits of +-1e4 everything stays finite (log C -> log |l|).

  Args:
    x: `[..., dim]` floating data in [0, 1] (e.g. intensities uint8 / 255).
    logits: `[..., dim]` floating logits l of the shape parameter lambda.

  Returns:
    `[...]` log-density in nats (with respect to Lebesgue measure on [0, 1]^dim; can be positive).
  """
  checks.check_floating(x, "x")
  checks.check_floating(logits, "logits")
  _check_data_axis(x, "x")
  checks.check_same_shape(x, "x", logits, "logits")
  return _continuous_bernoulli(x, logits)


@jax.jit
def _continuous_bernoulli(x: jax.Array, logits: jax.Array) -> jax.Array:
  log_kernel = x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits)
  return jnp.sum(log_kernel + _continuous_bernoulli_log_normalizer(logits), axis=-1)
