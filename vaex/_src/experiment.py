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

from vaex._src import checkpointing
from vaex._src import evaluation
from vaex._src import training
from vaex._src import vae as vae_lib
from vaex._src.decoders import BernoulliMLPDecoder, GaussianMLPDecoder
from vaex._src.encoders import MLPEncoder

DATASETS = ("binarized_mnist", "mnist5k_grayscale")
LIKELIHOODS = ("bernoulli", "gaussian")
ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "softplus": nn.softplus, "elu": nn.elu}
SCHEDULES = ("constant", "iwae")
# Keys that may change between a run and its resumption (extend a run, move its data).
RESUMABLE_CHANGES = ("num_epochs", "data_dir")
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
  # Loop.
  c.batch_size = 100
  c.num_epochs = 10
  c.steps_per_call = 0  # Updates per compiled call; 0: a whole epoch.
  c.seed = 0
  # Evaluation and artifacts.
  c.eval_every_epochs = 1
  c.eval_batch_size = 1000
  c.eval_iwae_samples = 5000  # k of the IWAE-k log-likelihood estimate in evaluate.py.
  c.checkpoint_every_epochs = 1
  c.keep_checkpoints = 3
  c.num_sample_images = 100
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
  for key in ("latent_dim", "num_samples", "batch_size", "num_epochs", "eval_every_epochs",
              "eval_batch_size", "eval_iwae_samples", "checkpoint_every_epochs", "keep_checkpoints"):
    positive_int(key)
  for key in ("num_train_examples", "steps_per_call", "num_sample_images", "seed"):
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
      _fail("num_train_examples", f"is {config.num_train_examples} but the training split has only "
            f"{len(splits['train'])} examples.")
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
  return training.make_optimizer(
      config.optimizer,
      make_schedule(config, steps_per_epoch),
      grad_clip_norm=config.grad_clip_norm,
      adam_b2=config.adam_b2,
      adam_eps=config.adam_eps,
      adagrad_initial_accumulator=config.adagrad_initial_accumulator,
  )


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


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Creates `workdir`, checks it is writable, and records or compares `config.json`."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_probe")
    _write_atomically(probe, "ok")
    os.remove(probe)
  except OSError as e:
    raise PermissionError(
        f"--workdir {workdir!r} is not writable ({e.strerror or e}). Choose a directory you can "
        "write to, e.g. --workdir=/tmp/vaex_run."
    ) from e
  path = os.path.join(workdir, "config.json")
  current = _config_dict(config)
  if os.path.exists(path):
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
  _write_atomically(path, json.dumps(current, indent=2, sort_keys=True) + "\n")


