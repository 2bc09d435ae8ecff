"""Boundary checks: run at trace time on static shapes/dtypes, or once on the host for values.

Every error names the argument, says what was received and what to do instead. Nothing here runs
per step inside compiled code: shape and dtype checks see only static information, and value
checks (`check_binary`, `check_finite`) are meant to run once per data set on the host.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _describe(x: Any) -> str:
  shape = getattr(x, "shape", None)
  dtype = getattr(x, "dtype", None)
  if shape is None:
    return f"{type(x).__name__} {x!r}"
  return f"array of shape {tuple(shape)} and dtype {dtype}"


def check_array(x: Any, name: str) -> None:
  """Raises TypeError unless `x` has a shape and a dtype (a jax or numpy array, or a tracer)."""
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    raise TypeError(
        f"`{name}` must be an array; got {_describe(x)}. Pass a jax.numpy or numpy array."
    )


def check_floating(x: Any, name: str) -> None:
  """Raises TypeError unless `x` is a floating-point array."""
  check_array(x, name)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(
        f"`{name}` must have a floating dtype; got {_describe(x)}. Convert it first, e.g. "
        f"`{name}.astype(jnp.float32)` (uint8 pixel data: divide by 255 for intensities, or cast "
        "0/1 binary data directly)."
    )


def check_rank(x: Any, name: str, rank: int, layout: str) -> None:
  """Raises ValueError unless `x.ndim == rank`; `layout` names the axes, e.g. '[batch, dim_x]'."""
  check_array(x, name)
  if x.ndim != rank:
    hint = ""
    if rank == 2 and x.ndim > 2:
      hint = f" Flatten the event axes first: `{name}.reshape({name}.shape[0], -1)`."
    elif rank == 2 and x.ndim == 1:
      hint = f" Add a batch axis for a single example: `{name}[None]`."
    raise ValueError(
        f"`{name}` must have rank {rank} with layout {layout}; got {_describe(x)}.{hint}"
    )


def check_same_shape(a: Any, a_name: str, b: Any, b_name: str) -> None:
  """Raises ValueError unless the two arrays have the same shape."""
  check_array(a, a_name)
  check_array(b, b_name)
  if tuple(a.shape) != tuple(b.shape):
    raise ValueError(
        f"`{a_name}` and `{b_name}` must have the same shape; got {tuple(a.shape)} and "
        f"{tuple(b.shape)}. They are combined elementwise: pass one value of each per dimension "
        f"(e.g. both halves of one encoder head, `jnp.split(h, 2, axis=-1)`), or broadcast a "
        f"shared one first with `jnp.broadcast_to({b_name.split()[0]}, {a_name.split()[0]}.shape)`."
    )


def check_values_shape(
    values: Any, name: str, shape: tuple[int, ...], what: str, hint: str = ""
) -> None:
  """Raises ValueError unless `values` (what a user callable returned) has exactly `shape`.

  `what` says what the shape means (e.g. "one value per sample and example"); `hint` ends the message.
  """
  if tuple(getattr(values, "shape", ())) != tuple(shape) or not hasattr(values, "dtype"):
    raise ValueError(
        f"`{name}` must return {what}, shape {tuple(shape)}; got {_describe(values)}.{hint}"
    )


def check_event_size(x: Any, x_name: str, params: Any, params_name: str) -> None:
  """Raises ValueError unless the last axes of `x` and of `params` agree."""
  if x.shape[-1:] != params.shape[-1:]:
    raise ValueError(
        f"The event (last) axis of `{x_name}` and `{params_name}` must agree; got "
        f"{x_name}: {tuple(x.shape)} and {params_name}: {tuple(params.shape)}. Make the decoder "
        f"output {x.shape[-1] if x.ndim else '?'} values per example (one per data dimension)."
    )


def check_int(value: Any, name: str, *, minimum: int, example: int, fix: str) -> int:
  """Returns `value` as an int, or raises TypeError/ValueError unless it is an integer >= `minimum`.

  The value fixes a shape or a loop length, so it must be a static Python int, not a traced array.
  `example` goes into the TypeError's suggestion (`name=example`); `fix` ends the ValueError.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(
        f"`{name}` must be a Python int >= {minimum} (it fixes array shapes or loop lengths, so it "
        f"cannot be traced); got {_describe(value)}. Pass a literal or a static value, "
        f"e.g. `{name}={example}`."
    )
  if value < minimum:
    raise ValueError(f"`{name}` must be >= {minimum}; got {value}. {fix}")
  return int(value)


def check_positive_int(value: Any, name: str) -> int:
  """Returns `value` as an int, or raises TypeError/ValueError unless it is an integer >= 1."""
  return check_int(value, name, minimum=1, example=5, fix="Use at least one sample.")


def check_key(key: Any, name: str = "key") -> None:
  """Raises TypeError unless `key` is a single jax.random key (typed, or a legacy uint32[2])."""
  dtype = getattr(key, "dtype", None)
  shape = getattr(key, "shape", None)
  if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
    if shape != ():
      raise TypeError(
          f"`{name}` must be a single PRNG key; got a key array of shape {tuple(shape)}. "
          f"Pass one key, or `jax.vmap` over the keys."
      )
    return
  if dtype is not None and dtype == jnp.uint32 and tuple(shape) == (2,):
    return  # A legacy raw key from jax.random.PRNGKey.
  raise TypeError(
      f"`{name}` must be a jax.random key; got {_describe(key)}. Create one with "
      f"`jax.random.key(seed)` and split it with `jax.random.split`."
  )


def check_binary(x: Any, name: str = "x") -> None:
  """Host-side check that data fed to a Bernoulli likelihood holds only 0s and 1s.

  Run it once per data set, outside compiled code: it reads the values.

  Args:
    x: array of any shape and numeric dtype.
    name: what to call the array in the error message.

  Raises:
    ValueError: if `x` holds NaN/inf or a value other than 0 and 1; the message gives the first
      offending index and value.
  """
  arr = np.asarray(x)
  check_finite(arr, name)
  bad = (arr != 0) & (arr != 1)
  if bad.any():
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(
        f"`{name}` must hold only 0 and 1 for a Bernoulli likelihood; found {arr[index]!r} at "
        f"index {index} ({int(bad.sum())} such values). Binarize it first (e.g. "
        f"`(x > 0.5)` or sample `jax.random.bernoulli(key, x)`), or use a Gaussian likelihood "
        "(`vaex.gaussian_log_likelihood`) for continuous data."
    )


def check_finite(x: Any, name: str = "x") -> None:
  """Host-side check that an array holds no NaN or inf; the message gives the first bad index."""
  arr = np.asarray(x)
  if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating):
    bad = ~np.isfinite(arr)
    if bad.any():
      index = tuple(int(i) for i in np.argwhere(bad)[0])
      raise ValueError(
          f"`{name}` must be finite; found {arr[index]!r} at index {index} "
          f"({int(bad.sum())} non-finite values). Clean or drop those examples before training."
      )
