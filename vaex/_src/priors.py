"""How the bounds read p(z): `None` for N(0, I) (the fast path), or an object with `log_prob(z)`.

A prior object follows the distrax protocol over the latent event: `log_prob(z)` maps
`[..., *event] -> [...]`, and `sample(seed=key, sample_shape=shape)` gives `[*shape, *event]` where
samples are drawn (e.g. `distrax.MixtureSameFamily` of `distrax.MultivariateNormalDiag`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from vaex._src import checks, densities

# `None` (N(0, I)) or an object with `log_prob(z)`.
Prior = Any


def check_prior(prior: Prior) -> None:
  """Raises TypeError unless `prior` is None or has a callable `log_prob`."""
  if prior is not None and not callable(getattr(prior, "log_prob", None)):
    raise TypeError(
        f"`prior` must be None (N(0, I)) or an object with `log_prob(z)` over the latent event, "
        f"e.g. a distrax.MixtureSameFamily; got {checks._describe(prior)}."  # noqa: SLF001
    )


def check_event_shape(prior: Prior, posterior_event: tuple[int, ...]) -> None:
  """Raises ValueError if the prior declares an `event_shape` other than the posterior's."""
  event_shape = getattr(prior, "event_shape", None)
  if event_shape is not None and tuple(event_shape) != tuple(posterior_event):
    hint = ""
    if len(event_shape) < len(posterior_event):
      hint = (
          " A prior over single coordinates (e.g. distrax.Normal) needs the latent axes in its "
          f"event: `distrax.Independent(prior, reinterpreted_batch_ndims="
          f"{len(posterior_event) - len(event_shape)})`."
      )
    raise ValueError(
        f"The prior's event shape {tuple(event_shape)} differs from the posterior's "
        f"{tuple(posterior_event)}: p(z) and q(z|x) must be over the same latent space. Build the "
        f"prior with that event shape (e.g. loc of shape {tuple(posterior_event)}), or change the "
        f"encoder's latent size.{hint}"
    )


def prior_log_prob(prior: Prior, z: jax.Array) -> jax.Array:
  """log p(z) for samples `z: [L, batch, *event]` -> `[L, batch]`."""
  if prior is None:
    if z.ndim == 3:
      return densities.standard_normal_log_prob(z)
    return densities.standard_normal_log_prob(z.reshape(*z.shape[:2], -1))
  check_event_shape(prior, tuple(z.shape[2:]))
  log_p = prior.log_prob(z)
  checks.check_values_shape(
      log_p, "prior.log_prob(z)", z.shape[:2],
      f"one value per sample and example of z {tuple(z.shape)}",
      " A prior over single coordinates (e.g. distrax.Normal) needs its latent axes in the event: "
      "`distrax.Independent(prior, reinterpreted_batch_ndims=1)`.")
  return log_p


def sample_prior(key: jax.Array, prior: Prior, num_samples: int, latent_shape: tuple[int, ...]):
  """`num_samples` draws from p(z): `[num_samples, *latent_shape]` (N(0, I) when `prior` is None)."""
  checks.check_key(key)
  num_samples = checks.check_positive_int(num_samples, "num_samples")
  if prior is None:
    return jax.random.normal(key, (num_samples, *latent_shape), jnp.float32)
  check_prior(prior)
  if not callable(getattr(prior, "sample", None)):
    raise TypeError(
        f"Drawing from the prior needs `prior.sample(seed=, sample_shape=)`; "
        f"{type(prior).__name__} has no `sample` method."
    )
  return prior.sample(seed=key, sample_shape=(num_samples,))
