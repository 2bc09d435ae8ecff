"""What a config builds: the data splits, the VAE, the learning-rate schedule and the optimizer."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vaex._src import config as config_lib
from vaex._src import training
from vaex._src import vae as vae_lib
from vaex._src.decoders import BernoulliMLPDecoder, GaussianMLPDecoder
from vaex._src.encoders import MLPEncoder


def build_encoder(config: ml_collections.ConfigDict, data_dim: int) -> nn.Module:
  """The recognition model q(z|x) a config describes: `x: [batch, data_dim] -> q`."""
  activation = config_lib.ACTIVATIONS[config.activation]
  return MLPEncoder(config.latent_dim, tuple(config.hidden_sizes), activation, config.paper_init)


def build_decoder(config: ml_collections.ConfigDict, data_dim: int) -> nn.Module:
  """The generative model p(x|z) a config describes: `z: [batch, latent_dim] -> params of p(x|z)`."""
  activation = config_lib.ACTIVATIONS[config.activation]
  hidden = tuple(config.hidden_sizes)[::-1]
  if config.likelihood == "bernoulli":
    return BernoulliMLPDecoder(data_dim, hidden, activation, config.paper_init)
  return GaussianMLPDecoder(
      data_dim, hidden, activation, nn.sigmoid, config.min_variance, config.paper_init
  )


def build_model(config: ml_collections.ConfigDict, data_dim: int = 784) -> vae_lib.VAE:
  """The VAE a config describes."""
  return vae_lib.VAE(build_encoder(config, data_dim), build_decoder(config, data_dim))


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
      config_lib.fail(
          "num_train_examples", f"is {config.num_train_examples} but the training split has only "
          f"{m} examples; use num_train_examples <= {m} (0 uses all).")
    splits["train"] = splits["train"][: config.num_train_examples]
  if config.batch_size > len(splits["train"]):
    config_lib.fail("batch_size", f"is {config.batch_size} but the training set has only "
                    f"{len(splits['train'])} examples; use a batch size <= {len(splits['train'])}.")
  return splits


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> float | optax.Schedule:
  """The learning rate per update: `config.lr_schedule`, times a linear warm-up if one is set."""
  if config.lr_schedule == "constant":
    schedule = config.learning_rate
  elif config.lr_schedule == "cosine":
    decay_epochs = config.lr_decay_epochs or config.num_epochs
    schedule = optax.cosine_decay_schedule(
        config.learning_rate, decay_epochs * steps_per_epoch, alpha=config.lr_final_scale)
  else:
    # Burda et al. (2015): 3^i passes at learning rate lr * 10^(-i/7), i = 0..7.
    boundaries, total = {}, 0
    for i in range(7):
      total += 3**i
      boundaries[total * steps_per_epoch] = 10 ** (-1 / 7)
    schedule = optax.piecewise_constant_schedule(config.learning_rate, boundaries)
  warmup_steps = round(config.lr_warmup_epochs * steps_per_epoch)
  if not warmup_steps:
    return schedule
  base = schedule if callable(schedule) else optax.constant_schedule(schedule)
  # Update t (from 0) uses (t + 1) / warmup_steps of the rate, so the first update is not zero.
  return lambda count: base(count) * jnp.minimum(1.0, (count + 1) / warmup_steps)


def build_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int):
  optimizer = training.make_optimizer(
      config.optimizer,
      make_schedule(config, steps_per_epoch),
      grad_clip_norm=config.grad_clip_norm,
      adam_b1=config.adam_b1,
      adam_b2=config.adam_b2,
      adam_eps=config.adam_eps,
      adagrad_initial_accumulator=config.adagrad_initial_accumulator,
  )
  if config.on_non_finite == "skip":
    # Optax's own guard: an update with a non-finite gradient leaves params and state unchanged.
    optimizer = optax.apply_if_finite(optimizer, config.max_consecutive_non_finite)
  return optimizer
