"""Monte Carlo EM with Hamiltonian Monte Carlo: the second baseline of Kingma & Welling's Figure 3.

There is no recognition model. Each step takes a minibatch of training examples and
  * E-step: for every example, continues its own persistent HMC chain on the posterior
    p(z|x) ~ p(z) p_theta(x|z) of the current generative model (10 leapfrog steps by default); the
    chain's step size, also kept per example, is tuned toward a 90% acceptance rate;
  * M-step: takes 5 optimizer steps on the generative parameters theta with the acquired samples,
    minimizing `-mean log p_theta(x|z)` (log p(z) is constant in theta), plus the same Gaussian
    weight-decay prior as AEVB.
"We compared against the Monte Carlo EM (MCEM) using HMC with 10 leapfrog steps and automatically
tuned stepsize such that the acceptance rate was 90%, followed by 5 weight updates steps using the
acquired samples" (Section 5). MCEM is not an online algorithm: a chain is only moved when its
example is in the minibatch, so with 50,000 examples each chain moves rarely.

The generative network is the decoder of a `vaex.VAE`, the same module AEVB and wake-sleep train; the
state holds only the decoder's parameters (`{"params": {"decoder": ...}}`), which is all
`model.apply(params, z, method=vaex.VAE.decode)` and `vaex.encoder_decoder(model, params)[1]` need.
The whole minibatch runs at once (`vmap` over examples, `lax.scan` over HMC transitions and
M-step updates): one compiled call per step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from vaex._src import checks, densities, hmc, training
from vaex._src import vae as vae_lib


class MCEMState(flax.struct.PyTreeNode):
  """Everything MCEM changes, as one immutable pytree.

  Attributes:
    params: the decoder's parameters, `{"params": {"decoder": ...}}` (apply with `vaex.VAE.decode`).
    opt_state: the Optax optimizer state of `params`.
    positions: `float32 [num_train, dim_z]`, the current state of each training example's chain.
    step_sizes: `float32 [num_train]`, each chain's leapfrog step size.
    step: `int32 []`, number of MCEM steps (minibatches) done.
  """

  params: Any
  opt_state: optax.OptState
  positions: jax.Array
  step_sizes: jax.Array
  step: jax.Array


def _latent_dim(model: vae_lib.VAE, params: Any, data_dim: int) -> int:
  mean, _ = jax.eval_shape(
      functools.partial(model.apply, method=vae_lib.VAE.encode), params,
      jax.ShapeDtypeStruct((1, data_dim), jnp.float32))
  return int(mean.shape[-1])


def init_mcem_state(
    key: jax.Array,
    model: vae_lib.VAE,
    optimizer: optax.GradientTransformation,
    *,
    num_train: int,
    data_dim: int,
    initial_step_size: float = 0.1,
) -> MCEMState:
  """Initializes the decoder as `model.init` would for AEVB, and one chain per training example.

  Args:
    key: a `jax.random.key`; seeds the parameters and the chains' starting points.
    model: the `vaex.VAE` whose decoder is the generative model (its encoder is only used to create
      the parameters and read dim_z, then dropped).
    optimizer: the Optax optimizer of the M-step (the paper uses Adagrad, `vaex.experiment`'s
      "adagrad").
    num_train: N, the number of training examples (one chain each).
    data_dim: dim_x.
    initial_step_size: every chain's first leapfrog step size (> 0).

  Returns:
    An `MCEMState` with chains started at draws from the prior N(0, I).
  """
  checks.check_key(key)
  num_train = checks.check_positive_int(num_train, "num_train")
  data_dim = checks.check_positive_int(data_dim, "data_dim")
  if not isinstance(model, vae_lib.VAE):
    raise TypeError(
        f"`model` must be a vaex.VAE (its decoder is the generative model); got "
        f"{type(model).__name__}. Build one with vaex.VAE(encoder, decoder) or "
        "vaex.experiment.build_model(config)."
    )
  if not (isinstance(initial_step_size, (int, float)) and initial_step_size > 0):
    raise ValueError(
        f"`initial_step_size` must be a number > 0; got {initial_step_size!r}. 0.1 is a good start: "
        "each chain adapts its own step size."
    )
  x = jnp.zeros((1, data_dim), jnp.float32)
  latent_dim = _latent_dim(model, jax.eval_shape(model.init, key, x), data_dim)

  @jax.jit  # One compiled call instead of many small op-by-op ones.
  def build(key):
    init_key, chain_key = jax.random.split(key)
    params = {"params": {"decoder": model.init(init_key, x)["params"]["decoder"]}}
    return MCEMState(
        params=params,
        opt_state=optimizer.init(params),
        positions=jax.random.normal(chain_key, (num_train, latent_dim), jnp.float32),
        step_sizes=jnp.full((num_train,), initial_step_size, jnp.float32),
        step=jnp.zeros((), jnp.int32),
    )

  return build(key)


def make_mcem_step(
    model: vae_lib.VAE,
    optimizer: optax.GradientTransformation,
    *,
    num_leapfrog_steps: int = 10,
    num_hmc_steps: int = 1,
    num_gradient_steps: int = 5,
    target_acceptance: float = 0.9,
    adaptation_rate: float = 0.1,
    step_size_range: tuple[float, float] = (1e-4, 10.0),
    prior_precision: float = 0.0,
    input_transform: str = "binary",
    log_likelihood: Callable[[jax.Array, Any], jax.Array] | None = None,
) -> Callable[..., tuple[MCEMState, dict[str, jax.Array]]]:
  """`step(state, data, indices, key) -> (state, metrics)`: one jitted MCEM step, state donated.

  Arguments of `step`:

  * state: an `MCEMState` from `init_mcem_state` (it is donated: do not reuse it).
  * data: `[num_train, dim_x]` the whole training set, kept on the device (uint8 or float); row i
    owns chain i of the state.
  * indices: `int [batch]` rows of `data` in this minibatch (distinct).
  * key: a `jax.random.key` for this step, e.g. `fold_in(run_key, step)`.

  `metrics` (scalars): `log_likelihood` and `log_joint` (mean log p(x|z) and log p(x, z) at the
  new samples, before the M-step), `loss` (the first M-step's loss), `acceptance` (mean acceptance
  probability of the transitions), `step_size` (mean adapted step size of the batch).

  Step-size adaptation: after each transition, `step_size *= exp(adaptation_rate * (a - target))`
  with `a` the transition's acceptance probability, clipped to `step_size_range`. Its fixed point
  is an average acceptance of `target_acceptance`.

  Args:
    model: the `vaex.VAE` whose decoder is the generative model.
    optimizer: the Optax optimizer of the M-step (the state's optimizer state must be its own).
    num_leapfrog_steps: leapfrog steps per HMC transition (the paper: 10).
    num_hmc_steps: HMC transitions per example per step; the M-step uses every acquired sample.
    num_gradient_steps: optimizer updates per step (the paper: 5).
    target_acceptance: the acceptance rate the step sizes are tuned toward (the paper: 0.9).
    adaptation_rate: how fast log step sizes move (> 0).
    step_size_range: `(min, max)` bounds of the step sizes.
    prior_precision: precision of the N(0, I / prior_precision) prior on theta, spread over the
      N = `data.shape[0]` examples as in `vaex.experiment` (0 turns it off).
    input_transform: how stored data becomes the model's input (see `training.prepare_inputs`).
    log_likelihood: `(x, params_of_x) -> [...]`; default: the decoder's own.
  """
  if not isinstance(model, vae_lib.VAE):
    raise TypeError(f"`model` must be a vaex.VAE; got {type(model).__name__}.")
  num_leapfrog_steps = checks.check_positive_int(num_leapfrog_steps, "num_leapfrog_steps")
  num_hmc_steps = checks.check_positive_int(num_hmc_steps, "num_hmc_steps")
  num_gradient_steps = checks.check_positive_int(num_gradient_steps, "num_gradient_steps")
  if not 0 < target_acceptance < 1:
    raise ValueError(
        f"`target_acceptance` must be in (0, 1); got {target_acceptance!r}. The paper tunes toward 0.9."
    )
  if not adaptation_rate > 0:
    raise ValueError(f"`adaptation_rate` must be > 0; got {adaptation_rate!r}. Try 0.1.")
  low, high = step_size_range
  if not 0 < low <= high:
    raise ValueError(
        f"`step_size_range` must be (min, max) with 0 < min <= max; got {step_size_range!r}."
    )
  if prior_precision < 0:
    raise ValueError(f"`prior_precision` must be >= 0; got {prior_precision!r}. Use 0 for none.")
  if input_transform not in training.INPUT_TRANSFORMS:
    raise ValueError(
        f"`input_transform` must be one of {training.INPUT_TRANSFORMS}; got {input_transform!r}."
    )
  log_likelihood = log_likelihood or model.log_likelihood
  decode = functools.partial(model.apply, method=vae_lib.VAE.decode)

  def log_joint(params, x, z):
    """log p(z) + log p(x|z) of one example: `x: [dim_x], z: [dim_z] -> []`."""
    return densities.standard_normal_log_prob(z) + log_likelihood(x, decode(params, z))

  def chain(params, key, x, position, step_size):
    """`num_hmc_steps` transitions of one example's chain, adapting its step size."""
    log_prob_fn = functools.partial(log_joint, params, x)

    def transition(carry, transition_key):
      state, step_size = carry
      state, info = hmc.hmc_step(transition_key, state, log_prob_fn, step_size=step_size,
                                 num_leapfrog_steps=num_leapfrog_steps)
      accept = jnp.where(jnp.isfinite(info.acceptance_probability), info.acceptance_probability, 0.0)
      step_size = jnp.clip(step_size * jnp.exp(adaptation_rate * (accept - target_acceptance)),
                           low, high)
      return (state, step_size), (state.position, state.log_prob, accept)

    init = (hmc.hmc_init(log_prob_fn, position), step_size)
    keys = jax.random.split(key, num_hmc_steps)
    (_, step_size), (samples, log_probs, accepts) = jax.lax.scan(transition, init, keys)
    return samples[-1], step_size, samples, log_probs, accepts

  def update(state: MCEMState, data: jax.Array, indices: jax.Array, key: jax.Array):
    num_train = data.shape[0]
    weight_decay = prior_precision / (2.0 * num_train)
    hmc_key, input_key = jax.random.split(key)
    x = training.prepare_inputs(input_key, jnp.take(data, indices, axis=0), input_transform)
    chain_keys = jax.random.split(hmc_key, indices.shape[0])
    position, step_size, samples, log_probs, accepts = jax.vmap(chain, in_axes=(None, 0, 0, 0, 0))(
        state.params, chain_keys, x, state.positions[indices], state.step_sizes[indices])
    # samples: [batch, num_hmc_steps, dim_z]; the M-step treats them as data.
    samples = jax.lax.stop_gradient(samples)
    x_rep = jnp.broadcast_to(x[:, None, :], samples.shape[:2] + x.shape[-1:])

    def loss_fn(params):
      per_sample = log_likelihood(x_rep, decode(params, samples))  # [batch, num_hmc_steps]
      loss = -jnp.mean(per_sample)
      if weight_decay:
        loss = loss + weight_decay * optax.tree.norm(params, squared=True)
      return loss, jnp.mean(per_sample)

    def m_step(carry, _):
      params, opt_state = carry
      (loss, mean_ll), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), (loss, mean_ll)

    (params, opt_state), (losses, lls) = jax.lax.scan(
        m_step, (state.params, state.opt_state), None, length=num_gradient_steps)
    new_state = state.replace(
        params=params,
        opt_state=opt_state,
        positions=state.positions.at[indices].set(position),
        step_sizes=state.step_sizes.at[indices].set(step_size),
        step=state.step + 1,
    )
    metrics = {
        "log_likelihood": lls[0], "log_joint": jnp.mean(log_probs), "loss": losses[0],
        "acceptance": jnp.mean(accepts), "step_size": jnp.mean(step_size),
    }
    return new_state, metrics

  compiled = jax.jit(update, donate_argnums=0)

  def step(state: MCEMState, data: jax.Array, indices: jax.Array, key: jax.Array):
    _check_step_inputs(state, data, indices, key)
    return compiled(state, data, indices, key)

  step.lower = compiled.lower  # Ahead-of-time compilation: `step.lower(state, data, idx, key)`.
  return step


