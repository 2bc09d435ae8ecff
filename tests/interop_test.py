"""The bounds inside other JAX libraries: Flax NNX, equinox, plain pytrees under vmap, and distrax.

The bounds call `decode` once on all samples, `z: [L * batch, dim_z]`, never `vmap`ped over them, so
stateful layers (NNX Dropout and BatchNorm) are traced at the level of the caller's transform; and
they take distrax distributions for q(z|x) and p(x|z). Every model here is small and trains a few
steps: the point is that the pieces compose, compile once and update what they should.
"""

import functools

import distrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import vaex

BATCH, DIM_X, DIM_Z, HIDDEN = 8, 12, 3, 16


def _binary_data(shape=(BATCH, DIM_X), seed=1):
  return (jax.random.uniform(jax.random.key(seed), shape) < 0.3).astype(jnp.float32)


def _every_leaf_changed(before, after):
  """True if no array of `after` is (close to) the matching array of `before`."""
  return not any(np.allclose(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after),
                                                   strict=True))


# --- (a) Flax NNX: a stateful decoder (BatchNorm, Dropout) trained under nnx.jit ----------------------


class _NNXVAE(nnx.Module):
  """Linear encoder; decoder Linear -> BatchNorm -> relu -> Dropout -> Linear (Bernoulli logits)."""

  def __init__(self, rngs: nnx.Rngs):
    self.encoder = nnx.Linear(DIM_X, 2 * DIM_Z, rngs=rngs)
    self.hidden = nnx.Linear(DIM_Z, HIDDEN, rngs=rngs)
    self.norm = nnx.BatchNorm(HIDDEN, rngs=rngs)
    self.dropout = nnx.Dropout(0.5, rngs=rngs)
    self.logits = nnx.Linear(HIDDEN, DIM_X, rngs=rngs)

  def encode(self, x):
    mean, log_var = jnp.split(self.encoder(x), 2, axis=-1)
    return mean, log_var

  def decode(self, z):
    return self.logits(self.dropout(nnx.relu(self.norm(self.hidden(z)))))


@nnx.jit
def _nnx_elbo(model, key, x):
  return vaex.elbo(key, x, model.encode, model.decode, num_samples=16)


def test_nnx_model_with_dropout_and_batchnorm_trains_under_nnx_jit():
  """A regression test: a decoder vmapped over samples made NNX raise `TraceContextError: Cannot
  mutate RngCount (or BatchStat) from a different trace level`. Called once on all samples, Dropout
  and BatchNorm work under nnx.jit and nnx.value_and_grad."""
  model = _NNXVAE(nnx.Rngs(params=0, dropout=1))
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
  x = _binary_data()
  eval_key = jax.random.key(5)
  model.eval()
  before = _nnx_elbo(model, eval_key, x)
  params_before = jax.tree.map(np.array, nnx.state(model, nnx.Param))
  stats_before = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))

  traces, decoded_shapes = [], []
  num_samples = 3

  @nnx.jit
  def step(model, optimizer, key, x):
    traces.append(None)

    def loss_fn(model):
      def decode(z):
        decoded_shapes.append(tuple(z.shape))
        return model.decode(z)

      return -jnp.mean(vaex.elbo(key, x, model.encode, decode, num_samples=num_samples))

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  model.train()
  losses = np.array([step(model, optimizer, jax.random.fold_in(jax.random.key(2), t), x)
                     for t in range(30)])

  assert len(traces) == 1  # one compilation for 30 steps
  # The decoder is traced once per step, on every sample of every example at once.
  assert decoded_shapes == [(num_samples * BATCH, DIM_Z)]
  assert np.all(np.isfinite(losses))
  assert losses[-5:].mean() < losses[:5].mean()
  model.eval()
  after = _nnx_elbo(model, eval_key, x)
  assert np.all(np.isfinite(after)) and float(jnp.mean(after)) > float(jnp.mean(before)) + 1.0
  assert _every_leaf_changed(params_before, nnx.state(model, nnx.Param))
  # BatchNorm's running statistics were updated from the L * batch decoder rows.
  assert _every_leaf_changed(stats_before, nnx.state(model, nnx.BatchStat))


def test_nnx_dropout_is_active_in_training_mode_only():
  model = _NNXVAE(nnx.Rngs(params=0, dropout=1))
  x, key = _binary_data(), jax.random.key(3)
  model.train()
  first, second = _nnx_elbo(model, key, x), _nnx_elbo(model, key, x)
  # Same key and parameters: only the dropout stream (advanced by the first call) differs.
  assert np.all(np.isfinite(first)) and np.all(np.isfinite(second))
  assert not np.allclose(first, second)
  model.eval()
  np.testing.assert_array_equal(_nnx_elbo(model, key, x), _nnx_elbo(model, key, x))


