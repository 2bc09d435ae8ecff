"""Hamiltonian Monte Carlo on one `[dim_z]` position, written with `jax.lax` loops.

Hamiltonian (hybrid) Monte Carlo (Duane et al. 1987; Neal 2011, "MCMC using Hamiltonian dynamics")
with an identity mass matrix: each transition draws a momentum p ~ N(0, I), integrates Hamilton's
equations for H(z, p) = -log pi(z) + |p|^2 / 2 with `num_leapfrog_steps` leapfrog steps of size
`step_size`, and accepts the end point with probability min(1, exp(-Delta H)). The leapfrog map is
reversible and volume-preserving, so the chain leaves pi invariant for any step size; the step size
only sets how often proposals are accepted.

`hmc_sample` tunes the step size during warmup with a Robbins-Monro rule on the log step size,
    log eps_{t+1} = log eps_t + 10 * (alpha_t - target) / (t + 10)^0.75,
where alpha_t is the acceptance probability of warmup transition t: a decreasing gain, so the
iterates settle at the step size whose mean acceptance is the target. It then freezes the step size
at the geometric mean of the iterates over the second half of warmup, so the sampling phase is a
proper, time-homogeneous Markov chain. (Hoffman & Gelman's dual averaging, tried first, settled at
a step size whose acceptance was well above the target, e.g. 0.93 for 0.8 on a correlated 3-D
Gaussian: its iterates keep fluctuating widely and acceptance is a steep function of the step.)

Each transition scales the step size by 1 + U(-step_size_jitter, step_size_jitter) (default 0.5;
Neal 2011, section 4.2), which breaks the periodicity of a fixed trajectory length (see `hmc_step`).

Everything is a pure function of arrays: no Python loop per step, so `hmc_step` and `hmc_sample`
can be jitted and `jax.vmap`-ed over chains or datapoints (each with its own step size).
The AEVB paper (Kingma & Welling 2013, Appendix D) uses HMC to sample the posterior p(z|x) for its
marginal-likelihood estimator (`vaex.hmc_log_likelihood`) and inside the MCEM baseline.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from vaex._src import checks

LogProbFn = Callable[[jax.Array], jax.Array]

# The Robbins-Monro gain of warmup transition t is _RM_SCALE / (t + _RM_OFFSET)^_RM_DECAY: large at
# first (a step size off by 100x is found in ~100 transitions), then decreasing (sum of gains diverges,
# sum of squares converges: the classic conditions for convergence to the root).
_RM_SCALE = 10.0
_RM_OFFSET = 10.0
_RM_DECAY = 0.75


class HMCState(NamedTuple):
  """The state of one chain: where it is, with the log-density and its gradient cached there.

  Attributes:
    position: `[dim_z]` the current point z.
    log_prob: `[]` log pi(z) (unnormalized).
    grad_log_prob: `[dim_z]` the gradient of log pi at z.
  """

  position: jax.Array
  log_prob: jax.Array
  grad_log_prob: jax.Array


class HMCInfo(NamedTuple):
  """What one transition did.

  Attributes:
    acceptance_probability: `[]` float, min(1, exp(-Delta H)); 0 if the trajectory went non-finite.
    is_accepted: `[]` bool, whether the chain moved to the proposal.
  """

  acceptance_probability: jax.Array
  is_accepted: jax.Array


class HMCResult(NamedTuple):
  """The output of `hmc_sample`.

  Attributes:
    samples: `[num_samples, dim_z]` the positions after each sampling transition.
    step_size: `[]` the step size used for sampling (tuned during warmup).
    acceptance_rate: `[]` mean acceptance probability over the sampling phase.
  """

  samples: jax.Array
  step_size: jax.Array
  acceptance_rate: jax.Array


def _value_and_grad(log_prob_fn: LogProbFn, position: jax.Array) -> tuple[jax.Array, jax.Array]:
  log_prob, grad = jax.value_and_grad(log_prob_fn)(position)
  return log_prob.astype(position.dtype), grad.astype(position.dtype)


def _check_position(position: Any, name: str) -> None:
  checks.check_floating(position, name)
  if position.ndim != 1:
    raise ValueError(
        f"`{name}` must be one chain's position with layout [dim_z]; got "
        f"{checks._describe(position)}. For several chains or datapoints, `jax.vmap` over the "  # noqa: SLF001
        "leading axis."
    )


def check_step_size(step_size: Any, name: str = "step_size") -> None:
  """Checks a concrete step size on the host; a traced one (under jit/vmap) is the caller's job."""
  if isinstance(step_size, bool):
    raise TypeError(f"`{name}` must be a positive float; got {step_size!r}. Pass e.g. `{name}=0.1`.")
  if isinstance(step_size, numbers.Real):
    value = float(step_size)
  elif isinstance(step_size, jax.core.Tracer):
    return
  elif hasattr(step_size, "shape") and getattr(step_size, "shape", None) == ():
    value = float(step_size)
  else:
    raise TypeError(
        f"`{name}` must be a positive scalar; got {checks._describe(step_size)}. "  # noqa: SLF001
        f"Pass one float per chain (vmap over chains for per-chain step sizes)."
    )
  if not math.isfinite(value) or value <= 0:
    raise ValueError(
        f"`{name}` must be a finite number > 0; got {value!r}. Pass a small positive step, e.g. "
        f"`{name}=0.1` (the warmup of `hmc_sample` tunes it from there)."
    )


