"""AEVB training: the train state, the optimizer, the objective, and compiled steps and epochs.

Two paths run the same update:
  * `make_train_step`: one jitted, state-donating step on a batch the caller provides (for data that
    does not fit on the device).
  * `make_train_steps`: many steps as one compiled call. The data set stays on the device (as uint8),
    the epoch's permutation is drawn on the device from the run's key and the epoch number, and
    `lax.scan` runs the minibatches. Where a call starts inside the epoch is read from `state.step`,
    so a run resumed from any checkpoint replays exactly the same batches and keys.

Randomness: `state.key` is fixed for the run. The key of step t is `fold_in(fold_in(key, 0), t)`, the
permutation of epoch e comes from `fold_in(fold_in(key, 1), e)`. No key is reused, no host RNG.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from vaex._src import bounds, diagnostics, posteriors, sharding
from vaex._src import vae as vae_lib

INPUT_TRANSFORMS = ("binary", "intensity", "dynamic_binarization")
OPTIMIZERS = ("adam", "adagrad", "sgd")
_SAMPLE_STREAM, _DATA_STREAM = 0, 1


class TrainState(flax.struct.PyTreeNode):
  """Everything that changes during training, as one immutable pytree.

  Attributes:
    params: the model's parameters.
    opt_state: the Optax optimizer state.
    step: `int32 []`, number of updates done.
    key: the run's `jax.random.key`; per-step keys are derived from it with `fold_in`.
  """

  params: Any
  opt_state: optax.OptState
  step: jax.Array
  key: jax.Array


def make_optimizer(
    name: str,
    learning_rate: float | optax.Schedule,
    *,
    grad_clip_norm: float | None = None,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps: float = 1e-8,
    adagrad_initial_accumulator: float = 0.1,
) -> optax.GradientTransformation:
  """An Optax optimizer by name: "adam" (the practical default), "adagrad" (the paper's), "sgd".

  Args:
    name: one of `OPTIMIZERS`.
    learning_rate: a positive float or an Optax schedule.
    grad_clip_norm: clip gradients to this global norm first (None: no clipping).
    adam_b1, adam_b2, adam_eps: Adam's moment decays and epsilon (the IWAE paper uses eps=1e-4).
    adagrad_initial_accumulator: Adagrad's initial accumulator value.
  """
  if not callable(learning_rate) and not learning_rate > 0:
    raise ValueError(
        f"`learning_rate` must be > 0; got {learning_rate!r}. The paper's Adagrad used step sizes "
        "in {0.01, 0.02, 0.1}; Adam works well at 1e-3."
    )
  if name == "adam":
    opt = optax.adam(learning_rate, b1=adam_b1, b2=adam_b2, eps=adam_eps)
  elif name == "adagrad":
    opt = optax.adagrad(learning_rate, initial_accumulator_value=adagrad_initial_accumulator)
  elif name == "sgd":
    opt = optax.sgd(learning_rate)
  else:
    raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}; got {name!r}.")
  if grad_clip_norm is not None:
    if not grad_clip_norm > 0:
      raise ValueError(f"`grad_clip_norm` must be > 0 or None; got {grad_clip_norm!r}.")
    opt = optax.chain(optax.clip_by_global_norm(grad_clip_norm), opt)
  return opt


def create_train_state(
    key: jax.Array, model: vae_lib.VAE, optimizer: optax.GradientTransformation, data_dim: int
) -> TrainState:
  """Initializes parameters and optimizer state; `key` seeds both the init and the run's key."""
  init_key, run_key = jax.random.split(key)
  params = model.init(init_key, jnp.zeros((1, data_dim), jnp.float32))
  return TrainState(
      params=params, opt_state=optimizer.init(params), step=jnp.zeros((), jnp.int32), key=run_key
  )


def prepare_inputs(key: jax.Array, batch: jax.Array, input_transform: str) -> jax.Array:
  """Turns stored data into the model's float32 input, inside compiled code.

  * "binary": 0/1 data (uint8 or float) cast to float32.
  * "intensity": uint8 pixels 0..255 scaled to [0, 1] (floats are kept as they are).
  * "dynamic_binarization": each pixel drawn as Bernoulli(intensity), fresh for every use.
  """
  if input_transform == "binary":
    return batch.astype(jnp.float32)
  intensity = batch.astype(jnp.float32)
  if jnp.issubdtype(batch.dtype, jnp.integer):
    intensity = intensity / 255.0
  if input_transform == "intensity":
    return intensity
  if input_transform == "dynamic_binarization":
    return jax.random.bernoulli(key, intensity).astype(jnp.float32)
  raise ValueError(f"`input_transform` must be one of {INPUT_TRANSFORMS}; got {input_transform!r}.")


def kl_weight_at(step: jax.Array, kl_weight: float, kl_warmup_steps: int) -> jax.Array:
  """The KL weight after `step` updates: linear from 0 to `kl_weight` over `kl_warmup_steps` updates
  (Sonderby et al. 2016), then constant. A function of the step only, so a resumed run is exact."""
  if kl_warmup_steps <= 0:
    return jnp.asarray(kl_weight, jnp.float32)
  return kl_weight * jnp.minimum(1.0, step.astype(jnp.float32) / kl_warmup_steps)


def free_bits_kl(kl_per_dim: jax.Array, free_bits: float) -> jax.Array:
  """The free-bits KL of Kingma et al. (2016): sum_d max(free_bits, mean_batch KL_d).

  Args:
    kl_per_dim: `[batch, dim_z]` KL(q(z_d|x) || p(z_d)) per example and latent dimension.
    free_bits: nats per latent dimension below which the batch-averaged KL is not penalized.

  Returns:
    `[]` the clamped KL of the batch (per example): what the loss adds instead of the mean KL.
  """
  return jnp.sum(jnp.maximum(jnp.mean(kl_per_dim, axis=0), free_bits))


def make_loss_fn(
    model: vae_lib.VAE,
    *,
    estimator: str = "B",
    num_samples: int = 1,
    prior_precision: float = 0.0,
    num_train: int = 1,
    gradient_estimator: str = "reparameterization",
    kl_weight: float = 1.0,
    kl_warmup_steps: int = 0,
    free_bits: float = 0.0,
) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
  """The minibatch objective `loss(params, key, x) -> (loss, metrics)` (loss is minimized).

  The paper maximizes the full-data bound plus log p(theta) with p(theta) = N(0, I / prior_precision)
  (its weight decay). Per example, for a minibatch of M out of N, that is
  `mean_batch(bound) - prior_precision * ||theta||^2 / (2 N)`, so `loss` is its negative.

  With the KL knobs (estimators "A" and "B") the objective is `reconstruction - beta_t * KL`, where
  beta_t is `kl_weight` after a linear warm-up over `kl_warmup_steps` updates, and with `free_bits`
  > 0 (estimator "B") the KL is `free_bits_kl` of the per-dimension KLs. With estimator "iwae",
  beta_t weighs each importance weight's log p(z) - log q(z|x) (`vaex.iwae_bound`'s `kl_weight`; no
  free bits). The metric "bound" stays the ELBO (or the IWAE bound), "kl" is the mean KL estimate.
  With a warm-up the loss takes the update count, `loss(params, key, x, step)`, and carries
  `loss.takes_step = True`; the training steps then pass `state.step`.

  Args:
    model: the VAE.
    estimator: "A", "B" or "iwae" (see `vaex.bound`).
    num_samples: L (or k for "iwae").
    prior_precision: precision of the Gaussian prior on parameters; 0 turns it off.
    num_train: N, the number of training examples the prior is spread over.
    gradient_estimator: "reparameterization", "stl" (estimator "A") or "dreg" (estimator "iwae").
    kl_weight: beta of the KL term (1.0: the ELBO).
    kl_warmup_steps: updates over which beta rises linearly from 0 (0: no warm-up).
    free_bits: nats per latent dimension (0: off).
  """
  if estimator not in vae_lib.ESTIMATORS:
    raise ValueError(f"`estimator` must be one of {vae_lib.ESTIMATORS}; got {estimator!r}.")
  if prior_precision < 0:
    raise ValueError(f"`prior_precision` must be >= 0; got {prior_precision!r}.")
  if not kl_weight >= 0 or free_bits < 0 or kl_warmup_steps < 0:
    raise ValueError(
        f"`kl_weight`, `free_bits` and `kl_warmup_steps` must be >= 0; got {kl_weight!r}, "
        f"{free_bits!r}, {kl_warmup_steps!r}."
    )
  knobs = kl_weight != 1.0 or kl_warmup_steps > 0 or free_bits > 0
  if free_bits > 0 and estimator != "B":
    raise ValueError("Free bits clamp the closed-form KL of each latent dimension: use estimator 'B'.")
  weight_decay = prior_precision / (2.0 * num_train)

  def regularized(loss, params):
    if weight_decay:
      loss = loss + weight_decay * optax.tree.norm(params, squared=True)
    return loss

  def loss_fn(params, key, x):
    bound = jnp.mean(vae_lib.bound(params, key, x, model, estimator=estimator,
                                   num_samples=num_samples, gradient_estimator=gradient_estimator))
    loss = regularized(-bound, params)
    return loss, {"loss": loss, "bound": bound}

  if not knobs:
    return loss_fn

  def weighted_loss_fn(params, key, x, step=None):
    encode, decode = vae_lib.encoder_decoder(model, params)
    prior = vae_lib.prior_distribution(model, params)
    beta = kl_weight_at(jnp.zeros((), jnp.int32) if step is None else step, kl_weight,
                        kl_warmup_steps)
    if estimator == "iwae":
      terms = bounds.annealed_iwae(key, x, encode, decode, log_likelihood=model.log_likelihood,
                                   prior=prior, num_samples=num_samples,
                                   gradient_estimator=gradient_estimator, kl_weight=beta)
      loss = regularized(-jnp.mean(terms.objective), params)
      return loss, {"loss": loss, "bound": jnp.mean(terms.bound), "kl": jnp.mean(terms.kl),
                    "kl_weight": beta}
    q = encode(x)  # Encoded once; the bound reads it back.
    if free_bits and (prior is not None or not posteriors.is_diagonal_gaussian(q)):
      raise ValueError(
          "Free bits clamp the closed-form KL of each latent dimension of a diagonal Gaussian "
          "(mean, log_var) posterior against N(0, I); this model's posterior or prior has no such "
          "per-dimension KL. Set free_bits=0.")
    terms = bounds.elbo_terms(
        key, x, lambda _: q, decode, log_likelihood=model.log_likelihood, prior=prior,
        num_samples=num_samples, analytic_kl=estimator == "B", gradient_estimator=gradient_estimator)
    mean_kl = jnp.mean(terms.kl)
    penalized_kl = free_bits_kl(diagnostics.kl_per_dimension(*q), free_bits) if free_bits else mean_kl
    reconstruction = jnp.mean(terms.reconstruction)
    loss = regularized(-(reconstruction - beta * penalized_kl), params)
    return loss, {"loss": loss, "bound": reconstruction - mean_kl, "kl": mean_kl, "kl_weight": beta}

  weighted_loss_fn.takes_step = kl_warmup_steps > 0
  return weighted_loss_fn


def _update(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    input_transform: str,
    state: TrainState,
    batch: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One AEVB update on one minibatch (traced inside a step or a scan)."""
  step_key = jax.random.fold_in(jax.random.fold_in(state.key, _SAMPLE_STREAM), state.step)
  bound_key, input_key = jax.random.split(step_key)
  x = prepare_inputs(input_key, batch, input_transform)
  step_arg = (state.step,) if getattr(loss_fn, "takes_step", False) else ()
  grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, bound_key, x, *step_arg)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
  return new_state, metrics


def make_train_step(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    input_transform: str = "binary",
    mesh: jax.sharding.Mesh | None = None,
) -> Callable[[TrainState, jax.Array], tuple[TrainState, dict[str, jax.Array]]]:
  """`step(state, batch) -> (state, metrics)`, jitted with the state donated.

  `batch: [batch_size, dim_x]` stored data (uint8 or float); see `prepare_inputs`. With a `mesh`,
  the batch is sharded along its "data" axis and the state replicated (data parallelism); without
  one, jit places everything where the inputs are.
  """
  update = functools.partial(_update, loss_fn, optimizer, input_transform)
  if mesh is None:
    return jax.jit(update, donate_argnums=0)
  replicated = sharding.replicated(mesh)
  return jax.jit(
      update,
      donate_argnums=0,
      in_shardings=(replicated, sharding.batch_sharded(mesh)),
      out_shardings=(replicated, replicated),
  )


def epoch_permutation(key: jax.Array, epoch: jax.Array, num_examples: int) -> jax.Array:
  """The data order of one epoch: `int32 [num_examples]`, a function of the run key and epoch."""
  data_key = jax.random.fold_in(jax.random.fold_in(key, _DATA_STREAM), epoch)
  return jax.random.permutation(data_key, num_examples)


def make_train_steps(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    input_transform: str = "binary",
    mesh: jax.sharding.Mesh | None = None,
) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
  """`train_steps(state, data, num_steps) -> (state, metrics)`: many updates in one compiled call.

  `data: [num_examples, dim_x]` lives on the device (uint8 for images). Each epoch visits
  `num_examples // batch_size` minibatches in a fresh random order (the remainder is dropped).
  The call runs `num_steps` (static) updates starting at `state.step`; they must not cross an epoch
  boundary. `metrics` holds one value per step, `[num_steps]`. The state is donated.

  With a `mesh`, state and data are replicated on its devices and every minibatch is sharded along
  the "data" axis, so each device gathers and processes its slice; XLA all-reduces the gradients.
  """
  update = functools.partial(_update, loss_fn, optimizer, input_transform)
  constrain = lambda batch: batch  # noqa: E731
  jit_kwargs: dict[str, Any] = {}
  if mesh is not None:
    sharding.check_divisible(batch_size, mesh)
    replicated = sharding.replicated(mesh)
    batch_spec = sharding.batch_sharded(mesh)
    constrain = lambda batch: jax.lax.with_sharding_constraint(batch, batch_spec)  # noqa: E731
    jit_kwargs = dict(in_shardings=(replicated, replicated), out_shardings=(replicated, replicated))

  @functools.partial(jax.jit, donate_argnums=0, static_argnums=2, **jit_kwargs)
  def compiled_steps(state: TrainState, data: jax.Array, num_steps: int):
    steps_per_epoch = data.shape[0] // batch_size
    epoch = state.step // steps_per_epoch
    first = state.step % steps_per_epoch
    order = epoch_permutation(state.key, epoch, data.shape[0])

    def body(state, i):
      indices = jax.lax.dynamic_slice_in_dim(order, (first + i) * batch_size, batch_size)
      return update(state, constrain(jnp.take(data, constrain(indices), axis=0)))

    return jax.lax.scan(body, state, jnp.arange(num_steps))

  def train_steps(state: TrainState, data: jax.Array, num_steps: int):
    return compiled_steps(state, data, num_steps)

  # Ahead-of-time compilation: `train_steps.lower(state, data, num_steps=n).compile()`.
  train_steps.lower = lambda state, data, num_steps: compiled_steps.lower(state, data, num_steps)
  return train_steps
