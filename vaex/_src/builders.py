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
from vaex._src.conv_networks import ConvDecoder, ConvEncoder
from vaex._src.decoders import (
    BernoulliMLPDecoder,
    CategoricalMLPDecoder,
    ContinuousBernoulliMLPDecoder,
    DiscretizedLogisticMLPDecoder,
    GaussianMLPDecoder,
)
from vaex._src.encoders import FlowMLPEncoder, FullCovarianceMLPEncoder, MLPEncoder
from vaex._src.prior_models import MixturePrior, VampPrior


def image_shape(config: ml_collections.ConfigDict, data_dim: int) -> tuple[int, int, int]:
  """`(H, W, C)` of the config's data set, checked against the flat rows' `data_dim` = H * W * C."""
  shape = tuple(config_lib.IMAGE_SHAPES[config.dataset])
  if shape[0] * shape[1] * shape[2] != data_dim:
    raise ValueError(
        f"config.dataset {config.dataset!r} has image shape {shape} ({shape[0] * shape[1] * shape[2]} "
        f"values) in IMAGE_SHAPES, but its rows have data_dim={data_dim} values: fix IMAGE_SHAPES "
        "or the data."
    )
  return shape


def build_encoder(config: ml_collections.ConfigDict, data_dim: int) -> nn.Module:
  """The recognition model q(z|x) a config describes: `x: [batch, data_dim] -> q`."""
  activation = config_lib.ACTIVATIONS[config.activation]
  if config.get("architecture", "mlp") == "conv":
    return ConvEncoder(config.latent_dim, tuple(config.conv_features), activation=activation,
                       image_shape=image_shape(config, data_dim))
  posterior = config.get("posterior", "diagonal")
  if posterior == "full_covariance":
    return FullCovarianceMLPEncoder(config.latent_dim, tuple(config.hidden_sizes), activation,
                                    config.paper_init)
  if posterior == "flow":
    return FlowMLPEncoder(config.latent_dim, tuple(config.hidden_sizes), activation,
                          config.paper_init, num_flows=config.num_flows)
  return MLPEncoder(config.latent_dim, tuple(config.hidden_sizes), activation, config.paper_init)


def build_decoder(config: ml_collections.ConfigDict, data_dim: int) -> nn.Module:
  """The generative model p(x|z) a config describes: `z: [batch, latent_dim] -> params of p(x|z)`."""
  activation = config_lib.ACTIVATIONS[config.activation]
  hidden = tuple(config.hidden_sizes)[::-1]
  if config.get("architecture", "mlp") == "conv":
    return ConvDecoder(image_shape(config, data_dim), config.likelihood,
                       tuple(config.conv_features)[::-1], activation=activation, flatten=True,
                       min_variance=config.min_variance)
  if config.likelihood == "bernoulli":
    return BernoulliMLPDecoder(data_dim, hidden, activation, config.paper_init)
  pixel_decoders = {"categorical": CategoricalMLPDecoder,
                    "discretized_logistic": DiscretizedLogisticMLPDecoder,
                    "continuous_bernoulli": ContinuousBernoulliMLPDecoder}
  if config.likelihood in pixel_decoders:
    return pixel_decoders[config.likelihood](data_dim, hidden, activation,
                                             paper_init=config.paper_init)
  return GaussianMLPDecoder(
      data_dim, hidden, activation, nn.sigmoid, config.min_variance, config.paper_init
  )


def build_prior(config: ml_collections.ConfigDict, data_dim: int) -> nn.Module | None:
  """The prior p(z) a config describes: None for N(0, I), else a module (see `vaex.VAE.prior`)."""
  prior = config.get("prior", "standard_normal")
  if prior == "mixture":
    return MixturePrior(config.latent_dim, config.num_components)
  if prior == "vamp":
    return VampPrior(config.num_components, data_dim)
  return None


def build_model(config: ml_collections.ConfigDict, data_dim: int = 784) -> vae_lib.VAE:
  """The VAE a config describes."""
  return vae_lib.VAE(build_encoder(config, data_dim), build_decoder(config, data_dim),
                     build_prior(config, data_dim))


def load_datasets(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """`{"train", "valid", "test"}` host arrays `[n, height * width * channels]` of the config's data
  set (uint8 0/1 for binarized_mnist, float32 intensities in [0, 1] otherwise; IMAGE_SHAPES).

  Splits: binarized_mnist has its own valid split (50k / 10k / 10k). The others have no validation
  split and use the test split as `valid` (nothing selects models on it): mnist5k_grayscale 4,500 /
  500 (`grayscale_train_test_split`), frey_face 1,600 / 365 (`frey_face_train_test_split`, seed 0),
  and the tensorflow-datasets sets their own train / test splits: mnist and fashion_mnist 60,000 /
  10,000, cifar10 50,000 / 10,000.
  """
  from vaex._src import data  # Opt-in: may import tensorflow-datasets.

  if config.dataset == "binarized_mnist":
    splits = {s: data.load_binarized_mnist(s, config.data_dir) for s in ("train", "valid", "test")}
  else:
    if config.dataset == "mnist5k_grayscale":
      images, labels = data.load_mnist_grayscale_subset(data_dir=config.data_dir)
      train, test = data.grayscale_train_test_split(images, labels)
    elif config.dataset == "frey_face":
      train, test = data.frey_face_train_test_split(data.load_frey_face(config.data_dir))
    else:
      train, test = (data.load_tfds_images(config.dataset, s, config.data_dir)
                     for s in ("train", "test"))
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
