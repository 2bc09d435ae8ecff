"""Recognition models q(z|x): Flax linen modules that output the parameters of a diagonal Gaussian."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# Kingma & Welling (2013), Section 5: "Parameters are initialized by random sampling from
# N(0, 0.01)". We read 0.01 as the standard deviation, as the authors' released code does.
PAPER_INIT_STDDEV = 0.01


def dense_initializers(paper_init: bool) -> dict[str, Callable]:
  """Kernel and bias initializers: the paper's N(0, 0.01) for both, or Flax's defaults."""
  if paper_init:
    init = nn.initializers.normal(stddev=PAPER_INIT_STDDEV)
    return {"kernel_init": init, "bias_init": init}
  return {}


class MLP(nn.Module):
  """A stack of dense layers with an activation after each: `[batch, d] -> [batch, hidden[-1]]`."""

  hidden_sizes: Sequence[int]
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  paper_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, size in enumerate(self.hidden_sizes):
      x = self.activation(
          nn.Dense(size, name=f"hidden_{i}", **dense_initializers(self.paper_init))(x)
      )
    return x


class MLPEncoder(nn.Module):
  """Gaussian MLP recognition model q(z|x) = N(mean(x), diag(exp(log_var(x)))).

  The defaults are the paper's MNIST encoder: one tanh hidden layer of 500 units, 20 latents.
  The mean and log-variance come from one dense head of size 2 * latent_dim (one matmul), split in
  two; the log-variance is linear, as in the paper.

  Attributes:
    latent_dim: dim_z.
    hidden_sizes: sizes of the hidden layers.
    activation: nonlinearity after each hidden layer.
    paper_init: initialize every weight and bias from N(0, 0.01^2) as in the paper; otherwise
      Flax's defaults (LeCun normal kernels, zero biases).

  Call: `x: [batch, dim_x] float -> (mean, log_var)`, each `[batch, latent_dim]`.
  """

  latent_dim: int = 20
  hidden_sizes: Sequence[int] = (500,)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  paper_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = MLP(self.hidden_sizes, self.activation, self.paper_init, name="mlp")(x)
    out = nn.Dense(2 * self.latent_dim, name="gaussian_head", **dense_initializers(self.paper_init))(h)
    mean, log_var = jnp.split(out, 2, axis=-1)
    return mean, log_var


class FullCovarianceMLPEncoder(nn.Module):
  """Full-covariance Gaussian q(z|x) = N(mean(x), L(x) L(x)^T), L lower-triangular.

  The MLP trunk is `MLPEncoder`'s. A head of size 2 * latent_dim gives the mean and log diag(L); a
  second head gives the D (D - 1) / 2 strictly-lower entries of L, zero-initialized (unless
  `paper_init`) so that training starts from a diagonal posterior.

  Attributes:
    latent_dim, hidden_sizes, activation, paper_init: as in `MLPEncoder`.

  Call: `x: [batch, dim_x] float -> vaex.FullCovarianceGaussian` with loc `[batch, latent_dim]` and
  scale_tril `[batch, latent_dim, latent_dim]`.
  """

  latent_dim: int = 20
  hidden_sizes: Sequence[int] = (500,)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  paper_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array):
    from vaex._src.distributions import FullCovarianceGaussian

    dim = self.latent_dim
    h = MLP(self.hidden_sizes, self.activation, self.paper_init, name="mlp")(x)
    out = nn.Dense(2 * dim, name="gaussian_head", **dense_initializers(self.paper_init))(h)
    mean, log_diag = jnp.split(out, 2, axis=-1)
    tril_init = dense_initializers(True) if self.paper_init else {"kernel_init": nn.initializers.zeros}
    rows, cols = jnp.tril_indices(dim, -1)
    off_diagonal = nn.Dense(rows.shape[0], name="tril_head", **tril_init)(h)
    scale_tril = jnp.zeros((x.shape[0], dim, dim), out.dtype).at[:, rows, cols].set(off_diagonal)
    scale_tril = scale_tril + jax.vmap(jnp.diag)(jnp.exp(log_diag))
    return FullCovarianceGaussian(mean, scale_tril)


class FlowMLPEncoder(nn.Module):
  """Normalizing-flow q(z|x): a diagonal Gaussian through `num_flows` RealNVP affine couplings.

  The MLP trunk is `MLPEncoder`'s; its last hidden layer gives the base Gaussian (mean, log_var) and,
  through a dense layer of `context_dim` units, the context every coupling's conditioner reads. The
  couplings' conditioner weights are parameters of this module (one hidden layer of
  `flow_hidden_size` tanh units each, output layer zero-initialized so that q starts as the base
  Gaussian). With `num_flows = 0` this is `MLPEncoder`'s diagonal Gaussian as an object.

  Attributes:
    latent_dim, hidden_sizes, activation, paper_init: as in `MLPEncoder`.
    num_flows: K, the number of coupling steps (>= 0).
    flow_hidden_size: H, hidden units of each conditioner.
    context_dim: C, size of the x-dependent context.

  Call: `x: [batch, dim_x] float -> vaex.FlowPosterior` (batch shape `[batch]`, event `[latent_dim]`).
  """

  latent_dim: int = 20
  hidden_sizes: Sequence[int] = (500,)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh
  paper_init: bool = False
  num_flows: int = 2
  flow_hidden_size: int = 100
  context_dim: int = 32

  @nn.compact
  def __call__(self, x: jax.Array):
    from vaex._src.flows import FlowPosterior

    if isinstance(self.num_flows, bool) or not isinstance(self.num_flows, int) or self.num_flows < 0:
      raise ValueError(f"`num_flows` must be an int >= 0; got {self.num_flows!r}.")
    dim, width = self.latent_dim, self.flow_hidden_size
    h = MLP(self.hidden_sizes, self.activation, self.paper_init, name="mlp")(x)
    out = nn.Dense(2 * dim, name="gaussian_head", **dense_initializers(self.paper_init))(h)
    mean, log_var = jnp.split(out, 2, axis=-1)
    context = jnp.tanh(nn.Dense(self.context_dim, name="context")(h))
    lecun = nn.initializers.lecun_normal()
    steps = []
    for k in range(self.num_flows):
      steps.append({
          "w_hidden": self.param(f"flow_{k}_w_hidden", lecun, (dim + self.context_dim, width)),
          "b_hidden": self.param(f"flow_{k}_b_hidden", nn.initializers.zeros, (width,)),
          "w_out": self.param(f"flow_{k}_w_out", nn.initializers.zeros, (width, 2 * dim)),
          "b_out": self.param(f"flow_{k}_b_out", nn.initializers.zeros, (2 * dim,)),
      })
    return FlowPosterior(mean, log_var, context, tuple(steps))
