"""Per-example quantities over a whole data set in compiled calls (no Python loop per batch)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vaex._src import diagnostics, marginal_likelihood, posteriors, sharding, training
from vaex._src import vae as vae_lib

DATASET_ESTIMATORS = (*vae_lib.ESTIMATORS, "elbo", "log_likelihood")


def _map_batches(per_batch: Callable, batch_size: int, mesh: jax.sharding.Mesh | None):
  """`fn(params, key, data) -> per-example outputs [n, ...]`, running `per_batch(params, key_b, x_b)`
  over `batch_size` chunks with `lax.map` (last chunk padded, padding dropped), one compiled call.
  With a `mesh`, each chunk is sharded over the devices along the "data" axis."""
  constrain = lambda batch: batch  # noqa: E731
  jit_kwargs: dict[str, Any] = {}
  if mesh is not None:
    sharding.check_divisible(batch_size, mesh, "eval batch_size")
    batch_spec = sharding.batch_sharded(mesh)
    constrain = lambda batch: jax.lax.with_sharding_constraint(batch, batch_spec)  # noqa: E731
    jit_kwargs = dict(out_shardings=sharding.replicated(mesh))

  @functools.partial(jax.jit, **jit_kwargs)
  def run(params: Any, key: jax.Array, data: jax.Array):
    n = data.shape[0]
    if n == 0:
      raise ValueError("The data set to evaluate is empty (0 examples); check the split.")
    num_batches = -(-n // batch_size)
    padding = ((0, num_batches * batch_size - n),) + ((0, 0),) * (data.ndim - 1)
    batches = jnp.pad(data, padding).reshape(num_batches, batch_size, *data.shape[1:])

    def one_batch(args):
      b, batch = args
      out = per_batch(params, jax.random.fold_in(key, b), constrain(batch))
      return jax.tree.map(constrain, out)

    outputs = jax.lax.map(one_batch, (jnp.arange(num_batches), batches))
    return jax.tree.map(lambda o: o.reshape(-1, *o.shape[2:])[:n], outputs)

  return run


def make_dataset_bound(
    model: vae_lib.VAE,
    *,
    estimator: str = "B",
    num_samples: int = 1,
    batch_size: int = 500,
    input_transform: str = "binary",
    chunk_size: int = 500,
    mesh: jax.sharding.Mesh | None = None,
) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
  """`dataset_bound(params, key, data) -> [num_examples]`, a bound of every example.

  `estimator` is "A", "B", "iwae" (see `vaex.bound`), or "log_likelihood": the importance-sampled
  log p(x) of `vaex.importance_sampled_log_likelihood` with k = `num_samples`, in chunks of
  `chunk_size` samples (bounded memory for k = 5000). Batch b uses the key `fold_in(key, b)`.

  "elbo" is the test ELBO of any model: estimator "B" where the KL has a closed form (a diagonal or
  full-covariance Gaussian posterior against N(0, I); see `has_closed_form_kl`), estimator "A" (the
  same ELBO in expectation, with Monte Carlo noise) for the others (a flow posterior, a mixture or
  VampPrior prior). "B" itself never switches: it raises where there is no closed form.
  """
  if estimator not in DATASET_ESTIMATORS:
    raise ValueError(f"`estimator` must be one of {DATASET_ESTIMATORS}; got {estimator!r}.")

  def per_batch(params, key, batch):
    input_key, bound_key = jax.random.split(key)
    x = training.prepare_inputs(input_key, batch, input_transform)
    if estimator == "log_likelihood":
      encode, decode = vae_lib.encoder_decoder(model, params)
      return marginal_likelihood.importance_sampled_log_likelihood(
          bound_key, x, encode, decode, log_likelihood=model.log_likelihood,
          prior=vae_lib.prior_distribution(model, params), num_samples=num_samples,
          chunk_size=chunk_size)
    name = estimator
    if estimator == "elbo":
      name = "B" if has_closed_form_kl(model, params, x) else "A"
    return vae_lib.bound(params, bound_key, x, model, estimator=name, num_samples=num_samples)

  return _map_batches(per_batch, batch_size, mesh)


def has_closed_form_kl(model: vae_lib.VAE, params: Any, x: jax.Array) -> bool:
  """Whether estimator "B" applies: p(z) is N(0, I) and q(z|x) is `(mean, log_var)` or has
  `kl_to_standard_normal` (`vaex.FullCovarianceGaussian`). Decided at trace time."""
  if model.prior is not None:
    return False
  q = jax.eval_shape(lambda p, x: model.apply(p, x, method=vae_lib.VAE.encode), params, x)
  return posteriors.is_diagonal_gaussian(q) or callable(getattr(q, "kl_to_standard_normal", None))


def make_dataset_posterior(
    model: vae_lib.VAE,
    *,
    batch_size: int = 500,
    input_transform: str = "binary",
    mesh: jax.sharding.Mesh | None = None,
    num_mean_samples: int = 100,
) -> Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, jax.Array | None]]:
  """`posterior(params, key, data) -> (mean, log_var)`, each `[num_examples, dim_z]`: q(z|x).

  For a posterior object, `(E_q[z|x], None)`: `mean()` where it has one, otherwise the average of
  `num_mean_samples` draws (`vaex.diagnostics.posterior_mean`)."""

  def per_batch(params, key, batch):
    x = training.prepare_inputs(key, batch, input_transform)
    q = model.apply(params, x, method=vae_lib.VAE.encode)
    if posteriors.is_diagonal_gaussian(q):
      return tuple(q)
    return diagnostics.posterior_mean(q, jax.random.fold_in(key, 1), num_mean_samples), None

  return _map_batches(per_batch, batch_size, mesh)


def mean_and_stderr(values: jax.Array | np.ndarray) -> tuple[float, float]:
  """Mean of per-example values and its standard error, in float64 on the host."""
  values = np.asarray(values, np.float64)
  if values.size < 2:
    return float(values.mean()), float("nan")
  return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))
