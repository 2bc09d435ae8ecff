"""Running an experiment from a config: data, model, training loop, evaluation, artifacts.

`train_and_evaluate(config, workdir)` is what `experiments/train.py` calls. What lands in `workdir`:
  * `config.json`: the config of the run; a workdir holding another config is refused.
  * `metrics.jsonl`: one JSON object per line. Training lines carry `step`, `epoch`, `train_elbo`,
    `images_per_sec`, `wall_s`; evaluation lines `step`, `epoch`, `valid_elbo`, `test_elbo` (per-example
    means in nats).
  * `checkpoints/`: orbax checkpoints of the train state, one per epoch, the last few kept.
  * `samples.png`, `reconstructions.png`.
Re-running the same command resumes from the latest checkpoint and ends bitwise equal to an
uninterrupted run.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vaex._src import checkpointing, diagnostics, evaluation, sharding, training, wake_sleep
from vaex._src import vae as vae_lib
from vaex._src.decoders import BernoulliMLPDecoder, GaussianMLPDecoder
from vaex._src.encoders import MLPEncoder

DATASETS = ("binarized_mnist", "mnist5k_grayscale")
LIKELIHOODS = ("bernoulli", "gaussian")
ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "softplus": nn.softplus, "elu": nn.elu}
SCHEDULES = ("constant", "iwae")
# Keys that may change between a run and its resumption (extend a run, move its data).
RESUMABLE_CHANGES = ("num_epochs", "data_dir", "num_devices", "data_placement")
_EVAL_STREAM, _SAMPLE_STREAM = 2, 3


class ConfigError(ValueError):
  """A config value is invalid; the message names the key and the fix."""


def default_config() -> ml_collections.ConfigDict:
  """Every key a config may set, with defaults: Adam on statically binarized MNIST, the paper's MLP."""
  c = ml_collections.ConfigDict()
  # Data.
  c.dataset = "binarized_mnist"
  c.data_dir = ml_collections.config_dict.placeholder(str)  # None: $VAEX_DATA_DIR, then tfds' default.
  c.input_transform = "binary"  # "binary" | "intensity" | "dynamic_binarization".
  c.num_train_examples = 0  # Use the first n training examples; 0 uses all.
  # Model.
  c.likelihood = "bernoulli"  # "bernoulli" | "gaussian".
  c.latent_dim = 20
  c.hidden_sizes = (500,)
  c.activation = "tanh"
  c.paper_init = False  # N(0, 0.01^2) weights and biases, as in the paper.
  c.min_variance = 1e-3  # Gaussian decoder variance floor.
  # Objective.
  c.algorithm = "aevb"  # "aevb" | "wake_sleep" (the paper's baseline; reports the ELBO).
  c.estimator = "B"  # "A" | "B" | "iwae".
  c.num_samples = 1  # L (or k for "iwae").
  c.prior_precision = 0.0  # N(0, I / precision) prior on the parameters (weight decay); 0: none.
  # Optimizer.
  c.optimizer = "adam"  # "adam" | "adagrad" | "sgd".
  c.learning_rate = 1e-3
  c.lr_schedule = "constant"  # "constant" | "iwae" (3^i epochs at lr * 10^(-i/7), i = 0..7).
  c.grad_clip_norm = ml_collections.config_dict.placeholder(float)
  c.adam_b2 = 0.999
  c.adam_eps = 1e-8
  c.adagrad_initial_accumulator = 0.1
  c.on_non_finite = "stop"  # "stop": halt at a non-finite bound/gradient; "skip": drop that update.
  c.max_consecutive_non_finite = 20  # With "skip": give up after this many non-finite steps in a row.
  # Loop.
  c.batch_size = 100
  c.num_epochs = 10
  c.steps_per_call = 0  # Updates per compiled call; 0: a whole epoch.
  c.seed = 0
  # Devices: data parallelism over a jax.sharding.Mesh (batch sharded, parameters replicated).
  c.num_devices = 0  # 0: every device of every process; 1: a mesh of one.
  c.data_placement = "device"  # "device": data set on the devices, epochs in lax.scan;
  # "host": per-step path, each process loads only its rows of every global batch.
  # Evaluation and artifacts.
  c.eval_every_epochs = 1
  c.eval_batch_size = 1000
  c.eval_iwae_samples = 5000  # k of the IWAE-k log-likelihood estimate in evaluate.py.
  c.checkpoint_every_epochs = 1
  c.keep_checkpoints = 3
  c.num_sample_images = 100
  return c


