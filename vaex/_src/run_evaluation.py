"""A trained run, after (or at the end of) training: its latest checkpoint restored, evaluated (test
ELBO, IWAE-k log-likelihood, KL per latent dimension), and drawn (`samples.png`, `reconstructions.png`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vaex._src import checkpointing, diagnostics, evaluation, priors, seeds, sharding, training
from vaex._src import vae as vae_lib
from vaex._src.builders import build_model, build_optimizer, load_datasets
from vaex._src.config import IMAGE_SHAPES, validate_config
from vaex._src.workdir import MetricsLog

# Streams of the run's key `state.key` (0 and 1 are the steps and the epoch orders, see training.py).
EVAL_STREAM, _SAMPLE_STREAM = 2, 3


def eval_batch_size(config: ml_collections.ConfigDict, mesh) -> int:
  """`config.eval_batch_size` rounded up to a multiple of the device count (a memory knob only)."""
  n = mesh.devices.size
  return -(-config.eval_batch_size // n) * n


# Decoder outputs per chunk of importance samples: 5,000 rows of 784 Bernoulli logits stay in cache
# (1.4x faster than 20,000 rows, benchmarks/throughput.py).
IWAE_CHUNK_OUTPUTS = 5_000 * 784


def iwae_chunking(model: vae_lib.VAE, params: Any, latent_dim: int, num_samples: int,
                  num_devices: int) -> tuple[int, int]:
  """`(images per batch, samples per chunk)` of the IWAE-k evaluation.

  A chunk decodes `batch * chunk` rows of z; their decoder outputs are kept near
  `IWAE_CHUNK_OUTPUTS` floats whatever the likelihood, so memory is bounded (a categorical decoder
  has 256 logits per pixel: 5,000 of its rows would be 4 GB), and the batch divides evenly over
  `num_devices`. For 784 Bernoulli logits and k = 5000: `(10, 500)`.
  """
  z = jax.ShapeDtypeStruct((1, latent_dim), jnp.float32)
  outputs = jax.eval_shape(
      lambda p, z: model.apply(p, z, method=vae_lib.VAE.decode), params, z)
  outputs_per_row = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(outputs))
  rows = max(1, IWAE_CHUNK_OUTPUTS // outputs_per_row)
  chunk = min(num_samples, 500, max(1, rows // num_devices))
  return max(1, rows // chunk // num_devices) * num_devices, chunk


def restore_latest(config: ml_collections.ConfigDict, workdir: str, num_train: int, data_dim: int):
  """The model and the latest train state of the run in `workdir` (for evaluation and sampling).

  With `config.num_seeds` > 1 the state holds every replica, stacked (see `vaex/_src/seeds.py`).
  """
  validate_config(config)
  steps_per_epoch = num_train // config.batch_size
  model = build_model(config, data_dim)
  optimizer = build_optimizer(config, steps_per_epoch)
  template = seeds.create_train_state(config.seed, config.num_seeds, model, optimizer, data_dim)
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
                        num_test_examples: int = 0, replica: int | None = None
                        ) -> dict[str, Any] | list[dict[str, Any]]:
  """Test ELBO and the IWAE-k log-likelihood estimate (k = config.eval_iwae_samples) of the latest
  checkpoint; appends them to `metrics.jsonl` and returns them.

  `num_test_examples` > 0 evaluates a fixed random subset of n test examples (the same for every
  run: a quick look at a run in progress; the record says how many were used). Not the first n:
  the static-MNIST test split is stored in blocks by class, so its first 1,000 are mostly zeros.
  0, the protocol, uses the whole test split.

  A run of `config.num_seeds` = S > 1 replicas gets one record per replica, each with its `seed`
  (config.seed + s), returned as a list; `replica` = s evaluates only replica s.
  """
  validate_config(config)
  if isinstance(num_test_examples, bool) or not isinstance(num_test_examples, int) \
      or num_test_examples < 0:
    raise ValueError(f"num_test_examples must be an int >= 0 (0: the whole test split); got "
                     f"{num_test_examples!r}.")
  if config.num_seeds > 1 and replica is None:
    return [evaluate_checkpoint(config, workdir, num_test_examples=num_test_examples, replica=s)
            for s in range(config.num_seeds)]
  if replica is not None and not (config.num_seeds > 1 and 0 <= replica < config.num_seeds):
    raise ValueError(f"replica must be None or in [0, config.num_seeds) = [0, {config.num_seeds}) "
                     f"for a run of num_seeds > 1; got {replica!r}.")
  workdir = os.path.abspath(workdir)
  splits = load_datasets(config)
  model, state, steps_per_epoch = restore_latest(config, workdir, *splits["train"].shape)
  seed_field = {}
  if replica is not None:  # Replica s of a stacked state, as the state of a single run.
    state, seed_field = seeds.replica_state(state, replica), {"seed": config.seed + replica}
  mesh = sharding.make_mesh(config.num_devices)
  test_split = splits["test"]
  if 0 < num_test_examples < test_split.shape[0]:
    subset = np.sort(np.random.default_rng(0).permutation(test_split.shape[0])[:num_test_examples])
    test_split = test_split[subset]
  test = sharding.put_replicated(test_split, mesh)
  key = jax.random.fold_in(state.key, EVAL_STREAM)
  k = config.eval_iwae_samples
  iwae_batch, iwae_chunk = iwae_chunking(
      model, state.params, config.latent_dim, k, mesh.devices.size)
  elbo_fn = evaluation.make_dataset_bound(
      model, estimator="elbo", num_samples=1, batch_size=eval_batch_size(config, mesh),
      input_transform=config.input_transform, mesh=mesh)
  iwae_fn = evaluation.make_dataset_bound(
      model, estimator="log_likelihood", num_samples=k, batch_size=iwae_batch,
      chunk_size=iwae_chunk, input_transform=config.input_transform, mesh=mesh)
  posterior_fn = evaluation.make_dataset_posterior(
      model, batch_size=eval_batch_size(config, mesh), input_transform=config.input_transform,
      mesh=mesh)
  start = time.perf_counter()
  elbo, elbo_se = evaluation.mean_and_stderr(sharding.to_host(elbo_fn(state.params, key, test)))
  log_lik, log_lik_se = evaluation.mean_and_stderr(
      sharding.to_host(iwae_fn(state.params, key, test)))
  mean, log_var = posterior_fn(state.params, key, test)
  activity = np.asarray(sharding.to_host(diagnostics.posterior_mean_variance(mean)))
  step = int(sharding.to_host(state.step))
  record = {
      "step": step, "epoch": step // steps_per_epoch, **seed_field,
      "source": "evaluate", "test_examples": int(test_split.shape[0]),
      "test_elbo": elbo, "test_elbo_stderr": elbo_se,
      "test_iwae_k": k, "test_log_likelihood": log_lik, "test_log_likelihood_stderr": log_lik_se,
      "active_units": int((activity > 0.01).sum()),
  }
  if log_var is not None and model.prior is None:  # KL per dimension: (mean, log_var) vs N(0, I).
    kl_dims = np.asarray(sharding.to_host(jnp.mean(diagnostics.kl_per_dimension(mean, log_var), 0)))
    record.update({"test_kl": float(kl_dims.sum()), "test_reconstruction": elbo + float(kl_dims.sum()),
                   "kl_per_dimension": [float(v) for v in kl_dims]})
  else:  # No per-dimension KL; the test ELBO used the closed-form KL where there is one.
    closed = evaluation.has_closed_form_kl(
        model, state.params, jnp.zeros((1, test_split.shape[1]), jnp.float32))
    record["test_elbo_estimator"] = "B" if closed else "A"
  record["eval_seconds"] = time.perf_counter() - start
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
  z = priors.sample_prior(key, vae_lib.prior_distribution(model, params), n, (config.latent_dim,))
  means = model.apply(params, z, method=vae_lib.VAE.decoder_mean)
  rows = int(math.sqrt(n)) or 1
  samples_path = os.path.join(workdir, "samples.png")
  image_shape = IMAGE_SHAPES[config.dataset]  # (H, W, C): grey or RGB grids of the right size.
  plots.save_image_grid(np.asarray(means), samples_path, num_rows=rows, image_shape=image_shape,
                        title=f"samples: decoder means of z ~ p(z), latent_dim={config.latent_dim}")
  count = min(max(rows // 2, 1) * rows, len(test_data) // rows * rows)
  spread = np.linspace(0, len(test_data) - 1, count).astype(int)  # Splits may be sorted by digit.
  x = training.prepare_inputs(key, jnp.asarray(test_data[spread]), config.input_transform)
  mean = diagnostics.posterior_mean(model.apply(params, x, method=vae_lib.VAE.encode), key)
  recon = model.apply(params, mean, method=vae_lib.VAE.decoder_mean)
  pairs = np.stack([np.asarray(x), np.asarray(recon)], axis=1)  # [count, 2, H * W * C]
  cols = rows
  paired = pairs.reshape(-1, cols, 2, x.shape[1]).transpose(0, 2, 1, 3).reshape(-1, x.shape[1])
  recon_path = os.path.join(workdir, "reconstructions.png")
  plots.save_image_grid(paired, recon_path, num_rows=2 * (count // cols), image_shape=image_shape,
                        title="test images (odd rows), reconstructions (even rows)")
  return [samples_path, recon_path]