# --- (b) equinox: eqx.filter_jit + eqx.filter_value_and_grad, optax -----------------------------------


class _EqxVAE(eqx.Module):
  encoder: eqx.nn.MLP
  decoder: eqx.nn.MLP

  def __init__(self, key):
    encoder_key, decoder_key = jax.random.split(key)
    self.encoder = eqx.nn.MLP(DIM_X, 2 * DIM_Z, HIDDEN, depth=1, key=encoder_key)
    self.decoder = eqx.nn.MLP(DIM_Z, DIM_X, HIDDEN, depth=1, key=decoder_key)

  def encode(self, x):
    mean, log_var = jnp.split(jax.vmap(self.encoder)(x), 2, axis=-1)
    return mean, log_var

  def decode(self, z):
    return jax.vmap(self.decoder)(z)  # equinox layers take one example; the bound passes all rows.


def test_equinox_model_trains_under_filter_jit():
  model = _EqxVAE(jax.random.key(0))
  optimizer = optax.adam(1e-2)
  opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
  x = _binary_data()
  traces = []

  def loss(model, key, x):
    return -jnp.mean(vaex.iwae_bound(key, x, model.encode, model.decode, num_samples=4))

  @eqx.filter_jit
  def step(model, opt_state, key, x):
    traces.append(None)
    value, grads = eqx.filter_value_and_grad(loss)(model, key, x)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, value

  eval_loss = eqx.filter_jit(lambda model: loss(model, jax.random.key(5), x))
  before = float(eval_loss(model))
  trained = model
  losses = []
  for t in range(20):
    trained, opt_state, value = step(trained, opt_state, jax.random.fold_in(jax.random.key(2), t), x)
    losses.append(float(value))

  assert len(traces) == 1
  assert np.all(np.isfinite(losses)) and np.isfinite(before)
  after = float(eval_loss(trained))
  assert after < before - 1.0
  assert _every_leaf_changed(eqx.filter(model, eqx.is_array), eqx.filter(trained, eqx.is_array))


# --- (c) plain-dict parameters: 4 independent replicas in one vmapped, jitted step ---------------------


def _init_dict_params(key):
  encoder_key, decoder_key = jax.random.split(key)
  return {
      "encoder": {"w": 0.3 * jax.random.normal(encoder_key, (DIM_X, 2 * DIM_Z)),
                  "b": jnp.zeros(2 * DIM_Z)},
      "decoder": {"w": 0.3 * jax.random.normal(decoder_key, (DIM_Z, DIM_X)), "b": jnp.zeros(DIM_X)},
  }


def _dict_encode(params, x):
  h = x @ params["encoder"]["w"] + params["encoder"]["b"][None]
  return h[:, :DIM_Z], h[:, DIM_Z:]


def _dict_decode(params, z):
  return z @ params["decoder"]["w"] + params["decoder"]["b"][None]


_OPTIMIZER = optax.adam(1e-2)


def _dict_init(key):
  params = _init_dict_params(key)
  return params, _OPTIMIZER.init(params)


def _dict_loss(params, key, x):
  encode, decode = functools.partial(_dict_encode, params), functools.partial(_dict_decode, params)
  return -jnp.mean(vaex.elbo(key, x, encode, decode, num_samples=2, analytic_kl=False))


def _dict_step(params, opt_state, key, x):
  value, grads = jax.value_and_grad(_dict_loss)(params, key, x)
  updates, opt_state = _OPTIMIZER.update(grads, opt_state)
  return optax.apply_updates(params, updates), opt_state, value


def _dict_log_likelihood(params, key, x):
  return vaex.importance_sampled_log_likelihood(
      key, x, functools.partial(_dict_encode, params), functools.partial(_dict_decode, params),
      num_samples=20, chunk_size=8)