def check_num_warmup(value: Any) -> int:
  """Returns `num_warmup` as an int, or raises unless it is a static Python int >= 0."""
  return checks.check_int(value, "num_warmup", minimum=0, example=500,
                          fix="Pass 0 to skip the warmup.")


def check_target_acceptance(target_acceptance: Any) -> None:
  if isinstance(target_acceptance, jax.core.Tracer):
    return
  if isinstance(target_acceptance, bool) or not (
      isinstance(target_acceptance, numbers.Real) or getattr(target_acceptance, "shape", None) == ()
  ):
    raise TypeError(
        f"`target_acceptance` must be a float in (0, 1); got {target_acceptance!r}. "
        "Pass e.g. `target_acceptance=0.9`."
    )
  if not 0.0 < float(target_acceptance) < 1.0:
    raise ValueError(
        f"`target_acceptance` must lie strictly between 0 and 1; got {target_acceptance!r}. "
        "Pass a probability such as 0.65 (Neal's optimum for large dim_z) or 0.9 (fewer "
        "divergent trajectories)."
    )


def hmc_init(log_prob_fn: LogProbFn, position: jax.Array) -> HMCState:
  """The state of a chain at `position`: evaluates log pi and its gradient once.

  Args:
    log_prob_fn: `z: [dim_z] -> []` unnormalized log-density, differentiable by `jax.grad`.
    position: `[dim_z]` floating starting point.

  Returns:
    An `HMCState`.
  """
  _check_position(position, "position")
  out_shape = jax.eval_shape(log_prob_fn, position)
  if getattr(out_shape, "shape", None) != ():
    raise ValueError(
        "`log_prob_fn` must map a [dim_z] position to a scalar log-density; it returned "
        f"{out_shape}. Sum over the event axis (and call it on one position, not a batch)."
    )
  log_prob, grad = _value_and_grad(log_prob_fn, position)
  return HMCState(position, log_prob, grad)


def _leapfrog(
    log_prob_fn: LogProbFn,
    state: HMCState,
    momentum: jax.Array,
    step_size: jax.Array,
    num_leapfrog_steps: int,
) -> tuple[HMCState, jax.Array]:
  """`num_leapfrog_steps` velocity-Verlet steps from (state.position, momentum): `(state', p')`.

  Each step is a half kick, a drift and a half kick, reusing the cached gradient, so L steps cost
  L gradient evaluations.
  """

  def one_step(_, carry):
    position, momentum, _, grad = carry
    momentum = momentum + 0.5 * step_size * grad
    position = position + step_size * momentum
    log_prob, grad = _value_and_grad(log_prob_fn, position)
    momentum = momentum + 0.5 * step_size * grad
    return position, momentum, log_prob, grad

  position, momentum, log_prob, grad = jax.lax.fori_loop(
      0, num_leapfrog_steps, one_step,
      (state.position, momentum, state.log_prob, state.grad_log_prob),
  )
  return HMCState(position, log_prob, grad), momentum


