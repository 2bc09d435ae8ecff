"""The config of an experiment: every key with its default, the IWAE benchmark protocol, and checks.

`validate_config` runs before anything is loaded or written and raises `ConfigError` naming the key.
"""

from __future__ import annotations

import math

import flax.linen as nn
import ml_collections

from vaex._src import estimators, training
from vaex._src import vae as vae_lib

# Data sets (vaex.data): statically binarized MNIST (files); grayscale MNIST, 5,000 images (file);
# Frey Face (file, 1,600 train / 365 test); MNIST, Fashion-MNIST, CIFAR-10 (tensorflow-datasets).
DATASETS = ("binarized_mnist", "mnist5k_grayscale", "frey_face", "mnist", "fashion_mnist", "cifar10")
# The image shape `(height, width, channels)` of each data set. The training pipeline keeps examples
# flat, `[n, height * width * channels]`; image-shaped models and plots reshape with this.
IMAGE_SHAPES = {"binarized_mnist": (28, 28, 1), "mnist5k_grayscale": (28, 28, 1),
                "frey_face": (28, 20, 1), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1),
                "cifar10": (32, 32, 3)}
# p(x|z): "bernoulli" (binary data), "gaussian" (intensities), and the pixel likelihoods of 8-bit
# intensities in [0, 1]: "categorical" (256-way softmax per pixel), "discretized_logistic" (256 bins),
# "continuous_bernoulli" (a density on [0, 1]).
LIKELIHOODS = ("bernoulli", "gaussian", "categorical", "discretized_logistic", "continuous_bernoulli")
ARCHITECTURES = ("mlp", "conv")
ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "softplus": nn.softplus, "elu": nn.elu}
SCHEDULES = ("constant", "iwae", "cosine")
# Keys that may change between a run and its resumption (extend a run, move its data).
RESUMABLE_CHANGES = ("num_epochs", "data_dir", "num_devices", "data_placement")


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
  # "bernoulli" | "gaussian" | "categorical" | "discretized_logistic" | "continuous_bernoulli".
  c.likelihood = "bernoulli"
  # "mlp": the MLPs of hidden_sizes; "conv": vaex.ConvEncoder / ConvDecoder on the data set's
  # IMAGE_SHAPES, with conv_features (hidden_sizes is then not used; paper_init must be False).
  c.architecture = "mlp"
  c.conv_features = (32, 64)  # Encoder's stride-2 conv channels; the decoder uses them reversed.
  c.latent_dim = 20
  c.hidden_sizes = (500,)
  c.activation = "tanh"
  c.paper_init = False  # N(0, 0.01^2) weights and biases, as in the paper.
  c.min_variance = 1e-3  # Gaussian decoder variance floor.
  # q(z|x): "diagonal" (mean, log_var; the fast path) | "full_covariance" (N(mean, L L^T)) | "flow"
  # (a diagonal Gaussian through `num_flows` RealNVP affine couplings).
  c.posterior = "diagonal"
  c.num_flows = 4  # Coupling steps of the "flow" posterior (ignored otherwise).
  # p(z): "standard_normal" (N(0, I); the fast path) | "mixture" (learnable mixture of
  # `num_components` diagonal Gaussians) | "vamp" (VampPrior, `num_components` pseudo-inputs).
  c.prior = "standard_normal"
  c.num_components = 10  # Components of the "mixture" / "vamp" prior (ignored otherwise).
  # Objective.
  c.algorithm = "aevb"  # "aevb" | "wake_sleep" (the paper's baseline; reports the ELBO).
  c.estimator = "B"  # "A" | "B" | "iwae".
  c.num_samples = 1  # L (or k for "iwae").
  c.prior_precision = 0.0  # N(0, I / precision) prior on the parameters (weight decay); 0: none.
  # "reparameterization" | "stl" (estimator "A", Roeder et al. 2017) | "dreg" ("iwae", Tucker et al.).
  c.gradient_estimator = "reparameterization"
  # beta of the KL term (Higgins et al. 2017; with "iwae": of each weight's log p(z) - log q(z|x)).
  c.kl_weight = 1.0  # 1.0: the ELBO (the IWAE bound).
  c.kl_warmup_epochs = 0  # KL weight rises linearly from 0 over this many epochs (Sonderby et al.).
  c.free_bits = 0.0  # Nats per latent dimension the batch-mean KL is clamped at (estimator "B").
  # Optimizer.
  c.optimizer = "adam"  # "adam" | "adagrad" | "sgd".
  c.learning_rate = 1e-3
  c.lr_schedule = "constant"  # "constant" | "iwae" (3^i epochs at lr * 10^(-i/7), i = 0..7)
  # | "cosine" (from lr down to lr * lr_final_scale at epoch lr_decay_epochs, then flat).
  c.lr_warmup_epochs = 0.0  # Linear warm-up from 0 over this many epochs (any schedule); 0: none.
  c.lr_decay_epochs = 0  # Horizon of the "cosine" decay; 0: num_epochs (then fixed at the first run).
  c.lr_final_scale = 0.0  # "cosine": the final learning rate as a fraction of learning_rate.
  c.adam_b1 = 0.9
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
  # Independent replicas (init, data order, noise) trained as one compiled program, replica s with
  # seed + s: jax.vmap over the train state in the epoch scan (vaex/_src/seeds.py). Metrics lines
  # and evaluations get a `seed` field, one checkpoint holds all replicas, images show replica 0.
  # Needs data_placement="device". On 2 CPU cores it is slower than sequential runs (0.72x,
  # BUILD_NOTES); the point is filling a GPU/TPU. Not changeable on resume.
  c.num_seeds = 1
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