def test_dict_params_vmapped_over_seeds_equal_each_unvmapped_run():
  num_replicas, num_steps = 4, 3
  x = _binary_data()
  init_keys = jax.random.split(jax.random.key(0), num_replicas)
  step_keys = jax.random.split(jax.random.key(1), num_replicas)

  params, opt_state = jax.jit(jax.vmap(_dict_init))(init_keys)
  vmapped_step = jax.jit(jax.vmap(_dict_step, in_axes=(0, 0, 0, None)))
  losses = []
  for t in range(num_steps):
    keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(step_keys)  # noqa: B023
    params, opt_state, value = vmapped_step(params, opt_state, keys, x)
    losses.append(value)
  losses = np.stack(losses, axis=1)  # [replica, step]
  log_px = jax.jit(jax.vmap(_dict_log_likelihood, in_axes=(0, 0, None)))(params, step_keys, x)
  assert losses.shape == (num_replicas, num_steps) and log_px.shape == (num_replicas, BATCH)
  assert np.all(np.isfinite(losses)) and np.all(np.isfinite(log_px))
  assert len(np.unique(losses[:, 0])) == num_replicas  # independent replicas

  single_init, single_step = jax.jit(_dict_init), jax.jit(_dict_step)
  for i in range(num_replicas):
    params_i, opt_state_i = single_init(init_keys[i])
    for t in range(num_steps):
      params_i, opt_state_i, value_i = single_step(
          params_i, opt_state_i, jax.random.fold_in(step_keys[i], t), x)
      np.testing.assert_allclose(losses[i, t], value_i, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),  # noqa: B023
                 jax.tree.map(lambda leaf: leaf[i], params), params_i)  # noqa: B023
    np.testing.assert_allclose(
        log_px[i], jax.jit(_dict_log_likelihood)(params_i, step_keys[i], x), rtol=1e-5, atol=1e-5)


# --- (d) a distrax decoder with log_likelihood=None -------------------------------------------------


def _logits_decoder(data_shape):
  w = 0.5 * jax.random.normal(jax.random.key(7), (DIM_Z, int(np.prod(data_shape))))

  def decode_logits(w, z):
    return (z @ w).reshape(z.shape[0], *data_shape)

  return w, decode_logits


def _diag_encoder(x):
  h = x.reshape(x.shape[0], -1)
  w = 0.4 * jax.random.normal(jax.random.key(8), (h.shape[1], 2 * DIM_Z))
  out = h @ w
  return out[:, :DIM_Z], out[:, DIM_Z:] - 1.0


_BOUNDS = {
    "elbo_B": functools.partial(vaex.elbo, num_samples=3),
    "elbo_A": functools.partial(vaex.elbo, num_samples=3, analytic_kl=False),
    "iwae": functools.partial(vaex.iwae_bound, num_samples=5),
    "importance_sampled": functools.partial(vaex.importance_sampled_log_likelihood, num_samples=12,
                                            chunk_size=5),
}


@pytest.mark.usefixtures("allow_rank_promotion")
@pytest.mark.parametrize("data_shape, reinterpreted", [
    ((DIM_X,), 1),
    ((4, 3, 1), 1),  # per-pixel log-probs [n, 4, 3]: the bounds sum them
    ((4, 3, 1), 3),  # the whole image is the event: [n]
])
def test_distrax_bernoulli_decoder_equals_the_logits_path(data_shape, reinterpreted):
  """Every bound, and the gradient of estimator A, with `decode(z)` a distrax distribution
  (`log_likelihood=None`) equal those with its logits and `vaex.bernoulli_log_likelihood`, jitted."""
  x = _binary_data((BATCH, *data_shape))
  w, decode_logits = _logits_decoder(data_shape)

  def with_distrax(w, key, x):
    def decode(z):
      return distrax.Independent(distrax.Bernoulli(logits=decode_logits(w, z)), reinterpreted)

    return {name: fn(key, x, _diag_encoder, decode, log_likelihood=None) for name, fn in _BOUNDS.items()}

  def with_logits(w, key, x):
    decode = functools.partial(decode_logits, w)
    return {name: fn(key, x, _diag_encoder, decode, log_likelihood=vaex.bernoulli_log_likelihood)
            for name, fn in _BOUNDS.items()}

  def values_and_grads(bounds_fn):
    def fn(w, key, x):
      grad = jax.grad(lambda w: jnp.sum(bounds_fn(w, key, x)["elbo_A"]))(w)
      return bounds_fn(w, key, x), grad

    return jax.jit(fn)

  key = jax.random.key(4)
  expected, expected_grad = values_and_grads(with_logits)(w, key, x)
  actual, actual_grad = values_and_grads(with_distrax)(w, key, x)
  for name in _BOUNDS:
    assert actual[name].shape == (BATCH,) and np.all(np.isfinite(actual[name])), name
    np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, err_msg=name)
  assert np.any(expected_grad != 0.0)
  np.testing.assert_allclose(actual_grad, expected_grad, rtol=1e-4, atol=1e-5)


# --- (e) a distrax.MultivariateNormalTri encoder ----------------------------------------------------


def _init_tri_params(key):
  keys = jax.random.split(key, 3)
  return {
      "loc": 0.3 * jax.random.normal(keys[0], (DIM_X, DIM_Z)),
      "tri": 0.1 * jax.random.normal(keys[1], (DIM_X, DIM_Z * DIM_Z)),
      "decoder": 0.5 * jax.random.normal(keys[2], (DIM_Z, DIM_X)),
  }