def _check_jitter(step_size_jitter: Any) -> float:
  if isinstance(step_size_jitter, bool) or not isinstance(step_size_jitter, numbers.Real):
    raise TypeError(
        f"`step_size_jitter` must be a Python float in [0, 1); got {step_size_jitter!r}. "
        "Pass e.g. `step_size_jitter=0.5`, or 0 for a fixed step size."
    )
  if not 0.0 <= float(step_size_jitter) < 1.0:
    raise ValueError(
        f"`step_size_jitter` must lie in [0, 1) (the step is scaled by 1 + U(-jitter, jitter)); got "
        f"{step_size_jitter!r}. Pass e.g. 0.5, or 0 for a fixed step size."
    )
  return float(step_size_jitter)


def _transition(
    key: jax.Array,
    state: HMCState,
    log_prob_fn: LogProbFn,
    step_size: jax.Array,
    num_leapfrog_steps: int,
    step_size_jitter: float,
) -> tuple[HMCState, HMCInfo]:
  """One HMC transition without boundary checks (the body of every loop here)."""
  dtype = state.position.dtype
  jitter_key, momentum_key, accept_key = jax.random.split(key, 3)
  step_size = jnp.asarray(step_size, dtype)
  if step_size_jitter:
    step_size = step_size * (
        1.0 + step_size_jitter * jax.random.uniform(jitter_key, (), dtype, -1.0, 1.0)
    )
  momentum = jax.random.normal(momentum_key, state.position.shape, dtype)
  proposal, new_momentum = _leapfrog(log_prob_fn, state, momentum, step_size, num_leapfrog_steps)
  # log of exp(-H(new)) / exp(-H(old)); a non-finite trajectory is never accepted.
  log_ratio = (proposal.log_prob - 0.5 * jnp.sum(jnp.square(new_momentum))) - (
      state.log_prob - 0.5 * jnp.sum(jnp.square(momentum))
  )
  log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
  acceptance_probability = jnp.exp(jnp.minimum(log_ratio, 0.0))
  is_accepted = jax.random.uniform(accept_key, (), dtype) < acceptance_probability
  new_state = jax.tree_util.tree_map(
      lambda new, old: jnp.where(is_accepted, new, old), proposal, state
  )
  return new_state, HMCInfo(acceptance_probability, is_accepted)


def hmc_step(
    key: jax.Array,
    state: HMCState,
    log_prob_fn: LogProbFn,
    *,
    step_size: float | jax.Array,
    num_leapfrog_steps: int = 10,
    step_size_jitter: float = 0.5,
) -> tuple[HMCState, HMCInfo]:
  """One HMC transition: fresh momentum, leapfrog trajectory, Metropolis accept/reject.

  Leaves pi(z) ∝ exp(log_prob_fn(z)) invariant for any positive step size. A trajectory that
  reaches NaN/inf has acceptance probability 0, so the chain stays where it was.

  The step size is scaled by 1 + U(-step_size_jitter, step_size_jitter), drawn afresh each
  transition (Neal 2011, section 4.2): independent of the state, so invariance is kept, and it
  breaks the periodicity of a fixed trajectory length. Without it a Gaussian direction whose
  period is close to `num_leapfrog_steps * step_size` is hardly explored (a lag-1 autocorrelation of
  0.98 was seen on a 3-D Gaussian posterior; 0.02 with the default jitter).

  Args:
    key: a `jax.random.key`.
    state: the chain's `HMCState` (from `hmc_init` or a previous step).
    log_prob_fn: `z: [dim_z] -> []` unnormalized log-density (the one `state` was made with).
    step_size: leapfrog step size > 0; a Python float or a traced `[]` scalar (e.g. one per
      datapoint under `jax.vmap`).
    num_leapfrog_steps: leapfrog steps per transition (static int >= 1).
    step_size_jitter: Python float in [0, 1); 0 gives a fixed step size.

  Returns:
    `(new_state, info)` with `info.acceptance_probability: []` and `info.is_accepted: [] bool`.
  """
  checks.check_key(key)
  _check_position(state.position, "state.position")
  check_step_size(step_size)
  num_leapfrog_steps = checks.check_positive_int(num_leapfrog_steps, "num_leapfrog_steps")
  step_size_jitter = _check_jitter(step_size_jitter)
  return _transition(key, state, log_prob_fn, step_size, num_leapfrog_steps, step_size_jitter)


