"""A VAE as one Flax module (encoder + decoder), and the loss a training loop differentiates."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaex._src import bounds

ESTIMATORS = ("A", "B", "iwae")


class VAE(nn.Module):
  """Bundles a recognition model and a decoder; `encode`/`decode` are what the bounds take.

  Attributes:
    encoder: a module `x: [batch, dim_x] -> (mean, log_var)`, e.g. `vaex.MLPEncoder()`.
    decoder: a module `z: [batch, dim_z] -> params of p(x|z)` with a `log_likelihood` attribute,
      e.g. `vaex.BernoulliMLPDecoder()`.

  Calling the module (`model.init(key, x)`) encodes and decodes the posterior mean, which creates
  every parameter.
  """

  encoder: nn.Module
  decoder: nn.Module

  def __call__(self, x: jax.Array) -> Any:
    mean, _ = self.encoder(x)
    return self.decoder(mean)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x: [batch, dim_x] -> (mean, log_var)`, each `[batch, dim_z]`."""
    return self.encoder(x)

  def decode(self, z: jax.Array) -> Any:
    """`z: [batch, dim_z] -> params of p(x|z)`."""
    return self.decoder(z)

  def decoder_mean(self, z: jax.Array) -> jax.Array:
    """`z: [batch, dim_z] -> E[x|z]: [batch, dim_x]` (pixel probabilities or Gaussian means)."""
    return self.decoder.mean(self.decoder(z))

  @property
  def log_likelihood(self) -> bounds.LogLikelihood:
    return type(self.decoder).log_likelihood


def encoder_decoder(model: VAE, params: Any) -> tuple[bounds.Encoder, bounds.Decoder]:
  """The `(encode, decode)` callables of a VAE with fixed (or traced) parameters."""
  encode = functools.partial(model.apply, params, method=VAE.encode)
  decode = functools.partial(model.apply, params, method=VAE.decode)
  return encode, decode


def bound(
    params: Any,
    key: jax.Array,
    x: jax.Array,
    model: VAE,
    *,
    estimator: str = "B",
    num_samples: int = 1,
    gradient_estimator: str = "reparameterization",
) -> jax.Array:
  """The per-example bound `[batch]` of a VAE: estimator "A", "B" (`vaex.elbo`) or "iwae".

  `gradient_estimator` goes to the bound: "stl" with estimator "A", "dreg" with "iwae"."""
  data_dim = getattr(model.decoder, "data_dim", None)
  if data_dim is not None and getattr(x, "ndim", None) == 2 and x.shape[-1] != data_dim:
    raise ValueError(
        f"`x` has {x.shape[-1]} values per example but the model's decoder was built for "
        f"data_dim={data_dim}: flatten x to [batch, {data_dim}], or build the VAE with "
        f"data_dim={x.shape[-1]}."
    )
  encode, decode = encoder_decoder(model, params)
  if estimator == "iwae":
    return bounds.iwae_bound(
        key, x, encode, decode, log_likelihood=model.log_likelihood, num_samples=num_samples,
        gradient_estimator=gradient_estimator,
    )
  if estimator not in ESTIMATORS:
    raise ValueError(
        f"`estimator` must be one of {ESTIMATORS} (SGVB estimator A, estimator B, or the IWAE "
        f"bound); got {estimator!r}."
    )
  return bounds.elbo(
      key,
      x,
      encode,
      decode,
      log_likelihood=model.log_likelihood,
      num_samples=num_samples,
      analytic_kl=estimator == "B",
      gradient_estimator=gradient_estimator,
  )


def loss(
    params: Any,
    key: jax.Array,
    x: jax.Array,
    model: VAE,
    *,
    estimator: str = "B",
    num_samples: int = 1,
    gradient_estimator: str = "reparameterization",
) -> jax.Array:
  """Scalar loss to minimize: minus the batch mean of the bound; `jax.value_and_grad(vaex.loss)`."""
  return -jnp.mean(bound(params, key, x, model, estimator=estimator, num_samples=num_samples,
                         gradient_estimator=gradient_estimator))
