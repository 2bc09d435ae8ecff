"""KL(q(z|x) || p(z)) in closed form, for estimator B: the fast path, or the KL distrax registers.

  * `(mean, log_var)` against N(0, I): `vaex.gaussian_kl` (Kingma & Welling 2013, Appendix B).
  * Otherwise the pair's `kl_divergence` (distrax registers closed forms for Gaussians, Normal,
    Independent and more). A `(mean, log_var)` posterior is read as a
    `distrax.MultivariateNormalDiag` and `prior=None` as N(0, I) of the posterior's family.
  * No closed form (a flow, a mixture prior, a user object without `kl_divergence`): a ValueError that
    says so and names the fix, estimator A (`analytic_kl=False`). Never a silent Monte Carlo fallback.

distrax is never imported here: a closed form for objects is only looked up when distrax is already
loaded (the objects came from it).
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import jax.numpy as jnp

from vaex._src import checks, densities, posteriors, priors
from vaex._src.priors import Prior


def _no_closed_form(q: Any, prior: Any, reason: str) -> ValueError:
  q_name = type(q).__name__
  if posteriors.is_diagonal_gaussian(q):
    q_name = "a diagonal Gaussian (mean, log_var)"
  p_name = "N(0, I)" if prior is None else type(prior).__name__
  return ValueError(
      f"`analytic_kl=True` (estimator B) needs KL(q(z|x) || p(z)) in closed form, and there is none "
      f"for q = {q_name} and p = {p_name}: {reason} Use `analytic_kl=False` (estimator A, a Monte "
      "Carlo estimate of the KL with the same samples), or the IWAE bound."
  )


def _standard_normals(distrax: Any, shape: tuple[int, ...], event_ndims: int, dtype: Any) -> list[Any]:
  """N(0, I) of `shape = batch + event` in the distrax families that have registered KLs."""
  zeros = jnp.zeros(shape, dtype)
  candidates = [distrax.Independent(distrax.Normal(zeros, jnp.ones_like(zeros)), event_ndims)]
  if event_ndims == 1:
    candidates.insert(0, distrax.MultivariateNormalDiag(zeros))
  return candidates


def analytic_kl(q: posteriors.Posterior, prior: Prior) -> jax.Array:
  """KL(q || p) per example, `[batch]`, in closed form; see the module docstring."""
  if posteriors.is_diagonal_gaussian(q) and prior is None:
    return densities.gaussian_kl(*q)
  if prior is None and callable(getattr(q, "kl_to_standard_normal", None)):
    return q.kl_to_standard_normal()  # vaex.FullCovarianceGaussian's closed form.
  event = q[0].shape[1:] if posteriors.is_diagonal_gaussian(q) else getattr(q, "event_shape", None)
  if prior is not None and event is not None:
    priors.check_event_shape(prior, tuple(event))
  distrax = sys.modules.get("distrax")
  q_dist = q
  if posteriors.is_diagonal_gaussian(q):
    if distrax is None:
      raise _no_closed_form(q, prior, "the prior is not a distrax distribution.")
    mean, log_var = q
    q_dist = distrax.MultivariateNormalDiag(mean, jnp.exp(0.5 * log_var))
  if not callable(getattr(q_dist, "kl_divergence", None)):
    raise _no_closed_form(q, prior, "the posterior object has no `kl_divergence` method.")
  if prior is None:
    if distrax is None:
      raise _no_closed_form(q, prior, "the posterior is not a distrax distribution.")
    dtype = getattr(q_dist, "dtype", jnp.float32)
    shape = (*tuple(q_dist.batch_shape), *tuple(q_dist.event_shape))
    candidates = _standard_normals(distrax, shape, len(q_dist.event_shape), dtype)
  else:
    candidates = [prior]
  for p in candidates:
    try:
      kl = q_dist.kl_divergence(p)
    except NotImplementedError:
      continue
    expected = tuple(q_dist.batch_shape) if hasattr(q_dist, "batch_shape") else None
    if expected is not None and tuple(getattr(kl, "shape", ())) != expected:
      raise ValueError(
          f"KL(q || p) returned {checks._describe(kl)}, not one value per example "  # noqa: SLF001
          f"{expected}: the prior's event shape must equal the posterior's "
          f"{tuple(q_dist.event_shape)}."
      )
    return kl
  raise _no_closed_form(q, prior, "no KL is registered for the pair (flows and mixtures have none).")