def hmc_sample(
    key: jax.Array,
    log_prob_fn: LogProbFn,
    initial_position: jax.Array,
    *,
    num_samples: int,
    num_warmup: int,
    num_leapfrog_steps: int = 10,
    step_size: float | jax.Array = 0.1,
    target_acceptance: float | jax.Array = 0.9,
    step_size_jitter: float = 0.5,
) -> HMCResult:
  """Runs one HMC chain: `num_warmup` tuning transitions, then `num_samples` kept ones.

  Warmup adapts the step size with a Robbins-Monro rule on its logarithm (see the module docstring)
  so that the mean acceptance probability approaches `target_acceptance`; warmup draws are
  discarded. Sampling then uses the step size frozen at the geometric mean of the second half of
  warmup, so the kept draws come from a fixed Markov kernel that leaves pi invariant. With
  `num_warmup=0` the given `step_size` is used as is. Every transition (warmup and sampling) jitters
  the step size as `hmc_step` does. Consecutive draws are autocorrelated: estimate standard errors
  with several chains (`jax.vmap` over keys).

  Args:
    key: a `jax.random.key`.
    log_prob_fn: `z: [dim_z] -> []` unnormalized log-density, differentiable by `jax.grad`.
    initial_position: `[dim_z]` floating starting point.
    num_samples: kept transitions (static int >= 1).
    num_warmup: step-size tuning transitions before them (static int >= 0).
    num_leapfrog_steps: leapfrog steps per transition (static int >= 1).
    step_size: initial leapfrog step size > 0 (a float, or a traced `[]` scalar under vmap).
    target_acceptance: desired mean acceptance probability, in (0, 1).
    step_size_jitter: Python float in [0, 1): each transition scales the step size by
      1 + U(-step_size_jitter, step_size_jitter); 0 gives a fixed step size.

  Returns:
    An `HMCResult`: `samples: [num_samples, dim_z]`, `step_size: []` (the frozen, un-jittered
    step), `acceptance_rate: []`.
  """
  checks.check_key(key)
  _check_position(initial_position, "initial_position")
  num_samples = checks.check_positive_int(num_samples, "num_samples")
  num_warmup = check_num_warmup(num_warmup)
  num_leapfrog_steps = checks.check_positive_int(num_leapfrog_steps, "num_leapfrog_steps")
  check_step_size(step_size)
  check_target_acceptance(target_acceptance)
  step_size_jitter = _check_jitter(step_size_jitter)

  dtype = initial_position.dtype
  state = hmc_init(log_prob_fn, initial_position)
  log_step_size = jnp.log(jnp.asarray(step_size, dtype))
  target = jnp.asarray(target_acceptance, dtype)
  half = num_warmup // 2

  def transition(step_key, state, step_size):
    return _transition(
        step_key, state, log_prob_fn, step_size, num_leapfrog_steps, step_size_jitter
    )

  # Warmup and sampling run in one scan, so the transition (and the user's log-density inside it) is
  # compiled once: warmup transitions t < num_warmup use and adapt log_step_size; later ones use
  # the frozen average.
  def step(carry, inputs):
    state, log_step_size, log_step_size_avg = carry
    step_key, t = inputs
    warming_up = t < num_warmup
    step_size = jnp.exp(jnp.where(warming_up, log_step_size, log_step_size_avg))
    state, info = transition(step_key, state, step_size)
    t_float = t.astype(dtype)
    gain = _RM_SCALE / (t_float + _RM_OFFSET) ** _RM_DECAY
    adapted = log_step_size + gain * (info.acceptance_probability - target)
    log_step_size = jnp.where(warming_up, adapted, log_step_size)
    # Running mean of the iterates from warmup transition `half` on (weight 0 before and after).
    weight = jnp.where(warming_up & (t >= half), 1.0 / (t_float - half + 1.0), 0.0).astype(dtype)
    log_step_size_avg = (1.0 - weight) * log_step_size_avg + weight * log_step_size
    return (state, log_step_size, log_step_size_avg), (state.position, info.acceptance_probability)

  num_steps = num_warmup + num_samples
  (_, _, log_step_size_avg), (positions, acceptance) = jax.lax.scan(
      step,
      (state, log_step_size, log_step_size),
      (jax.random.split(key, num_steps), jnp.arange(num_steps, dtype=jnp.int32)),
  )
  final_step_size = jnp.exp(log_step_size_avg)
  samples, acceptance = positions[num_warmup:], acceptance[num_warmup:]
  return HMCResult(samples, final_step_size, jnp.mean(acceptance))
