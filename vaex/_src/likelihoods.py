"""How the bounds read p(x|z): the decoder called once on all samples, one log-likelihood per example.

`decode(z)` takes `z: [n, *event_z]` (n = L * batch: every sample of every example, sample-major)
and returns either the parameters of p(x|z), scored by `log_likelihood(x, params)`, or, with
`log_likelihood=None`, a distribution object scored by its `log_prob(x)`. The decoder is called once,
never `vmap`ped over samples, so stateful layers (NNX Dropout/BatchNorm, equinox state) work.

Data may have any rank `[batch, ...]`. A likelihood may return `[n]` or per-element values over the
leading data axes (`[n, 28, 28]` from a Bernoulli over the channel axis of `[n, 28, 28, 1]` images):
what it returns must be `x.shape[:r]` for some r >= 1, and the bounds sum the axes after the first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from vaex._src import checks

LogLikelihood = Callable[[jax.Array, Any], jax.Array]


def _is_distribution(out: Any) -> bool:
  return callable(getattr(out, "log_prob", None))


def _shapes(tree: Any) -> str:
  leaves = jax.tree_util.tree_leaves(tree)
  return ", ".join(str(tuple(getattr(leaf, "shape", ()))) for leaf in leaves[:6]) or "no arrays"


def _check_per_example(values: Any, x_flat: jax.Array, what: str) -> jax.Array:
  """`values` must be `x_flat.shape[:r]`, r >= 1; returns their sum over the axes after the first."""
  shape = tuple(getattr(values, "shape", ()))
  if not (1 <= len(shape) <= x_flat.ndim and shape == tuple(x_flat.shape[:len(shape)])):
    raise ValueError(
        f"{what} must return one value per example: shape ({x_flat.shape[0]},) for the "
        f"{x_flat.shape[0]} rows (L * batch) it scored, or per-element values of shape "
        f"x.shape[:r] (here x: {tuple(x_flat.shape)}); got {checks._describe(values)}. "  # noqa: SLF001
        "Sum over the data axes but keep the batch axis (`jnp.sum(v, axis=tuple(range(1, v.ndim)))`)."
    )
  if len(shape) == 1:
    return values
  return jnp.sum(values, axis=tuple(range(1, len(shape))))


def reconstruction_log_likelihood(
    x: jax.Array, z: jax.Array, decode: Callable[[jax.Array], Any],
    log_likelihood: LogLikelihood | None,
) -> jax.Array:
  """log p(x|z_l) for every sample: `x: [batch, ...]`, `z: [L, batch, *event]` -> `[L, batch]`."""
  num_samples, batch = z.shape[:2]
  n = num_samples * batch
  out = decode(z.reshape(n, *z.shape[2:]))
  # Sample-major rows, matching z's flattening; for L = 1 this is a free reshape.
  x_flat = jnp.broadcast_to(x[None], (num_samples, *x.shape)).reshape(n, *x.shape[1:])
  if log_likelihood is None:
    if not _is_distribution(out):
      raise TypeError(
          f"With `log_likelihood=None`, `decode(z)` must return a distribution object with "
          f"`log_prob(x)` (e.g. distrax.Independent(distrax.Bernoulli(logits=...), 1)); it returned "
          f"{checks._describe(out)}. For parameters, pass their likelihood, "  # noqa: SLF001
          "e.g. `log_likelihood=vaex.bernoulli_log_likelihood`."
      )
    batch_shape = getattr(out, "batch_shape", None)
    if batch_shape is not None and tuple(batch_shape)[:1] != (n,):
      raise ValueError(
          f"`decode(z)` was called on z of shape {(n, *z.shape[2:])} (L * batch = {num_samples} * "
          f"{batch} rows) and returned a distribution of batch shape {tuple(batch_shape)}: its "
          f"leading axis must be {n}, one row per sample and example of x ({tuple(x.shape)})."
      )
    return _check_per_example(out.log_prob(x_flat), x_flat, "`decode(z).log_prob(x)`").reshape(
        num_samples, batch
    )
  if _is_distribution(out):
    raise TypeError(
        f"`decode(z)` returned a distribution object ({type(out).__name__}) but `log_likelihood` "
        f"is {getattr(log_likelihood, '__name__', log_likelihood)!r}, which scores parameters. "
        "Pass `log_likelihood=None` to score x with the distribution's own `log_prob`."
    )
  try:
    values = log_likelihood(x_flat, out)
  except (ValueError, TypeError) as err:
    error = TypeError if isinstance(err, TypeError) else ValueError
    raise error(
        f"`log_likelihood(x, decode(z))` failed on x of shape {tuple(x_flat.shape)} (L * batch = "
        f"{num_samples} * {batch} rows; x per example: {tuple(x.shape[1:])}) and decoder output "
        f"of shapes {_shapes(out)}. The decoder must return p(x|z)'s parameters for each row of z "
        f"it is given, matching x's {tuple(x.shape[1:])} values per example. The likelihood said: "
        f"{err}"
    ) from err
  return _check_per_example(values, x_flat, "`log_likelihood(x, params)`").reshape(num_samples, batch)
