"""The signal-to-noise ratio of a stochastic gradient over keys (Rainforth et al. 2018).

For each parameter, SNR = |E[g]| / std[g] over independent keys; Rainforth et al. show that for the
IWAE bound the inference network's SNR falls like 1/sqrt(k) while the generative network's grows,
and Tucker et al. (2019) that the doubly reparameterized gradient (DReG) removes the fall.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from vaex._src import checks


def gradient_snr(
    grad_fn: Callable[[Any, jax.Array], Any], params: Any, key: jax.Array, *, num_keys: int
) -> Any:
  """Per-parameter |mean| / std of `grad_fn(params, key_i)` over `num_keys` keys.

  The gradients are drawn one key at a time with `lax.map` (memory: `num_keys` copies of the
  gradient, not of the activations) and reduced in two passes.

  Args:
    grad_fn: `(params, key) -> gradient pytree` (any structure, e.g. only the encoder's).
    params: passed to `grad_fn` unchanged.
    key: a `jax.random.key`; key i is `fold_in(key, i)`.
    num_keys: number of gradient draws (>= 2).

  Returns:
    A pytree like the gradient: the SNR of every entry (`nan` where the gradient does not vary:
    its std is 0).
  """
  checks.check_key(key)
  num_keys = checks.check_int(num_keys, "num_keys", minimum=2, example=100,
                              fix="The standard deviation needs at least two draws.")
  grads = jax.lax.map(lambda i: grad_fn(params, jax.random.fold_in(key, i)), jnp.arange(num_keys))

  def snr(g: jax.Array) -> jax.Array:
    mean = jnp.mean(g, axis=0)
    std = jnp.std(g, axis=0, ddof=1)
    return jnp.where(std > 0, jnp.abs(mean) / jnp.where(std > 0, std, 1.0), jnp.nan)

  return jax.tree.map(snr, grads)


def mean_snr(snr_tree: Any) -> float:
  """The SNR averaged over every parameter entry where it is defined (Rainforth et al.'s summary)."""
  values = jnp.concatenate([jnp.ravel(v) for v in jax.tree_util.tree_leaves(snr_tree)])
  return float(jnp.nanmean(values))
