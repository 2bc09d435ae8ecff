"""Distributions of our own, as pytrees: a full-covariance Gaussian and a diagonal-Gaussian mixture.

Both follow the distrax protocol the bounds read (`sample_and_log_prob(seed=, sample_shape=)`,
`log_prob`, `sample`, `batch_shape`, `event_shape`, batch axes first and the latent axis last), without
importing distrax. They are `flax.struct` dataclasses of arrays, so they cross `jit`, `grad` and
`stop_gradient`, and can be returned from `model.apply` and used outside it.
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)


class FullCovarianceGaussian(flax.struct.PyTreeNode):
  """N(loc, L L^T) with L lower-triangular with a positive diagonal (the Cholesky factor).

  Attributes:
    loc: `[*batch, D]` means.
    scale_tril: `[*batch, D, D]` lower-triangular Cholesky factors of the covariances (entries above
      the diagonal are ignored; the diagonal must be positive).
  """

  loc: jax.Array
  scale_tril: jax.Array

  @property
  def event_shape(self) -> tuple[int, ...]:
    return tuple(self.loc.shape[-1:])

  @property
  def batch_shape(self) -> tuple[int, ...]:
    return tuple(self.loc.shape[:-1])

  def _tril(self) -> jax.Array:
    return jnp.tril(self.scale_tril)

  def mean(self) -> jax.Array:
    """`[*batch, D]`."""
    return self.loc

  def covariance(self) -> jax.Array:
    """`[*batch, D, D]` L L^T."""
    tril = self._tril()
    return tril @ jnp.swapaxes(tril, -1, -2)

  def _log_det_scale(self) -> jax.Array:
    """log |det L| = sum log diag(L): `[*batch]`."""
    return jnp.sum(jnp.log(jnp.diagonal(self._tril(), axis1=-2, axis2=-1)), axis=-1)

  def sample_and_log_prob(self, *, seed: jax.Array, sample_shape: tuple[int, ...] = ()):
    """Reparameterized z = loc + L eps, eps ~ N(0, I): `([*sample, *batch, D], [*sample, *batch])`."""
    shape = (*sample_shape, *self.batch_shape, *self.event_shape)
    eps = jax.random.normal(seed, shape, self.loc.dtype)
    tril = jnp.broadcast_to(self._tril(), (*shape, shape[-1]))
    z = jnp.broadcast_to(self.loc, shape) + jnp.einsum("...ij,...j->...i", tril, eps)
    return z, self._log_prob_of_noise(eps)

  def _log_prob_of_noise(self, eps: jax.Array) -> jax.Array:
    """log N(loc + L eps; loc, L L^T) for standardized `eps: [..., *batch, D]` -> `[..., *batch]`."""
    dim = self.event_shape[0]
    log_det = jnp.broadcast_to(self._log_det_scale(), eps.shape[:-1])
    return -0.5 * jnp.sum(jnp.square(eps), axis=-1) - log_det - 0.5 * dim * _LOG_2PI

  def sample(self, *, seed: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
    return self.sample_and_log_prob(seed=seed, sample_shape=sample_shape)[0]

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log N(z; loc, L L^T) for `z: [..., *batch, D]` -> `[..., *batch]` (one triangular solve)."""
    diff = z - jnp.broadcast_to(self.loc, z.shape)
    tril = jnp.broadcast_to(self._tril(), (*z.shape, z.shape[-1]))
    eps = jax.scipy.linalg.solve_triangular(tril, diff[..., None], lower=True)[..., 0]
    return self._log_prob_of_noise(eps)

  def kl_to_standard_normal(self) -> jax.Array:
    """KL(N(loc, L L^T) || N(0, I)) = 1/2 (tr(L L^T) + |loc|^2 - D) - log |det L|: `[*batch]`."""
    dim = self.event_shape[0]
    trace = jnp.sum(jnp.square(self._tril()), axis=(-2, -1))
    return 0.5 * (trace + jnp.sum(jnp.square(self.loc), axis=-1) - dim) - self._log_det_scale()


class DiagGaussianMixture(flax.struct.PyTreeNode):
  """p(z) = sum_k pi_k N(z; mean_k, diag(exp(log_var_k))) over a latent vector z of size D.

  Attributes:
    logits: `[K]` unnormalized log mixture weights (pi = softmax(logits)).
    means: `[K, D]` component means.
    log_vars: `[K, D]` component log-variances (natural log).

  Batch shape `()`, event shape `(D,)`.
  """

  logits: jax.Array
  means: jax.Array
  log_vars: jax.Array

  @property
  def event_shape(self) -> tuple[int, ...]:
    return tuple(self.means.shape[-1:])

  @property
  def batch_shape(self) -> tuple[int, ...]:
    return ()

  @property
  def num_components(self) -> int:
    return self.means.shape[0]

  def component_log_probs(self, z: jax.Array) -> jax.Array:
    """log N(z; mean_k, diag var_k) for `z: [..., D]` -> `[..., K]`.

    The squared distances are expanded into matmuls, sum_d (z_d^2 - 2 z_d m_kd + m_kd^2) / v_kd,
    so that no `[..., K, D]` array is formed (as fast as the N(0, I) prior at K = 500)."""
    precision = jnp.exp(-self.log_vars)  # [K, D]
    cross = jnp.square(z) @ precision.T - 2.0 * z @ (self.means * precision).T  # [..., K]
    quadratic = cross + jnp.broadcast_to(jnp.sum(jnp.square(self.means) * precision, -1), cross.shape)
    log_norm = -0.5 * (self.event_shape[0] * _LOG_2PI + jnp.sum(self.log_vars, axis=-1))  # [K]
    return jnp.broadcast_to(log_norm, quadratic.shape) - 0.5 * jnp.maximum(quadratic, 0.0)

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log p(z) by logsumexp over the components: `z: [..., D]` -> `[...]`."""
    log_weights = jax.nn.log_softmax(self.logits)
    log_joint = self.component_log_probs(z)
    return jax.nn.logsumexp(log_joint + jnp.broadcast_to(log_weights, log_joint.shape), axis=-1)

  def sample(self, *, seed: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
    """`[*sample_shape, D]` draws: a component by its weight, then its Gaussian (not
    reparameterized through the component choice)."""
    component_key, noise_key = jax.random.split(seed)
    k = jax.random.categorical(component_key, self.logits, shape=tuple(sample_shape))
    eps = jax.random.normal(noise_key, (*sample_shape, *self.event_shape), self.means.dtype)
    return self.means[k] + jnp.exp(0.5 * self.log_vars[k]) * eps

  def sample_and_log_prob(self, *, seed: jax.Array, sample_shape: tuple[int, ...] = ()):
    z = self.sample(seed=seed, sample_shape=sample_shape)
    return z, self.log_prob(z)
