"""Running an experiment from a config: the training loop, with checkpoints, metrics and evaluation.

`train_and_evaluate(config, workdir)` is what `experiments/train.py` calls. It checks the config
(`config.py`), loads the data and builds the model and optimizer (`builders.py`), prepares the workdir
and its metrics log (`workdir.py`), trains, and evaluates and draws the result (`run_evaluation.py`).
Re-running the same command resumes from the latest checkpoint and ends bitwise equal to an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vaex._src import checkpointing, evaluation, seeds, sharding, training, wake_sleep
from vaex._src.builders import build_model, build_optimizer, load_datasets
from vaex._src.config import validate_config
from vaex._src.run_evaluation import EVAL_STREAM, eval_batch_size, write_images
from vaex._src.workdir import MetricsLog, WorkdirLock, prepare_workdir


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


class _Progress:
  """A tqdm bar on a terminal; plain log lines otherwise."""

  def __init__(self, total: int, initial: int, *, enabled: bool = True):
    self.bar = None
    self.enabled = enabled
    if enabled and sys.stderr.isatty():
      from tqdm.auto import tqdm

      self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

  def update(self, steps: int, **postfix: Any) -> None:
    if self.bar is not None:
      self.bar.update(steps)
      self.bar.set_postfix({k: f"{v:.2f}" if isinstance(v, float) else v for k, v in postfix.items()})

  def log(self, message: str) -> None:
    if self.bar is not None:
      self.bar.write(message)
    elif self.enabled:
      logging.info(message)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def _evaluate_epoch(dataset_bound, params, key, splits_on_device) -> dict[str, float]:
  out = {}
  for name in ("valid", "test"):
    values = dataset_bound(params, key, splits_on_device[name])
    out[f"{name}_elbo"] = float(sharding.to_host(jnp.mean(values)))
  return out


def _host_fed_steps(step_fn, mesh, train_data: np.ndarray, batch_size: int):
  """The per-step path: each process loads only its rows of every global batch from host memory.

  `run(state, num_steps) -> (state, metrics, compile_s)`; the step is compiled ahead of time on the
  first batch, and `compile_s` is the time that took (0.0 on later calls).
  """
  rows = sharding.process_rows(batch_size)
  num_examples = train_data.shape[0]
  steps_per_epoch = num_examples // batch_size
  permutation = jax.jit(training.epoch_permutation, static_argnums=2)
  compiled: list[Callable] = []

  def run(state, num_steps):
    compile_s = 0.0
    step = int(sharding.to_host(state.step))
    order = sharding.to_host(permutation(state.key, step // steps_per_epoch, num_examples))
    outputs = []
    for i in range(step % steps_per_epoch, step % steps_per_epoch + num_steps):
      indices = order[i * batch_size:(i + 1) * batch_size][rows]
      batch = sharding.put_process_batch(train_data[indices], mesh, batch_size)
      if not compiled:
        start = time.perf_counter()
        compiled.append(step_fn.lower(state, batch).compile())
        compile_s = time.perf_counter() - start
      state, metrics = compiled[0](state, batch)
      outputs.append(metrics)
    return state, jax.tree.map(lambda *xs: jnp.stack(xs), *outputs), compile_s

  return run


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes) the run `config` describes in `workdir`; returns the last evaluation.

  Every check (config values, devices, workdir, data) runs before any training starts. With several
  processes (`jax.distributed`), every process runs this function; process 0 writes the config,
  metrics and images, and orbax coordinates the checkpoints.

  Raises `WorkdirInUseError` (naming its host, pid and start time) if another run is writing
  `workdir`; the lock is taken before anything is written and released when this returns or raises.
  """
  validate_config(config)
  workdir = os.path.abspath(workdir)
  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_divisible(config.batch_size, mesh, "config.batch_size")
  splits = load_datasets(config)
  is_writer = jax.process_index() == 0
  # One run per workdir: its writer holds the workdir's lock until the run ends, however it ends. The
  # other processes of a multi-process run share the workdir by design and take no lock.
  with WorkdirLock(workdir) if is_writer else contextlib.nullcontext():
    prepare_workdir(config, workdir, write=is_writer)
    return _train(config, workdir, mesh, splits, is_writer)


