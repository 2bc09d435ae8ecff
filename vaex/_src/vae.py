"""A VAE as one Flax module (encoder, decoder and optional learnable prior), and the loss a training
loop differentiates."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaex._src import bounds, posteriors
from vaex._src.prior_models import VampPrior, vamp_mixture

ESTIMATORS = ("A", "B", "iwae")


class VAE(nn.Module):
  """Bundles a recognition model, a decoder and a prior; `encode`/`decode`/`prior_distribution` are
  what the bounds take.

  Attributes:
    encoder: a module `x: [batch, dim_x] -> q(z|x)`: `(mean, log_var)` (e.g. `vaex.MLPEncoder()`)
      or a distribution object (`vaex.FullCovarianceMLPEncoder()`, `vaex.FlowMLPEncoder()`).
    decoder: a module `z: [batch, dim_z] -> params of p(x|z)` with a `log_likelihood` attribute,
      e.g. `vaex.BernoulliMLPDecoder()`.
    prior: None for p(z) = N(0, I) (the fast path), a module returning a prior object (e.g.
      `vaex.MixturePrior`), or a `vaex.VampPrior`, whose pseudo-inputs go through `encoder`.

  Calling the module (`model.init(key, x)`) encodes, decodes the posterior mean (zeros for a posterior
  without a closed-form mean) and builds the prior, which creates every parameter.
  """

  encoder: nn.Module
  decoder: nn.Module
  prior: nn.Module | None = None

  def __call__(self, x: jax.Array) -> Any:
    q = self.encoder(x)
    if posteriors.is_diagonal_gaussian(q):
      z = q[0]
    elif callable(getattr(q, "mean", None)):
      z = q.mean()
    else:
      z = jnp.zeros((x.shape[0], *q.event_shape), jnp.float32)
    if self.prior is not None:
      self.prior_distribution()
    return self.decoder(z)

  def encode(self, x: jax.Array) -> Any:
    """`x: [batch, dim_x] -> q(z|x)`: `(mean, log_var)`, each `[batch, dim_z]`, or an object."""
    return self.encoder(x)

  def prior_distribution(self) -> Any:
    """p(z): None for N(0, I), else an object with `log_prob` and `sample` over `[dim_z]`.

    For a `VampPrior`, the equal-weight mixture of the encoder's q(z|u_k) at the K pseudo-inputs
    (the encoder must return `(mean, log_var)`)."""
    if self.prior is None:
      return None
    if isinstance(self.prior, VampPrior):
      q = self.encoder(self.prior())
      if not posteriors.is_diagonal_gaussian(q):
        raise TypeError(
            f"The VampPrior mixes the encoder's q(z|u_k), which must be a diagonal Gaussian "
            f"(mean, log_var); {type(self.encoder).__name__} returned {type(q).__name__}. Use "
            "vaex.MLPEncoder with the VampPrior, or vaex.MixturePrior with this encoder."
        )
      return vamp_mixture(*q)
    return self.prior()

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


def prior_distribution(model: VAE, params: Any) -> Any:
  """The prior object p(z) of a VAE with fixed (or traced) parameters; None for N(0, I)."""
  if model.prior is None:
    return None
  return model.apply(params, method=VAE.prior_distribution)


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
  prior = prior_distribution(model, params)
  if estimator == "iwae":
    return bounds.iwae_bound(
        key, x, encode, decode, log_likelihood=model.log_likelihood, prior=prior,
        num_samples=num_samples, gradient_estimator=gradient_estimator,
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
      prior=prior,
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