def _check_step_inputs(state: Any, data: Any, indices: Any, key: Any) -> None:
  """Static checks of `step`'s arguments (shapes and dtypes only; nothing is read from the device)."""
  if not isinstance(state, MCEMState):
    raise TypeError(
        f"`state` must be an MCEMState; got {type(state).__name__}. Create it with "
        "vaex.init_mcem_state(key, model, optimizer, num_train=..., data_dim=...)."
    )
  checks.check_rank(data, "data", 2, "[num_train, dim_x]")
  num_chains = state.positions.shape[0]
  if data.shape[0] != num_chains:
    raise ValueError(
        f"`data` must hold the whole training set, one row per chain of `state`: the state has "
        f"{num_chains} chains but got data of shape {tuple(data.shape)}. Pass the same training set "
        f"that init_mcem_state(num_train={data.shape[0]}, ...) was built for."
    )
  checks.check_array(indices, "indices")
  if indices.ndim != 1 or not jnp.issubdtype(indices.dtype, jnp.integer):
    raise ValueError(
        f"`indices` must be a 1-D integer array of rows of `data` ([batch]); got "
        f"{checks._describe(indices)}. E.g. `jnp.arange(100)` for the first 100 examples."
    )
  if indices.shape[0] == 0:
    raise ValueError("`indices` is empty; pass at least one row of `data` per step.")
  if indices.shape[0] > num_chains:
    raise ValueError(
        f"`indices` has {indices.shape[0]} entries but `data` has only {num_chains} rows; a minibatch "
        "holds distinct examples, so use a batch size <= the number of training examples."
    )
  checks.check_key(key)