class MetricsLog:
  """Appends JSON lines to `metrics.jsonl`; on resume, drops lines newer than the checkpoint."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "metrics.jsonl")

  def truncate_after(self, step: int) -> None:
    if not os.path.exists(self.path):
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
    with open(self.path, "a") as f:
      for record in records:
        f.write(json.dumps(record, sort_keys=True) + "\n")
      f.flush()
      os.fsync(f.fileno())

  def read(self) -> list[dict[str, Any]]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]


# ----- training -----

class _Progress:
  """A tqdm bar on a terminal; plain log lines otherwise."""

  def __init__(self, total: int, initial: int):
    self.bar = None
    if sys.stderr.isatty():
      from tqdm.auto import tqdm

      self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

  def update(self, steps: int, **postfix: Any) -> None:
    if self.bar is not None:
      self.bar.update(steps)
      self.bar.set_postfix({k: f"{v:.2f}" if isinstance(v, float) else v for k, v in postfix.items()})

  def log(self, message: str) -> None:
    if self.bar is not None:
      self.bar.write(message)
    else:
      logging.info(message)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def _evaluate_epoch(dataset_bound, params, key, splits_on_device) -> dict[str, float]:
  out = {}
  for name in ("valid", "test"):
    values = dataset_bound(params, key, splits_on_device[name])
    out[f"{name}_elbo"] = float(jnp.mean(values))
  return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes) the run `config` describes in `workdir`; returns the last evaluation.

  Every check (config values, workdir, data) runs before any training starts.
  """
  validate_config(config)
  workdir = os.path.abspath(workdir)
  splits = load_datasets(config)
  prepare_workdir(config, workdir)

  train_data = splits["train"]
  num_train, data_dim = train_data.shape
  steps_per_epoch = num_train // config.batch_size
  total_steps = steps_per_epoch * config.num_epochs
  model = build_model(config, data_dim)
  optimizer = build_optimizer(config, steps_per_epoch)
  loss_fn = training.make_loss_fn(
      model, estimator=config.estimator, num_samples=config.num_samples,
      prior_precision=config.prior_precision, num_train=num_train,
  )
  train_steps = training.make_train_steps(
      loss_fn, optimizer, batch_size=config.batch_size, input_transform=config.input_transform
  )
  dataset_bound = evaluation.make_dataset_bound(
      model, estimator="B", num_samples=1, batch_size=config.eval_batch_size,
      input_transform=config.input_transform,
  )

  state = training.create_train_state(jax.random.key(config.seed), model, optimizer, data_dim)
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
  )
  metrics_log = MetricsLog(workdir)
  wall_s = 0.0
  if checkpointer.latest_step() is not None:
    state, meta = checkpointer.restore(state)
    wall_s = float(meta.get("wall_s", 0.0))
    metrics_log.truncate_after(int(state.step))
    logging.info("Resumed from step %d (epoch %d) in %s.", int(state.step),
                 int(state.step) // steps_per_epoch, workdir)
  else:
    metrics_log.truncate_after(0)

  on_device = {k: jax.device_put(v) for k, v in splits.items()}
  eval_key = jax.random.fold_in(state.key, _EVAL_STREAM)
  steps_per_call = config.steps_per_call or steps_per_epoch
  compiled: dict[int, Callable] = {}
  progress = _Progress(total_steps, int(state.step))
  last_eval: dict[str, Any] = {}
  try:
    while int(state.step) < total_steps:
      step = int(state.step)
      epoch_end = (step // steps_per_epoch + 1) * steps_per_epoch
      num_steps = min(steps_per_call, epoch_end - step)
      if num_steps not in compiled:
        compiled[num_steps] = train_steps.lower(state, on_device["train"], num_steps=num_steps).compile()
      start = time.perf_counter()
      state, metrics = compiled[num_steps](state, on_device["train"])
      bounds_per_step = np.asarray(metrics["bound"])  # The one host transfer of this call.
      seconds = time.perf_counter() - start
      wall_s += seconds
      new_step = int(state.step)
      if not np.all(np.isfinite(bounds_per_step)):
        bad = step + int(np.argmin(np.isfinite(bounds_per_step)))
        raise FloatingPointError(
            f"The training bound became non-finite at step {bad}. No checkpoint was written after "
            f"it; the last good checkpoint is step {checkpointer.latest_step()} in "
            f"{checkpointer.directory}. Lower the learning rate or set config.grad_clip_norm."
        )
      epoch = new_step // steps_per_epoch
      records = [{
          "step": new_step, "epoch": epoch, "train_elbo": float(bounds_per_step.mean()),
          "images_per_sec": num_steps * config.batch_size / seconds, "wall_s": wall_s,
      }]
      epoch_done = new_step % steps_per_epoch == 0
      if epoch_done and (epoch % config.eval_every_epochs == 0 or new_step == total_steps):
        last_eval = {"step": new_step, "epoch": epoch,
                     **_evaluate_epoch(dataset_bound, state.params, eval_key, on_device)}
        records.append(last_eval)
        progress.log(f"epoch {epoch}: train ELBO {records[0]['train_elbo']:.2f}, valid ELBO "
                     f"{last_eval['valid_elbo']:.2f}, test ELBO {last_eval['test_elbo']:.2f} nats "
                     f"({records[0]['images_per_sec']:.0f} images/s)")
      metrics_log.write(records)
      progress.update(num_steps, elbo=records[0]["train_elbo"],
                      img_s=int(records[0]["images_per_sec"]))
      if (epoch_done and epoch % config.checkpoint_every_epochs == 0) or new_step == total_steps \
          or not epoch_done:
        checkpointer.save(state, {"epoch": epoch, "wall_s": wall_s})
  finally:
    progress.close()
    checkpointer.close()

  if not last_eval:  # Resumed a finished run, or evaluation was not due: evaluate now.
    last_eval = {"step": int(state.step), "epoch": int(state.step) // steps_per_epoch,
                 **_evaluate_epoch(dataset_bound, state.params, eval_key, on_device)}
  write_images(model, state.params, state.key, splits["test"], config, workdir)
  return {**last_eval, "wall_s": wall_s, "workdir": workdir}


def restore_latest(config: ml_collections.ConfigDict, workdir: str, num_train: int, data_dim: int):
  """The model and the latest train state of the run in `workdir` (for evaluation and sampling)."""
  validate_config(config)
  steps_per_epoch = num_train // config.batch_size
  model = build_model(config, data_dim)
  optimizer = build_optimizer(config, steps_per_epoch)
  template = training.create_train_state(jax.random.key(config.seed), model, optimizer, data_dim)
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


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Test ELBO and the IWAE-k log-likelihood estimate (k = config.eval_iwae_samples) of the latest
  checkpoint; appends them to `metrics.jsonl` and returns them."""
  validate_config(config)
  workdir = os.path.abspath(workdir)
  splits = load_datasets(config)
  model, state, steps_per_epoch = restore_latest(config, workdir, *splits["train"].shape)
  test = jax.device_put(splits["test"])
  key = jax.random.fold_in(state.key, _EVAL_STREAM)
  k = config.eval_iwae_samples
  elbo_fn = evaluation.make_dataset_bound(
      model, estimator="B", num_samples=1, batch_size=config.eval_batch_size,
      input_transform=config.input_transform)
  iwae_fn = evaluation.make_dataset_bound(
      model, estimator="iwae", num_samples=k, batch_size=max(1, 20_000 // k),
      input_transform=config.input_transform)
  start = time.perf_counter()
  elbo, elbo_se = evaluation.mean_and_stderr(elbo_fn(state.params, key, test))
  log_lik, log_lik_se = evaluation.mean_and_stderr(iwae_fn(state.params, key, test))
  record = {
      "step": int(state.step), "epoch": int(state.step) // steps_per_epoch,
      "source": "evaluate", "test_elbo": elbo, "test_elbo_stderr": elbo_se,
      "test_iwae_k": k, "test_log_likelihood": log_lik, "test_log_likelihood_stderr": log_lik_se,
      "eval_seconds": time.perf_counter() - start,
  }
  MetricsLog(workdir).write([record])
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
  key = jax.random.fold_in(key, _SAMPLE_STREAM)
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