def fail(key: str, message: str) -> None:
  """Raises `ConfigError` for `config.<key>`: `message` says what was wrong and the fix."""
  raise ConfigError(f"config.{key}: {message}")


def _validate_num_seeds(config: ml_collections.ConfigDict) -> None:
  """The combinations many seeds in one program (`num_seeds` > 1) does not support."""
  if config.num_seeds == 1:
    return
  if config.data_placement != "device":
    fail("num_seeds", f"= {config.num_seeds} vmaps the on-device epoch function over the replicas; "
         f"data_placement={config.data_placement!r} feeds one step at a time from the host. Set "
         "data_placement='device', or train the seeds as separate runs (num_seeds=1, seed=s).")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks every value before anything is loaded or written; raises ConfigError naming the key."""
  unknown = sorted(set(config.keys()) - set(default_config().keys()))
  if unknown:
    fail(unknown[0], f"unknown key(s) {unknown}; the known keys are those of "
         "vaex.experiment.default_config(). Check the spelling.")

  def choice(key, allowed):
    if config[key] not in allowed:
      fail(key, f"must be one of {tuple(allowed)}; got {config[key]!r}.")

  def positive_int(key, allow_zero=False):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
      fail(key, f"must be an int >= {0 if allow_zero else 1}; got {value!r}.")

  def positive_float(key, allow_zero=False):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
      fail(key, f"must be a finite number {'>= 0' if allow_zero else '> 0'}; got {value!r}.")

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
  positive_int("num_seeds")
  _validate_num_seeds(config)
  for key in ("learning_rate", "min_variance", "adam_eps", "adagrad_initial_accumulator"):
    positive_float(key)
  positive_float("prior_precision", allow_zero=True)
  positive_float("lr_warmup_epochs", allow_zero=True)
  positive_int("lr_decay_epochs", allow_zero=True)
  if not 0 <= config.lr_final_scale <= 1:
    fail("lr_final_scale", f"must be in [0, 1]; got {config.lr_final_scale!r}.")
  if not 0 <= config.adam_b1 < 1:
    fail("adam_b1", f"must be in [0, 1); got {config.adam_b1!r}.")
  if config.grad_clip_norm is not None:
    positive_float("grad_clip_norm")
  if not 0 < config.adam_b2 < 1:
    fail("adam_b2", f"must be in (0, 1); got {config.adam_b2!r}.")
  if not config.hidden_sizes or any(
      isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in config.hidden_sizes):
    fail("hidden_sizes", f"must be a non-empty tuple of ints >= 1; got {config.hidden_sizes!r}.")
  choice("gradient_estimator", estimators.GRADIENT_ESTIMATORS)
  positive_float("kl_weight", allow_zero=True)
  positive_float("free_bits", allow_zero=True)
  positive_int("kl_warmup_epochs", allow_zero=True)
  _validate_objective(config)
  _validate_latent_model(config)
  if config.likelihood == "bernoulli" and config.input_transform == "intensity":
    fail("input_transform", "a Bernoulli likelihood needs binary inputs: use 'binary' for binary "
         "data or 'dynamic_binarization' for intensities, or set likelihood='gaussian'.")
  if config.likelihood == "gaussian" and config.input_transform != "intensity":
    fail("input_transform", "a Gaussian likelihood models intensities: set it to 'intensity'.")
  _validate_data(config)
  _validate_networks(config)


def _validate_data(config: ml_collections.ConfigDict) -> None:
  """The data set against the input transform and the likelihood."""
  if config.dataset not in DATASETS:
    fail("dataset", f"must be one of {DATASETS}; got {config.dataset!r}.")
  if config.dataset == "binarized_mnist" and config.input_transform != "binary":
    fail("input_transform", "binarized_mnist is already binary: use 'binary'.")
  if config.dataset != "binarized_mnist" and config.input_transform == "binary":
    fail("input_transform", f"{config.dataset} holds grey values (intensities in [0, 1]), not "
         "0/1 data: use 'dynamic_binarization' with likelihood='bernoulli', or 'intensity' with "
         "likelihood='gaussian'.")


POSTERIORS = ("diagonal", "full_covariance", "flow")
PRIORS = ("standard_normal", "mixture", "vamp")


def _validate_latent_model(config: ml_collections.ConfigDict) -> None:
  """The posterior and prior against the objective, the algorithm and the architecture.

  Keys a stored config lacks (runs from before these keys existed) read as their defaults."""
  posterior = config.get("posterior", "diagonal")
  prior = config.get("prior", "standard_normal")
  if posterior not in POSTERIORS:
    fail("posterior", f"must be one of {POSTERIORS}; got {posterior!r}.")
  if prior not in PRIORS:
    fail("prior", f"must be one of {PRIORS}; got {prior!r}.")
  for key in ("num_flows", "num_components"):
    value = config.get(key, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "num_flows" else 1):
      fail(key, f"must be an int >= {0 if key == 'num_flows' else 1}; got {value!r}.")
  default = posterior == "diagonal" and prior == "standard_normal"
  closed_form = posterior in ("diagonal", "full_covariance") and prior == "standard_normal"
  if not closed_form and config.estimator == "B":
    fail("estimator", f"estimator 'B' needs KL(q(z|x) || p(z)) in closed form, which vaex has only "
         f"for posterior 'diagonal' or 'full_covariance' with prior='standard_normal' (got "
         f"posterior={posterior!r}, prior={prior!r}): set estimator='A' or 'iwae'.")
  if not default and config.free_bits:
    fail("free_bits", "free bits clamp the KL of each latent dimension of a diagonal posterior "
         "against N(0, I): leave free_bits=0.0 here, or use posterior='diagonal' and "
         "prior='standard_normal'.")
  if not default and config.algorithm == "wake_sleep":
    fail("posterior" if posterior != "diagonal" else "prior",
         "the wake-sleep baseline is implemented for the diagonal posterior and the N(0, I) prior "
         "only: leave posterior='diagonal' and prior='standard_normal', or use algorithm='aevb'.")
  if posterior != "diagonal" and config.get("architecture", "mlp") == "conv":
    fail("posterior", f"{posterior!r} has an MLP encoder only; architecture='conv' takes "
         "posterior='diagonal'. Use architecture='mlp' for this posterior.")
  if prior == "vamp" and posterior != "diagonal":
    fail("prior", "the VampPrior mixes the encoder's diagonal Gaussians q(z|u_k): set "
         "posterior='diagonal', or use prior='mixture' with this posterior.")


def _validate_objective(config: ml_collections.ConfigDict) -> None:
  """The gradient estimator and the KL knobs against the estimator and the algorithm."""
  if config.gradient_estimator == "stl" and config.estimator != "A":
    fail("gradient_estimator", "'stl' drops the score term of log q(z|x) in estimator A: set "
         "estimator='A' (estimator B has no such term; for the IWAE bound use 'dreg').")
  if config.gradient_estimator == "dreg" and config.estimator != "iwae":
    fail("gradient_estimator", "'dreg' is the doubly reparameterized gradient of the IWAE bound: set "
         "estimator='iwae' (for the ELBO use 'stl' with estimator='A').")
  knobs = [key for key, off in (("kl_weight", 1.0), ("kl_warmup_epochs", 0), ("free_bits", 0.0))
           if config[key] != off]
  if config.free_bits and config.estimator != "B":
    fail("free_bits", "free bits clamp the closed-form KL of each latent dimension: set "
         "estimator='B'.")
  changed = knobs + (["gradient_estimator"] if config.gradient_estimator != "reparameterization"
                     else [])
  if changed and config.algorithm != "aevb":
    fail(changed[0], f"applies to AEVB training; algorithm={config.algorithm!r} has its own "
         "objective. Leave it at its default.")


def _validate_networks(config: ml_collections.ConfigDict) -> None:
  """The architecture and the likelihood against the data set, the input transform and the algorithm.

  Keys a stored config lacks (runs from before these keys existed) read as their defaults."""
  architecture = config.get("architecture", "mlp")
  features = config.get("conv_features", (32, 64))
  if architecture not in ARCHITECTURES:
    fail("architecture", f"must be one of {ARCHITECTURES}; got {architecture!r}.")
  if not features or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in features):
    fail("conv_features", f"must be a non-empty tuple of ints >= 1 (channels of the stride-2 "
         f"convolutions); got {features!r}.")
  if architecture == "conv" and config.dataset not in IMAGE_SHAPES:
    fail("architecture", f"'conv' needs the image shape of the data, and data set "
         f"{config.dataset!r} has none in IMAGE_SHAPES: use architecture='mlp'.")
  if architecture == "conv" and config.paper_init:
    fail("paper_init", "the paper's N(0, 0.01^2) initialization is for its MLPs: set "
         "paper_init=False with architecture='conv'.")
  likelihood = config.likelihood
  binary = config.input_transform in ("binary", "dynamic_binarization")
  if likelihood in ("categorical", "discretized_logistic") and binary:
    fail("likelihood", f"{likelihood!r} models 8-bit intensities (256 levels in [0, 1]), but "
         f"input_transform={config.input_transform!r} gives 0/1 data: use likelihood='bernoulli' "
         "for binary data, or input_transform='intensity' on a data set of grey values.")
  # On 0/1 data the continuous Bernoulli's density is unbounded (log p(1 | l) grows like log l as
  # l -> inf), so its "ELBO" can rise without limit and is no log-likelihood of binary data.
  if likelihood == "continuous_bernoulli" and binary:
    fail("likelihood", f"'continuous_bernoulli' is a density on [0, 1]; on 0/1 data "
         f"(input_transform={config.input_transform!r}) it is unbounded and its bound not a "
         "log-likelihood: use likelihood='bernoulli' for binary data, or input_transform='intensity'.")
  if config.algorithm == "wake_sleep" and (architecture != "mlp"
                                           or likelihood not in ("bernoulli", "gaussian")):
    fail("algorithm", "the wake-sleep baseline samples x from the Bernoulli or Gaussian MLP decoder "
         f"only (got architecture={architecture!r}, likelihood={likelihood!r}): use "
         "algorithm='aevb', or architecture='mlp' with likelihood 'bernoulli' or 'gaussian'.")
