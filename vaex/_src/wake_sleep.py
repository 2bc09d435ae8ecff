"""The wake-sleep algorithm (Hinton et al. 1995), the baseline of Kingma & Welling's Figure 2.

Same recognition model q(z|x) and generative model p(x|z)p(z) as AEVB, different updates:
  * wake: z ~ q(z|x) for data x (no gradient through the sample); maximize log p(x|z) + log p(z)
    with respect to the generative parameters;
  * sleep: z ~ p(z), x ~ p(x|z) (a fantasy); maximize log q(z|x) with respect to the recognition
    parameters.
Both are written as one loss whose gradient touches each parameter set only through its own phase
(`stop_gradient` on the other model's outputs), so it plugs into the same training step and Optax
optimizer as AEVB. The reported `bound` is the ELBO (estimator B) of the current models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from vaex._src import densities
from vaex._src import vae as vae_lib
from vaex._src.decoders import BernoulliMLPDecoder


def _sample_from_decoder(key: jax.Array, model: vae_lib.VAE, params_of_x: Any) -> jax.Array:
  if isinstance(model.decoder, BernoulliMLPDecoder):
    return jax.random.bernoulli(key, jax.nn.sigmoid(params_of_x)).astype(jnp.float32)
  mean, log_var = params_of_x
  return mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape, mean.dtype)


def make_wake_sleep_loss(
    model: vae_lib.VAE, *, prior_precision: float = 0.0, num_train: int = 1
) -> Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]:
  """`loss(params, key, x) -> (loss, metrics)` for wake-sleep; same contract as `make_loss_fn`,
  including the N(0, I / prior_precision) weight-decay prior spread over `num_train` examples."""
  weight_decay = prior_precision / (2.0 * num_train)

  def loss_fn(params, key, x):
    wake_key, sleep_z_key, sleep_x_key, bound_key = jax.random.split(key, 4)
    const = jax.lax.stop_gradient
    # Wake phase: fit the generative model to (x, z ~ q(z|x)).
    mean, log_var = model.apply(params, x, method=vae_lib.VAE.encode)
    z = const(mean + jnp.exp(0.5 * log_var) * jax.random.normal(wake_key, mean.shape, mean.dtype))
    wake = model.log_likelihood(x, model.apply(params, z, method=vae_lib.VAE.decode))
    wake = wake + densities.standard_normal_log_prob(z)
    # Sleep phase: fit the recognition model to fantasies (z ~ p(z), x ~ p(x|z)).
    z_dream = jax.random.normal(sleep_z_key, mean.shape, mean.dtype)
    x_dream = const(_sample_from_decoder(
        sleep_x_key, model, model.apply(params, z_dream, method=vae_lib.VAE.decode)))
    q_mean, q_log_var = model.apply(params, x_dream, method=vae_lib.VAE.encode)
    sleep = densities.diag_gaussian_log_prob(z_dream, q_mean, q_log_var)
    loss = -jnp.mean(wake) - jnp.mean(sleep)
    if weight_decay:
      loss = loss + weight_decay * optax.tree.norm(params, squared=True)
    bound = jnp.mean(const(vae_lib.bound(params, bound_key, x, model, estimator="B")))
    return loss, {"loss": loss, "bound": bound, "wake": jnp.mean(wake), "sleep": jnp.mean(sleep)}

  return loss_fn