def iwae_protocol_config(num_samples: int) -> ml_collections.ConfigDict:
  """The static-MNIST benchmark protocol of Burda et al. (2015): 784-200-200-50 tanh networks, Adam
  (beta2 0.999, eps 1e-4), 3^i passes at 1e-3 * 10^(-i/7) for i = 0..7 (3,280 passes), minibatch 20,
  test log-likelihood by IWAE-5000. `num_samples` = 1 trains the VAE (estimator B), k > 1 the IWAE."""
  c = default_config()
  c.latent_dim = 50
  c.hidden_sizes = (200, 200)
  c.activation = "tanh"
  c.estimator = "B" if num_samples == 1 else "iwae"
  c.num_samples = num_samples
  c.optimizer = "adam"
  c.adam_b2 = 0.999
  c.adam_eps = 1e-4
  c.learning_rate = 1e-3
  c.lr_schedule = "iwae"
  c.num_epochs = 3280
  c.batch_size = 20
  c.eval_iwae_samples = 5000
  c.checkpoint_every_epochs = 10
  c.eval_every_epochs = 10
  return c


def _fail(key: str, message: str) -> None:
  raise ConfigError(f"config.{key}: {message}")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks every value before anything is loaded or written; raises ConfigError naming the key."""
  unknown = sorted(set(config.keys()) - set(default_config().keys()))
  if unknown:
    _fail(unknown[0], f"unknown key(s) {unknown}; the known keys are those of "
          "vaex.experiment.default_config(). Check the spelling.")

  def choice(key, allowed):
    if config[key] not in allowed:
      _fail(key, f"must be one of {tuple(allowed)}; got {config[key]!r}.")

  def positive_int(key, allow_zero=False):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
      _fail(key, f"must be an int >= {0 if allow_zero else 1}; got {value!r}.")

  def positive_float(key, allow_zero=False):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
      _fail(key, f"must be a finite number {'>= 0' if allow_zero else '> 0'}; got {value!r}.")

  choice("dataset", DATASETS)
  choice("likelihood", LIKELIHOODS)
  choice("input_transform", training.INPUT_TRANSFORMS)
  choice("activation", ACTIVATIONS)
  choice("estimator", vae_lib.ESTIMATORS)
  choice("optimizer", training.OPTIMIZERS)
  choice("lr_schedule", SCHEDULES)
  choice("on_non_finite", ("stop", "skip"))
  choice("algorithm", ("aevb", "wake_sleep"))
  choice("data_placement", ("device", "host"))
  for key in ("latent_dim", "num_samples", "batch_size", "num_epochs", "eval_every_epochs",
              "eval_batch_size", "eval_iwae_samples", "checkpoint_every_epochs", "keep_checkpoints",
              "max_consecutive_non_finite"):
    positive_int(key)
  for key in ("num_train_examples", "steps_per_call", "num_sample_images", "seed", "num_devices"):
    positive_int(key, allow_zero=True)
  for key in ("learning_rate", "min_variance", "adam_eps", "adagrad_initial_accumulator"):
    positive_float(key)
  positive_float("prior_precision", allow_zero=True)
  if config.grad_clip_norm is not None:
    positive_float("grad_clip_norm")
  if not 0 < config.adam_b2 < 1:
    _fail("adam_b2", f"must be in (0, 1); got {config.adam_b2!r}.")
  if not config.hidden_sizes or any(
      isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in config.hidden_sizes):
    _fail("hidden_sizes", f"must be a non-empty tuple of ints >= 1; got {config.hidden_sizes!r}.")
  if config.likelihood == "bernoulli" and config.input_transform == "intensity":
    _fail("input_transform", "a Bernoulli likelihood needs binary inputs: use 'binary' for binary "
          "data or 'dynamic_binarization' for intensities, or set likelihood='gaussian'.")
  if config.likelihood == "gaussian" and config.input_transform != "intensity":
    _fail("input_transform", "a Gaussian likelihood models intensities: set it to 'intensity'.")
  if config.dataset == "binarized_mnist" and config.input_transform != "binary":
    _fail("input_transform", "binarized_mnist is already binary: use 'binary'.")


def build_model(config: ml_collections.ConfigDict, data_dim: int = 784) -> vae_lib.VAE:
  """The VAE a config describes."""
  activation = ACTIVATIONS[config.activation]
  hidden = tuple(config.hidden_sizes)
  encoder = MLPEncoder(config.latent_dim, hidden, activation, config.paper_init)
  if config.likelihood == "bernoulli":
    decoder = BernoulliMLPDecoder(data_dim, hidden[::-1], activation, config.paper_init)
  else:
    decoder = GaussianMLPDecoder(
        data_dim, hidden[::-1], activation, nn.sigmoid, config.min_variance, config.paper_init
    )
  return vae_lib.VAE(encoder, decoder)


def load_datasets(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """`{"train", "valid", "test"}` host arrays `[n, 784]` (uint8 0/1, or float32 intensities)."""
  from vaex._src import data  # Opt-in: may import tensorflow-datasets.

  if config.dataset == "binarized_mnist":
    splits = {s: data.load_binarized_mnist(s, config.data_dir) for s in ("train", "valid", "test")}
  else:
    images, labels = data.load_mnist_grayscale_subset(data_dir=config.data_dir)
    train, test = data.grayscale_train_test_split(images, labels)
    splits = {"train": train, "valid": test, "test": test}
  if config.num_train_examples:
    if config.num_train_examples > len(splits["train"]):
      m = len(splits["train"])
      _fail("num_train_examples", f"is {config.num_train_examples} but the training split has only "
            f"{m} examples; use num_train_examples <= {m} (0 uses all).")
    splits["train"] = splits["train"][: config.num_train_examples]
  if config.batch_size > len(splits["train"]):
    _fail("batch_size", f"is {config.batch_size} but the training set has only "
          f"{len(splits['train'])} examples; use a batch size <= {len(splits['train'])}.")
  return splits


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> float | optax.Schedule:
  if config.lr_schedule == "constant":
    return config.learning_rate
  # Burda et al. (2015): 3^i passes at learning rate lr * 10^(-i/7), i = 0..7.
  boundaries, total = {}, 0
  for i in range(7):
    total += 3**i
    boundaries[total * steps_per_epoch] = 10 ** (-1 / 7)
  return optax.piecewise_constant_schedule(config.learning_rate, boundaries)


def build_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int):
  optimizer = training.make_optimizer(
      config.optimizer,
      make_schedule(config, steps_per_epoch),
      grad_clip_norm=config.grad_clip_norm,
      adam_b2=config.adam_b2,
      adam_eps=config.adam_eps,
      adagrad_initial_accumulator=config.adagrad_initial_accumulator,
  )
  if config.on_non_finite == "skip":
    # Optax's own guard: an update with a non-finite gradient leaves params and state unchanged.
    optimizer = optax.apply_if_finite(optimizer, config.max_consecutive_non_finite)
  return optimizer


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


# ----- the workdir -----

def _config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json())


def _write_atomically(path: str, text: str) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str, *, write: bool = True) -> None:
  """Creates `workdir`, checks it is writable, and records or compares `config.json`.

  With `write=False` (processes other than 0), only compares an existing `config.json`.
  """
  if not write:
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
      _compare_config(path, _config_dict(config), workdir)
    return
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_probe")
    _write_atomically(probe, "ok")
    os.remove(probe)
  except OSError as e:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
      raise OSError(
          e.errno, f"--workdir {workdir!r}: {e.strerror}. Free some disk space, or choose a "
          "--workdir on another disk."
      ) from e
    raise PermissionError(
        f"--workdir {workdir!r} is not writable ({e.strerror or e}). Choose a directory you can "
        "write to, e.g. --workdir=/tmp/vaex_run."
    ) from e
  path = os.path.join(workdir, "config.json")
  current = _config_dict(config)
  if os.path.exists(path):
    _compare_config(path, current, workdir)
  _write_atomically(path, json.dumps(current, indent=2, sort_keys=True) + "\n")


def _compare_config(path: str, current: dict[str, Any], workdir: str) -> None:
  with open(path) as f:
    previous = json.load(f)
  diffs = sorted(
      k for k in set(previous) | set(current)
      if k not in RESUMABLE_CHANGES and previous.get(k) != current.get(k)
  )
  if diffs:
    details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in diffs)
    raise ConfigError(
        f"--workdir {workdir!r} holds a run of a different config ({details}). Use a new "
        f"--workdir for a new experiment; only {RESUMABLE_CHANGES} may change on resume."
    )


class MetricsLog:
  """Appends JSON lines to `metrics.jsonl`; on resume, drops lines newer than the checkpoint."""

  def __init__(self, workdir: str, *, write: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = write  # Only one process of a multi-process run writes.

  def truncate_after(self, step: int) -> None:
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]
    kept = []
    for line in lines:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue  # A line cut by a crash.
      if record.get("step", 0) <= step:
        kept.append(line if line.endswith("\n") else line + "\n")
    _write_atomically(self.path, "".join(kept))

  def write(self, records: list[dict[str, Any]]) -> None:
    """Appends `records` (non-finite floats become null, keeping the file strict JSON)."""
    if not self.enabled:
      return
    try:
      with open(self.path, "a") as f:
        for record in records:
          clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                   for k, v in record.items()}
          f.write(json.dumps(clean, sort_keys=True, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:
      if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise OSError(e.errno, f"Could not append to {self.path}: {e.strerror}. Free some disk "
                      "space and re-run the same command: training resumes from the last "
                      "checkpoint.") from e
      raise

  def read(self) -> list[dict[str, Any]]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]


# ----- training -----

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
  """The per-step path: each process loads only its rows of every global batch from host memory."""
  rows = sharding.process_rows(batch_size)
  num_examples = train_data.shape[0]
  steps_per_epoch = num_examples // batch_size
  permutation = jax.jit(training.epoch_permutation, static_argnums=2)

  def run(state, num_steps):
    step = int(sharding.to_host(state.step))
    order = sharding.to_host(permutation(state.key, step // steps_per_epoch, num_examples))
    outputs = []
    for i in range(step % steps_per_epoch, step % steps_per_epoch + num_steps):
      indices = order[i * batch_size:(i + 1) * batch_size][rows]
      state, metrics = step_fn(state, sharding.put_process_batch(train_data[indices], mesh, batch_size))
      outputs.append(metrics)
    return state, jax.tree.map(lambda *xs: jnp.stack(xs), *outputs)

  return run


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes) the run `config` describes in `workdir`; returns the last evaluation.

  Every check (config values, devices, workdir, data) runs before any training starts. With several
  processes (`jax.distributed`), every process runs this function; process 0 writes the config,
  metrics and images, and orbax coordinates the checkpoints.
  """
  validate_config(config)
  workdir = os.path.abspath(workdir)
  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_divisible(config.batch_size, mesh, "config.batch_size")
  splits = load_datasets(config)
  is_writer = jax.process_index() == 0
  prepare_workdir(config, workdir, write=is_writer)

  train_data = splits["train"]
  num_train, data_dim = train_data.shape
  steps_per_epoch = num_train // config.batch_size
  total_steps = steps_per_epoch * config.num_epochs
  model = build_model(config, data_dim)
  optimizer = build_optimizer(config, steps_per_epoch)
  if config.algorithm == "wake_sleep":
    loss_fn = wake_sleep.make_wake_sleep_loss(
        model, prior_precision=config.prior_precision, num_train=num_train)
  else:
    loss_fn = training.make_loss_fn(
        model, estimator=config.estimator, num_samples=config.num_samples,
        prior_precision=config.prior_precision, num_train=num_train,
    )
  dataset_bound = evaluation.make_dataset_bound(
      model, estimator="B", num_samples=1, batch_size=_eval_batch_size(config, mesh),
      input_transform=config.input_transform, mesh=mesh,
  )

  state = training.create_train_state(jax.random.key(config.seed), model, optimizer, data_dim)
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
    compiled: dict[int, Callable] = {}

    def run(state, num_steps):
      if num_steps not in compiled:  # Compiled ahead of time, once per scan length.
        compiled[num_steps] = train_steps.lower(state, on_device["train"], num_steps).compile()
      return compiled[num_steps](state, on_device["train"])
  else:
    step_fn = training.make_train_step(loss_fn, optimizer, input_transform=config.input_transform,
                                       mesh=mesh)
    run = _host_fed_steps(step_fn, mesh, train_data, config.batch_size)

  eval_key = jax.random.fold_in(state.key, _EVAL_STREAM)
  steps_per_call = config.steps_per_call or steps_per_epoch
  progress = _Progress(total_steps, _step_of(state), enabled=is_writer)
  last_eval: dict[str, Any] = {}
  try:
    while _step_of(state) < total_steps:
      step = _step_of(state)
      epoch_end = (step // steps_per_epoch + 1) * steps_per_epoch
      num_steps = min(steps_per_call, epoch_end - step)
      start = time.perf_counter()
      state, metrics = run(state, num_steps)
      # The one host transfer of this call: the per-step training bounds. (A per-step gradient
      # norm would cost 10-16% of the step; a non-finite gradient shows up in the parameters,
      # which are checked once per call below, before anything is checkpointed.)
      bounds_per_step = sharding.to_host(metrics["bound"])
      seconds = time.perf_counter() - start
      wall_s += seconds
      new_step = _step_of(state)
      finite = np.isfinite(bounds_per_step)
      advice = ("Lower the learning rate, set config.grad_clip_norm, or set "
                "config.on_non_finite='skip' to drop such updates.")
      if not finite.all() and config.on_non_finite == "stop":
        bad = step + 1 + int(np.argmin(finite))
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
          "images_per_sec": num_steps * config.batch_size / seconds, "wall_s": wall_s,
      }]
      if not finite.all():
        records[0]["skipped_steps"] = int((~finite).sum())
        progress.log(f"skipped {int((~finite).sum())} non-finite updates before step {new_step}")
      epoch_done = new_step % steps_per_epoch == 0
      if epoch_done and (epoch % config.eval_every_epochs == 0 or new_step == total_steps):
        last_eval = {"step": new_step, "epoch": epoch,
                     **_evaluate_epoch(dataset_bound, state.params, eval_key, on_device)}
        records.append(last_eval)
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
    last_eval = {"step": _step_of(state), "epoch": _step_of(state) // steps_per_epoch,
                 **_evaluate_epoch(dataset_bound, state.params, eval_key, on_device)}
  if is_writer:
    write_images(model, state.params, state.key, splits["test"], config, workdir)
  return {**last_eval, "wall_s": wall_s, "workdir": workdir}