def _train(config: ml_collections.ConfigDict, workdir: str, mesh: jax.sharding.Mesh,
           splits: dict[str, np.ndarray], is_writer: bool) -> dict[str, Any]:
  """The body of `train_and_evaluate`, once the checks have passed and the workdir is locked."""
  train_data = splits["train"]
  num_train, data_dim = train_data.shape
  steps_per_epoch = num_train // config.batch_size
  total_steps = steps_per_epoch * config.num_epochs
  left_out = num_train - steps_per_epoch * config.batch_size
  if left_out and is_writer:  # Said once: each epoch visits whole batches of a fresh permutation.
    logging.info(
        "%d training examples, batch %d: %d steps per epoch, %d examples (%s%%) left out of each "
        "epoch, a different random subset every epoch.", num_train, config.batch_size,
        steps_per_epoch, left_out, f"{100 * left_out / num_train:.2g}")
  model = build_model(config, data_dim)
  optimizer = build_optimizer(config, steps_per_epoch)
  if config.algorithm == "wake_sleep":
    loss_fn = wake_sleep.make_wake_sleep_loss(
        model, prior_precision=config.prior_precision, num_train=num_train)
  else:
    loss_fn = training.make_loss_fn(
        model, estimator=config.estimator, num_samples=config.num_samples,
        prior_precision=config.prior_precision, num_train=num_train,
        gradient_estimator=config.gradient_estimator, kl_weight=config.kl_weight,
        kl_warmup_steps=config.kl_warmup_epochs * steps_per_epoch, free_bits=config.free_bits,
    )
  dataset_bound = evaluation.make_dataset_bound(
      model, estimator="elbo", num_samples=1, batch_size=eval_batch_size(config, mesh),
      input_transform=config.input_transform, mesh=mesh,
  )

  state = seeds.create_train_state(config.seed, config.num_seeds, model, optimizer, data_dim)
  state = sharding.put_replicated(state, mesh)
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
  )
  metrics_log = MetricsLog(workdir, write=is_writer)
  wall_s = 0.0
  if checkpointer.latest_step() is not None:
    state, meta = checkpointer.restore(state)
    wall_s = float(meta.get("wall_s", 0.0))
    logging.info("Resumed from step %d (epoch %d) in %s.", _step_of(state),
                 _step_of(state) // steps_per_epoch, workdir)
  metrics_log.truncate_after(_step_of(state))

  on_device = {k: sharding.put_replicated(v, mesh) for k, v in splits.items()
               if k != "train" or config.data_placement == "device"}
  if config.data_placement == "device":
    train_steps = training.make_train_steps(
        loss_fn, optimizer, batch_size=config.batch_size, input_transform=config.input_transform,
        mesh=mesh)
    if config.num_seeds > 1:  # All replicas in one program (vaex/_src/seeds.py).
      train_steps = seeds.vmap_train_steps(train_steps, mesh=mesh)
    compiled: dict[int, Callable] = {}

    def run(state, num_steps):
      compile_s = 0.0
      if num_steps not in compiled:  # Compiled ahead of time, once per scan length, and timed.
        start = time.perf_counter()
        compiled[num_steps] = train_steps.lower(state, on_device["train"], num_steps).compile()
        compile_s = time.perf_counter() - start
      return *compiled[num_steps](state, on_device["train"]), compile_s

    def compiled_name(num_steps):
      return ("the epoch function" if num_steps == steps_per_epoch
              else f"the training function ({num_steps} steps per call)")
  else:
    step_fn = training.make_train_step(loss_fn, optimizer, input_transform=config.input_transform,
                                       mesh=mesh)
    run = _host_fed_steps(step_fn, mesh, train_data, config.batch_size)

    def compiled_name(num_steps):
      return "the training step"

  def evaluate(state) -> list[dict[str, Any]]:
    """The validation and test ELBO: one record per replica (with a `seed` field when S > 1)."""
    step = _step_of(state)
    return [{"step": step, "epoch": step // steps_per_epoch, **seed_field, **_evaluate_epoch(
                dataset_bound, params, jax.random.fold_in(key, EVAL_STREAM), on_device)}
            for seed_field, params, key in seeds.replicas(state, config.seed, config.num_seeds)]

  steps_per_call = config.steps_per_call or steps_per_epoch
  progress = _Progress(total_steps, _step_of(state), enabled=is_writer)
  last_eval: dict[str, Any] = {}
  last_evals: list[dict[str, Any]] = []
  try:
    while _step_of(state) < total_steps:
      step = _step_of(state)
      epoch_end = (step // steps_per_epoch + 1) * steps_per_epoch
      num_steps = min(steps_per_call, epoch_end - step)
      start = time.perf_counter()
      state, metrics, compile_s = run(state, num_steps)
      # The one host transfer of this call: the per-step training bounds. (A per-step gradient
      # norm would cost 10-16% of the step; a non-finite gradient shows up in the parameters,
      # which are checked once per call below, before anything is checkpointed.)
      bounds_per_step = sharding.to_host(metrics["bound"])
      seconds = time.perf_counter() - start
      wall_s += seconds  # Training time as a user waits for it: compilation included.
      if compile_s:
        progress.log(f"compiled {compiled_name(num_steps)} in {compile_s:.1f} s")
      new_step = _step_of(state)
      finite = np.isfinite(bounds_per_step)
      advice = ("Lower the learning rate, set config.grad_clip_norm, or set "
                "config.on_non_finite='skip' to drop such updates.")
      if not finite.all() and config.on_non_finite == "stop":
        bad = step + 1 + int(np.argmin(finite.reshape(-1, num_steps).all(axis=0)))
        raise FloatingPointError(
            f"The training bound became non-finite at step {bad}. No checkpoint was written after "
            f"it; the last good checkpoint is step {checkpointer.latest_step()} in "
            f"{checkpointer.directory}. {advice}"
        )
      if not bool(sharding.to_host(_all_finite(state.params))):
        cause = (f"more than {config.max_consecutive_non_finite} non-finite updates in a row"
                 if config.on_non_finite == "skip" else "a non-finite gradient")
        raise FloatingPointError(
            f"The parameters became non-finite between steps {step + 1} and {new_step} ({cause}). "
            f"No checkpoint was written after it; the last good checkpoint is step "
            f"{checkpointer.latest_step()} in {checkpointer.directory}. {advice}"
        )
      epoch = new_step // steps_per_epoch
      records = [{
          "step": new_step, "epoch": epoch,
          "train_elbo": float(bounds_per_step[finite].mean()) if finite.any() else float("nan"),
          # Throughput of the training itself: the compilation of this call is reported apart.
          "images_per_sec": num_steps * config.batch_size / max(seconds - compile_s, 1e-9),
          "wall_s": wall_s,
      }]
      if compile_s:
        records[0]["compile_s"] = compile_s
      if "kl_weight" in metrics:  # The KL knobs are on: the weight in force and the mean KL.
        kl, kl_weight = sharding.to_host(metrics["kl"]), sharding.to_host(metrics["kl_weight"])
        records[0].update(train_kl=float(np.mean(kl)), kl_weight=float(kl_weight.flat[-1]))
      if not finite.all():
        records[0]["skipped_steps"] = int((~finite).sum())
        progress.log(f"skipped {int((~finite).sum())} non-finite updates before step {new_step}")
      if config.num_seeds > 1:  # One line per replica, each with its `seed`.
        records = seeds.per_seed_training_records(records[0], jax.tree.map(
            sharding.to_host, metrics), config.seed)
      epoch_done = new_step % steps_per_epoch == 0
      if epoch_done and (epoch % config.eval_every_epochs == 0 or new_step == total_steps):
        last_evals = evaluate(state)
        last_eval = last_evals[0]
        records.extend(last_evals)
        progress.log(f"epoch {epoch}: train ELBO {records[0]['train_elbo']:.2f}, valid ELBO "
                     f"{last_eval['valid_elbo']:.2f}, test ELBO {last_eval['test_elbo']:.2f} nats "
                     f"({records[0]['images_per_sec']:.0f} images/s)")
      metrics_log.write(records)  # Before the checkpoint of the same step: see MetricsLog.
      progress.update(num_steps, elbo=records[0]["train_elbo"],
                      img_s=int(records[0]["images_per_sec"]))
      if (epoch_done and epoch % config.checkpoint_every_epochs == 0) or new_step == total_steps \
          or not epoch_done:
        checkpointer.save(state, {"epoch": epoch, "wall_s": wall_s})
  finally:
    progress.close()
    checkpointer.close()

  if not last_eval:  # Resumed a finished run, or evaluation was not due: evaluate now.
    last_evals = evaluate(state)
    last_eval = last_evals[0]
  if is_writer:  # Replica 0's samples and reconstructions.
    _, params, key = next(seeds.replicas(state, config.seed, config.num_seeds))
    write_images(model, params, key, splits["test"], config, workdir)
  per_seed = {"per_seed": last_evals} if config.num_seeds > 1 else {}
  return {**last_eval, **per_seed, "wall_s": wall_s, "workdir": workdir}


def _step_of(state: training.TrainState) -> int:
  return int(sharding.to_host(state.step))
