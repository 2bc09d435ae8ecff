"""Many seeds in one program: S independent replicas of a run trained by one compiled call.

With `config.num_seeds = S` > 1 the train state is S states stacked along a leading axis, replica s
created from `jax.random.key(config.seed + s)` (its own initialization, data order and noise), and
the epoch function of `training.make_train_steps` runs under `jax.vmap` over that axis: each step's S
updates are one batched program, which keeps a GPU or TPU busy where one small VAE leaves it idle.
The update count `step` stays one scalar shared by all replicas (they advance together), so the
training loop, its checkpoints (one holding all replicas) and resumption work as for one run.

Replica s equals a single run with `seed = config.seed + s` to float32 rounding: the same keys, data
order and updates, but XLA may sum a batched matmul in another order. With S = 1 nothing here is
used and a run is exactly what it was before `num_seeds` existed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vaex._src import sharding, training
from vaex._src import vae as vae_lib

# `jax.vmap` axes of a stacked TrainState: everything per replica except the shared step count.
STATE_AXES = training.TrainState(params=0, opt_state=0, step=None, key=0)


def create_train_state(
    seed: int, num_seeds: int, model: vae_lib.VAE, optimizer: optax.GradientTransformation,
    data_dim: int,
) -> training.TrainState:
  """The initial state of a run: `training.create_train_state(jax.random.key(seed), ...)` for one
  seed; for `num_seeds` > 1, the states of seeds `seed, ..., seed + num_seeds - 1` stacked along a
  leading axis (every leaf `[num_seeds, ...]`, `key: [num_seeds]`) with one scalar `step`."""
  states = [training.create_train_state(jax.random.key(seed + s), model, optimizer, data_dim)
            for s in range(num_seeds)]
  if num_seeds == 1:
    return states[0]
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  return stacked.replace(step=states[0].step)


def vmap_train_steps(
    train_steps: Callable[..., tuple[training.TrainState, dict[str, jax.Array]]],
    *,
    mesh: jax.sharding.Mesh | None = None,
) -> Callable[..., tuple[training.TrainState, dict[str, jax.Array]]]:
  """`train_steps` of `training.make_train_steps`, vmapped over the replicas of a stacked state.

  Returns `steps(state, data, num_steps) -> (state, metrics)` with the same contract (state donated,
  `data` shared by all replicas, one compiled call, `steps.lower(state, data, num_steps)` for
  ahead-of-time compilation); each metric is `[num_seeds, num_steps]`. With a `mesh`, the stacked
  state is replicated on its devices and each replica's minibatches are sharded along "data" as in
  one run.
  """
  jit_kwargs: dict[str, Any] = {}
  if mesh is not None:
    replicated = sharding.replicated(mesh)
    jit_kwargs = dict(in_shardings=(replicated, replicated), out_shardings=(replicated, replicated))

  @functools.partial(jax.jit, donate_argnums=0, static_argnums=2, **jit_kwargs)
  def compiled_steps(state: training.TrainState, data: jax.Array, num_steps: int):
    one_replica = lambda state, data: train_steps(state, data, num_steps)  # noqa: E731
    return jax.vmap(one_replica, in_axes=(STATE_AXES, None), out_axes=(STATE_AXES, 0))(state, data)

  def steps(state: training.TrainState, data: jax.Array, num_steps: int):
    return compiled_steps(state, data, num_steps)

  steps.lower = lambda state, data, num_steps: compiled_steps.lower(state, data, num_steps)
  return steps


def replicas(state: training.TrainState, seed: int, num_seeds: int
             ) -> Iterator[tuple[dict[str, int], Any, jax.Array]]:
  """`(seed_field, params, key)` of each replica, in order: `({}, state.params, state.key)` for one
  seed; `({"seed": seed + s}, params of replica s, key of replica s)` for a stacked state."""
  if num_seeds == 1:
    yield {}, state.params, state.key
    return
  for s in range(num_seeds):
    yield {"seed": seed + s}, jax.tree.map(lambda x, s=s: x[s], state.params), state.key[s]


def replica_state(state: training.TrainState, index: int) -> training.TrainState:
  """Replica `index` of a stacked state, as the unstacked state of a single run."""
  return state.replace(params=jax.tree.map(lambda x: x[index], state.params),
                       opt_state=jax.tree.map(lambda x: x[index], state.opt_state),
                       key=state.key[index])


def per_seed_training_records(
    record: dict[str, Any], metrics: dict[str, np.ndarray], seed: int
) -> list[dict[str, Any]]:
  """One training line per replica from the line of the whole call.

  Args:
    record: the call's line (`step`, `epoch`, `images_per_sec`, `wall_s`, ...); its per-step values
      are replaced by each replica's own.
    metrics: host arrays `[num_seeds, num_steps]`: "bound", and "kl", "kl_weight" if the KL knobs
      are on.
    seed: `config.seed`; replica s's line carries `seed + s`.
  """
  out = []
  for s, bounds in enumerate(metrics["bound"]):
    finite = np.isfinite(bounds)
    line = {**record, "seed": seed + s,
            "train_elbo": float(bounds[finite].mean()) if finite.any() else float("nan")}
    if "train_kl" in record:
      line.update(train_kl=float(np.mean(metrics["kl"][s])),
                  kl_weight=float(metrics["kl_weight"][s][-1]))
    line.pop("skipped_steps", None)
    if not finite.all():
      line["skipped_steps"] = int((~finite).sum())
    out.append(line)
  return out