def _eval_batch_size(config: ml_collections.ConfigDict, mesh) -> int:
  """`config.eval_batch_size` rounded up to a multiple of the device count (a memory knob only)."""
  n = mesh.devices.size
  return -(-config.eval_batch_size // n) * n


def _step_of(state: training.TrainState) -> int:
  return int(sharding.to_host(state.step))


def restore_latest(config: ml_collections.ConfigDict, workdir: str, num_train: int, data_dim: int):
  """The model and the latest train state of the run in `workdir` (for evaluation and sampling)."""
  validate_config(config)
  steps_per_epoch = num_train // config.batch_size
  model = build_model(config, data_dim)
  optimizer = build_optimizer(config, steps_per_epoch)
  template = training.create_train_state(jax.random.key(config.seed), model, optimizer, data_dim)
  template = sharding.put_replicated(template, sharding.make_mesh(config.num_devices))
  checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    if checkpointer.latest_step() is None:
      raise checkpointing.CheckpointError(
          f"No checkpoint in {checkpointer.directory}: train first with experiments/train.py "
          f"--workdir={workdir} (and the same --config)."
      )
    state, _ = checkpointer.restore(template)
  finally:
    checkpointer.close()
  return model, state, steps_per_epoch


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, *,
                        num_test_examples: int = 0) -> dict[str, Any]:
  """Test ELBO and the IWAE-k log-likelihood estimate (k = config.eval_iwae_samples) of the latest
  checkpoint; appends them to `metrics.jsonl` and returns them.

  `num_test_examples` > 0 evaluates a fixed random subset of n test examples (the same for every
  run: a quick look at a run in progress; the record says how many were used). Not the first n:
  the static-MNIST test split is stored in blocks by class, so its first 1,000 are mostly zeros.
  0, the protocol, uses the whole test split.
  """
  validate_config(config)
  if isinstance(num_test_examples, bool) or not isinstance(num_test_examples, int) \
      or num_test_examples < 0:
    raise ValueError(f"num_test_examples must be an int >= 0 (0: the whole test split); got "
                     f"{num_test_examples!r}.")
  workdir = os.path.abspath(workdir)
  splits = load_datasets(config)
  model, state, steps_per_epoch = restore_latest(config, workdir, *splits["train"].shape)
  mesh = sharding.make_mesh(config.num_devices)
  test_split = splits["test"]
  if 0 < num_test_examples < test_split.shape[0]:
    subset = np.sort(np.random.default_rng(0).permutation(test_split.shape[0])[:num_test_examples])
    test_split = test_split[subset]
  test = sharding.put_replicated(test_split, mesh)
  key = jax.random.fold_in(state.key, _EVAL_STREAM)
  k = config.eval_iwae_samples
  num_devices = mesh.devices.size
  # About 5,000 decoder rows per chunk of samples: the logits stay in cache (1.4x faster than
  # 20,000 rows, benchmarks/throughput.py), memory is bounded, shards are even over the devices.
  iwae_batch = max(1, 5_000 // min(k, 500) // num_devices) * num_devices
  elbo_fn = evaluation.make_dataset_bound(
      model, estimator="B", num_samples=1, batch_size=_eval_batch_size(config, mesh),
      input_transform=config.input_transform, mesh=mesh)
  iwae_fn = evaluation.make_dataset_bound(
      model, estimator="log_likelihood", num_samples=k, batch_size=iwae_batch,
      chunk_size=min(k, 500), input_transform=config.input_transform, mesh=mesh)
  posterior_fn = evaluation.make_dataset_posterior(
      model, batch_size=_eval_batch_size(config, mesh), input_transform=config.input_transform,
      mesh=mesh)
  start = time.perf_counter()
  elbo, elbo_se = evaluation.mean_and_stderr(sharding.to_host(elbo_fn(state.params, key, test)))
  log_lik, log_lik_se = evaluation.mean_and_stderr(
      sharding.to_host(iwae_fn(state.params, key, test)))
  mean, log_var = posterior_fn(state.params, key, test)
  kl_dims = np.asarray(sharding.to_host(jnp.mean(diagnostics.kl_per_dimension(mean, log_var), 0)))
  activity = np.asarray(sharding.to_host(diagnostics.posterior_mean_variance(mean)))
  record = {
      "step": _step_of(state), "epoch": _step_of(state) // steps_per_epoch,
      "source": "evaluate", "test_examples": int(test_split.shape[0]),
      "test_elbo": elbo, "test_elbo_stderr": elbo_se,
      "test_iwae_k": k, "test_log_likelihood": log_lik, "test_log_likelihood_stderr": log_lik_se,
      "test_kl": float(kl_dims.sum()), "test_reconstruction": elbo + float(kl_dims.sum()),
      "kl_per_dimension": [float(v) for v in kl_dims],
      "active_units": int((activity > 0.01).sum()),
      "eval_seconds": time.perf_counter() - start,
  }
  MetricsLog(workdir, write=jax.process_index() == 0).write([record])
  return record


def write_images(model, params, key, test_data, config, workdir) -> list[str]:
  """Writes `samples.png` (decoder means of z ~ N(0, I)) and `reconstructions.png`."""
  try:
    from vaex._src import plots
  except ImportError:
    logging.warning("matplotlib is not installed; skipping samples.png.")
    return []
  n = config.num_sample_images
  if n == 0:
    return []
  # Plain host copies: drawing is local to this process whatever the mesh was.
  params = jax.tree.map(sharding.to_host, params)
  key = jax.random.fold_in(jax.random.wrap_key_data(
      sharding.to_host(jax.random.key_data(key)), impl=jax.random.key_impl(key)), _SAMPLE_STREAM)
  z = jax.random.normal(key, (n, config.latent_dim))
  means = model.apply(params, z, method=vae_lib.VAE.decoder_mean)
  rows = int(math.sqrt(n)) or 1
  samples_path = os.path.join(workdir, "samples.png")
  plots.save_image_grid(np.asarray(means), samples_path, num_rows=rows,
                        title=f"samples: decoder means of z ~ N(0, I), latent_dim={config.latent_dim}")
  count = min(max(rows // 2, 1) * rows, len(test_data) // rows * rows)
  spread = np.linspace(0, len(test_data) - 1, count).astype(int)  # Splits may be sorted by digit.
  x = training.prepare_inputs(key, jnp.asarray(test_data[spread]), config.input_transform)
  mean, _ = model.apply(params, x, method=vae_lib.VAE.encode)
  recon = model.apply(params, mean, method=vae_lib.VAE.decoder_mean)
  pairs = np.stack([np.asarray(x), np.asarray(recon)], axis=1)  # [count, 2, 784]
  cols = rows
  paired = pairs.reshape(-1, cols, 2, x.shape[1]).transpose(0, 2, 1, 3).reshape(-1, x.shape[1])
  recon_path = os.path.join(workdir, "reconstructions.png")
  plots.save_image_grid(paired, recon_path, num_rows=2 * (count // cols),
                        title="test images (odd rows), reconstructions (even rows)")
  return [samples_path, recon_path]
