"""A normalizing-flow posterior: a diagonal Gaussian pushed through RealNVP masked affine couplings.

q(z|x): z_0 ~ N(loc(x), diag(exp(log_var(x)))), then z_k = f_k(z_{k-1}) for k = 1..K, with f_k the
masked affine coupling of Dinh et al. (2017): the coordinates where mask_k is True pass unchanged,
the others become z * exp(s) + t, with (t, s) from a one-hidden-layer conditioner of the unchanged
coordinates and of an x-dependent context vector (so the flow is amortized). Masks alternate between
even and odd coordinates. log q(z_K|x) = log N(z_0) - sum_k log |det df_k/dz_{k-1}| (Rezende &
Mohamed 2015; Kingma et al. 2016 use flows the same way in a VAE).

The posterior object holds arrays only (`flax.struct`), so the bounds can call it outside
`model.apply`: the conditioners are pure functions of those arrays. The bijectors are distrax's
(`MaskedCoupling`, `ScalarAffine`, `Chain`, `Transformed`); distrax is imported when the object is
used, never at `import vaex`.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


def coupling_mask(step: int, dim: int) -> jax.Array:
  """`bool [dim]`: the coordinates step `step` leaves unchanged (even ones on even steps)."""
  return jnp.arange(dim) % 2 == step % 2


def _dense(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
  """`x: [..., m] @ w: [m, n] + b: [n]` -> `[..., n]`."""
  return x @ w + jnp.broadcast_to(b, (*x.shape[:-1], b.shape[-1]))


def coupling_shift_and_log_scale(
    params: dict[str, jax.Array], context: jax.Array, masked_z: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """The conditioner of one coupling: `masked_z: [..., batch, D]`, `context: [batch, C]` ->
  (shift, log_scale), each `[..., batch, D]`; log_scale = tanh(.) in (-1, 1) keeps exp bounded."""
  ctx = jnp.broadcast_to(context, (*masked_z.shape[:-1], context.shape[-1]))
  h = jnp.tanh(_dense(jnp.concatenate([masked_z, ctx], axis=-1), params["w_hidden"], params["b_hidden"]))
  out = _dense(h, params["w_out"], params["b_out"])
  shift, raw_log_scale = jnp.split(out, 2, axis=-1)
  return shift, jnp.tanh(raw_log_scale)


class FlowPosterior(flax.struct.PyTreeNode):
  """q(z|x) of `FlowMLPEncoder`: a diagonal Gaussian base and `len(flow_params)` couplings.

  Attributes:
    loc: `[batch, D]` base means.
    log_var: `[batch, D]` base log-variances.
    context: `[batch, C]` x-dependent input of every conditioner.
    flow_params: one dict per coupling step, `{"w_hidden": [D + C, H], "b_hidden": [H],
      "w_out": [H, 2 D], "b_out": [2 D]}`.

  Batch shape `[batch]`, event shape `[D]`. Has no `mean()`: a flow's mean has no closed form.
  """

  loc: jax.Array
  log_var: jax.Array
  context: jax.Array
  flow_params: tuple[dict[str, jax.Array], ...]

  @property
  def event_shape(self) -> tuple[int, ...]:
    return tuple(self.loc.shape[-1:])

  @property
  def batch_shape(self) -> tuple[int, ...]:
    return tuple(self.loc.shape[:-1])

  @property
  def num_flows(self) -> int:
    return len(self.flow_params)

  def as_distrax(self) -> Any:
    """The same distribution as a `distrax.Transformed` (or the base Gaussian for 0 flows)."""
    import distrax  # Lazily: `import vaex` never imports distrax.

    base = distrax.MultivariateNormalDiag(self.loc, jnp.exp(0.5 * self.log_var))
    if not self.flow_params:
      return base
    dim = self.event_shape[0]

    def affine(params):
      shift, log_scale = params
      return distrax.ScalarAffine(shift=shift, log_scale=log_scale)

    layers = [
        distrax.MaskedCoupling(
            mask=coupling_mask(step, dim),
            conditioner=functools.partial(coupling_shift_and_log_scale, params, self.context),
            bijector=affine)
        for step, params in enumerate(self.flow_params)
    ]
    # distrax.Chain applies its last bijector first: step 0 acts on z_0.
    return distrax.Transformed(base, distrax.Chain(layers[::-1]))

  def sample_and_log_prob(self, *, seed: jax.Array, sample_shape: tuple[int, ...] = ()):
    """Reparameterized `z: [*sample_shape, batch, D]` and `log q(z|x): [*sample_shape, batch]`."""
    with jax.numpy_rank_promotion("allow"):  # distrax broadcasts its parameters implicitly.
      return self.as_distrax().sample_and_log_prob(seed=seed, sample_shape=sample_shape)

  def sample(self, *, seed: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
    return self.sample_and_log_prob(seed=seed, sample_shape=sample_shape)[0]

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log q(z|x) for `z: [..., batch, D]` -> `[..., batch]` (inverts the couplings)."""
    with jax.numpy_rank_promotion("allow"):  # distrax broadcasts its parameters implicitly.
      return self.as_distrax().log_prob(z)