def _tri_encoder(params):
  def encode(x):  # q(z|x) = N(loc, L L^T), L lower-triangular with a positive diagonal
    loc = x @ params["loc"]
    raw = (x @ params["tri"]).reshape(x.shape[0], DIM_Z, DIM_Z)
    scale_tri = jnp.tril(raw, -1) + jnp.eye(DIM_Z)[None] * jax.nn.softplus(raw - 1.0)
    return distrax.MultivariateNormalTri(loc, scale_tri)

  return encode


def _tri_bound(params, key, x, estimator):
  encode, decode = _tri_encoder(params), lambda z: z @ params["decoder"]
  if estimator == "iwae":
    return vaex.iwae_bound(key, x, encode, decode, num_samples=4)
  return vaex.elbo(key, x, encode, decode, num_samples=2, analytic_kl=estimator == "B")


@pytest.mark.usefixtures("allow_rank_promotion")
def test_multivariate_normal_tri_encoder_gives_finite_bounds_and_gradients():
  params, x = _init_tri_params(jax.random.key(0)), _binary_data()
  key = jax.random.key(6)

  def values_and_grads(params, key, x):
    return {e: jax.value_and_grad(lambda p, e=e: jnp.sum(_tri_bound(p, key, x, e)))(params)
            for e in ("A", "B", "iwae")}

  for estimator, (value, grads) in jax.jit(values_and_grads)(params, key, x).items():
    assert np.isfinite(value), estimator
    for name, grad in grads.items():
      assert np.all(np.isfinite(grad)), (estimator, name)
      # Gradients reach the mean, the Cholesky factor and the decoder.
      assert np.any(grad != 0.0), (estimator, name)


@pytest.mark.usefixtures("allow_rank_promotion")
def test_multivariate_normal_tri_closed_form_kl_matches_numpy():
  """Estimator B's KL against N(0, I): (tr S + m^T m - d - log det S) / 2, S = L L^T, in float64."""
  params, x = _init_tri_params(jax.random.key(0)), _binary_data()
  terms = vaex.elbo_terms(jax.random.key(6), x, _tri_encoder(params), lambda z: z @ params["decoder"])
  q = _tri_encoder(params)(x)
  m = np.asarray(q.loc, np.float64)
  tri = np.asarray(q.scale_tri, np.float64)
  cov = tri @ np.swapaxes(tri, -1, -2)
  expected = 0.5 * (np.trace(cov, axis1=-2, axis2=-1) + np.sum(m**2, -1) - DIM_Z
                    - np.linalg.slogdet(cov)[1])
  np.testing.assert_allclose(terms.kl, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("allow_rank_promotion")
def test_multivariate_normal_tri_encoder_trains_with_optax():
  params, x = _init_tri_params(jax.random.key(0)), _binary_data()
  optimizer = optax.adam(1e-2)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, key):
    value, grads = jax.value_and_grad(lambda p: -jnp.mean(_tri_bound(p, key, x, "B")))(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, value

  eval_loss = jax.jit(lambda p: -jnp.mean(_tri_bound(p, jax.random.key(5), x, "A")))
  before = float(eval_loss(params))
  trained = params
  for t in range(10):
    trained, opt_state, value = step(trained, opt_state, jax.random.fold_in(jax.random.key(2), t))
    assert np.isfinite(value)
  assert float(eval_loss(trained)) < before
  assert _every_leaf_changed(params, trained)


# --- (d) and (e) together, op by op ------------------------------------------------------------------


@pytest.mark.usefixtures("allow_rank_promotion")
def test_distrax_encoder_and_decoder_work_without_jit():
  """A MultivariateNormalTri encoder and a distrax decoder on image-shaped data, op by op (values only:
  distrax is slow without jit): estimators A and B and IWAE equal the logits path."""
  x = _binary_data((BATCH, 4, 3, 1))
  w, decode_logits = _logits_decoder((4, 3, 1))
  params = _init_tri_params(jax.random.key(0))
  encode = lambda x: _tri_encoder(params)(x.reshape(x.shape[0], -1))  # noqa: E731
  key = jax.random.key(4)
  for fn in (_BOUNDS["elbo_B"], _BOUNDS["elbo_A"], _BOUNDS["iwae"]):
    def bound(w, key, x, fn=fn, log_likelihood=None):
      def decode(z):
        logits = decode_logits(w, z)
        if log_likelihood is None:
          return distrax.Independent(distrax.Bernoulli(logits=logits), 3)
        return logits

      return fn(key, x, encode, decode, log_likelihood=log_likelihood)

    unjitted = bound(w, key, x)
    assert unjitted.shape == (BATCH,) and np.all(np.isfinite(unjitted))
    np.testing.assert_allclose(
        unjitted, bound(w, key, x, log_likelihood=vaex.bernoulli_log_likelihood), rtol=1e-5)
