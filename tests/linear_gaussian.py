"""The linear-Gaussian model, where every bound is known in closed form (float64 numpy/scipy).

p(z) = N(0, I) (or a mixture of Gaussians), p(x|z) = N(W z + b, s^2 I). With a general W the exact
posterior is a full-covariance Gaussian: Sigma = (I + W^T W / s^2)^-1, mean = Sigma W^T (x - b) / s^2,
and log p(x) = log N(x; b, W W^T + s^2 I).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from scipy import stats

NOISE_STD = 0.5


@dataclasses.dataclass(frozen=True)
class LinearGaussian:
  w: np.ndarray  # [dim_x, dim_z], float64
  b: np.ndarray  # [dim_x]
  x: np.ndarray  # [batch, dim_x]

  @property
  def dim_z(self) -> int:
    return self.w.shape[1]

  def log_marginal(self, x: np.ndarray | None = None) -> np.ndarray:
    """Exact log p(x) under the N(0, I) prior: `[batch]`, float64."""
    cov = self.w @ self.w.T + NOISE_STD**2 * np.eye(self.w.shape[0])
    return stats.multivariate_normal(self.b, cov).logpdf(self.x if x is None else x)

  def posterior(self) -> tuple[np.ndarray, np.ndarray]:
    """Exact posterior under the N(0, I) prior: means `[batch, dim_z]`, covariance `[dim_z, dim_z]`."""
    cov = np.linalg.inv(np.eye(self.dim_z) + self.w.T @ self.w / NOISE_STD**2)
    means = (self.x - self.b) @ self.w @ cov / NOISE_STD**2  # cov is symmetric.
    return means, cov

  def log_likelihood_np(self, z: np.ndarray) -> np.ndarray:
    """log p(x|z) for `z: [..., batch, dim_z]` -> `[..., batch]`, float64."""
    mean = z @ self.w.T + self.b
    return stats.norm(mean, NOISE_STD).logpdf(self.x).sum(-1)

  def decode(self, z):
    """The decoder as vaex takes it: `z: [n, dim_z] -> (mean, log_var)`, float32."""
    mean = z @ jnp.asarray(self.w.T, jnp.float32) + jnp.asarray(self.b, jnp.float32)
    return mean, jnp.full_like(mean, np.float32(2 * np.log(NOISE_STD)))


def make(seed: int = 0, dim_x: int = 5, dim_z: int = 3, batch: int = 4) -> LinearGaussian:
  """A linear-Gaussian model with a general (non-orthogonal) W: the posterior has correlations."""
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(dim_x, dim_z))
  b = rng.normal(size=dim_x)
  x = b + rng.normal(size=(batch, dim_x)) * 2.0
  return LinearGaussian(w, b, x)
