"""Gradient estimators after 2013: sticking the landing (STL) and doubly reparameterized IWAE (DReG).

Each changes the gradient of a bound, never its value; both are built from `jax.lax.stop_gradient`.
  * "reparameterization" (default): the gradient of Kingma & Welling (2013) and Burda et al. (2015).
  * "stl" (Roeder et al. 2017, "Sticking the landing"), for the ELBO with estimator A: log q(z|x) is
    evaluated with q's parameters stopped while z keeps its path derivative. The dropped term, the
    score function of q, has expectation zero, so the gradient stays unbiased; when q is the exact
    posterior the encoder's gradient is exactly zero for every sample.
  * "dreg" (Tucker et al. 2019), for the IWAE bound: the encoder's gradient is
    sum_i w~_i^2 d log w_i / dz_i dz_i / dphi with w~ the normalized importance weights and log q's
    parameters stopped; the decoder's (and a learnable prior's) gradient is exactly the IWAE gradient
    sum_i w~_i d log w_i / dtheta. With k = 1 it is STL.

How DReG is built here, with the decoder called on full batches only (so stateful NNX/equinox decoders
work): a forward-only decoder call on the stopped samples gives w~; the samples are then passed through
`z' = sg(z) + w~ (z - sg(z))` (value z, path derivative scaled by w~) to a second call, and the
surrogate `sum_i sg(w~_i) log w_i(z')` has the gradient above. Its value is replaced by the bound's.
"""

from __future__ import annotations

from typing import Any

import jax

from vaex._src import checks, posteriors

GRADIENT_ESTIMATORS = ("reparameterization", "stl", "dreg")


def check_gradient_estimator(name: Any, *, bound: str, analytic_kl: bool = False) -> str:
  """Returns `name` if it applies to `bound` ("elbo" or "iwae"), else a ValueError naming the fix."""
  if name not in GRADIENT_ESTIMATORS:
    raise ValueError(
        f"`gradient_estimator` must be one of {GRADIENT_ESTIMATORS}; got {name!r}."
    )
  if name == "stl" and bound == "elbo" and analytic_kl:
    raise ValueError(
        "`gradient_estimator='stl'` drops the score term of log q(z|x) from estimator A; estimator B "
        "(`analytic_kl=True`) has no such term to drop (its KL is in closed form). Use "
        "`analytic_kl=False` with 'stl', or the default 'reparameterization'."
    )
  if name == "stl" and bound == "iwae":
    raise ValueError(
        "`gradient_estimator='stl'` is biased for the IWAE bound with k > 1 (Tucker et al. 2019): "
        "use `gradient_estimator='dreg'`, which reduces to STL for k = 1."
    )
  if name == "dreg" and bound == "elbo":
    raise ValueError(
        "`gradient_estimator='dreg'` is the doubly reparameterized gradient of the IWAE bound; for "
        "the ELBO use `gradient_estimator='stl'` with `analytic_kl=False` (what DReG reduces to with "
        "one sample), or `vaex.iwae_bound(..., gradient_estimator='dreg')`."
    )
  return name


def path_log_prob(q: posteriors.Posterior, z: jax.Array) -> jax.Array:
  """log q(z|x) at `z: [L, batch, *event]` -> `[L, batch]`, differentiable only along z's path.

  The value is log q(z|x); the gradient drops the score term d log q / d(q's parameters) at fixed z.
  For `(mean, log_var)` the parameters are stopped. For a distribution object the score term is
  subtracted instead, `log q(z) - log q(sg(z)) + sg(log q(sg(z)))`, which needs nothing but
  `log_prob`: rebuilding a distrax distribution from stopped leaves is not enough, since some keep
  bound methods of their original bijectors (`distrax.MultivariateNormalDiag` leaks the scale's
  gradient that way).
  """
  if posteriors.is_diagonal_gaussian(q):
    return posteriors.posterior_log_prob(tuple(jax.lax.stop_gradient(p) for p in q), z)
  stopped_z = jax.lax.stop_gradient(z)
  score_term = posteriors.posterior_log_prob(q, stopped_z)
  return (posteriors.posterior_log_prob(q, z) - score_term) + jax.lax.stop_gradient(score_term)


def scale_path_gradient(z: jax.Array, scale: jax.Array) -> jax.Array:
  """`z` in value; its gradient multiplied by `scale: [L, batch]` (broadcast over z's event axes)."""
  scale = jax.lax.stop_gradient(scale).reshape(*scale.shape, *([1] * (z.ndim - scale.ndim)))
  stopped = jax.lax.stop_gradient(z)
  return stopped + scale * (z - stopped)


def with_value_of(value: jax.Array, surrogate: jax.Array) -> jax.Array:
  """`value` in value, `surrogate`'s gradient: sg(value) + surrogate - sg(surrogate)."""
  checks.check_same_shape(value, "value", surrogate, "surrogate")
  return jax.lax.stop_gradient(value) + (surrogate - jax.lax.stop_gradient(surrogate))


def normalized_weights(log_w: jax.Array) -> jax.Array:
  """Self-normalized importance weights over the sample axis, stopped: `[L, batch] -> [L, batch]`."""
  return jax.lax.stop_gradient(jax.nn.softmax(log_w, axis=0))
