"""Bounds over a whole data set in compiled calls: per-example values, no Python loop per batch."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vaex._src import sharding, training
from vaex._src import vae as vae_lib


def make_dataset_bound(
    model: vae_lib.VAE,
    *,
    estimator: str = "B",
    num_samples: int = 1,
    batch_size: int = 500,
    input_transform: str = "binary",
    mesh: jax.sharding.Mesh | None = None,
) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
  """`dataset_bound(params, key, data) -> [num_examples]`, the bound of every example.

  The data set is cut into `batch_size` chunks (the last padded, the padding dropped) and
  `lax.map` runs them in one compiled call. Batch b uses the key `fold_in(key, b)`. With a `mesh`,
  each chunk is sharded over the devices along the "data" axis (params and data replicated).
  """
  constrain = lambda batch: batch  # noqa: E731
  jit_kwargs: dict[str, Any] = {}
  if mesh is not None:
    sharding.check_divisible(batch_size, mesh, "eval batch_size")
    batch_spec = sharding.batch_sharded(mesh)
    constrain = lambda batch: jax.lax.with_sharding_constraint(batch, batch_spec)  # noqa: E731
    replicated = sharding.replicated(mesh)
    jit_kwargs = dict(out_shardings=replicated)

  @functools.partial(jax.jit, **jit_kwargs)
  def dataset_bound(params: Any, key: jax.Array, data: jax.Array) -> jax.Array:
    n = data.shape[0]
    num_batches = -(-n // batch_size)
    padded = jnp.pad(data, ((0, num_batches * batch_size - n), (0, 0)))
    batches = padded.reshape(num_batches, batch_size, data.shape[1])

    def one_batch(args):
      b, batch = args
      batch_key = jax.random.fold_in(key, b)
      input_key, bound_key = jax.random.split(batch_key)
      x = training.prepare_inputs(input_key, constrain(batch), input_transform)
      return constrain(vae_lib.bound(
          params, bound_key, x, model, estimator=estimator, num_samples=num_samples
      ))

    values = jax.lax.map(one_batch, (jnp.arange(num_batches), batches))
    return values.reshape(-1)[:n]

  return dataset_bound


def mean_and_stderr(values: jax.Array | np.ndarray) -> tuple[float, float]:
  """Mean of per-example values and its standard error, in float64 on the host."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


