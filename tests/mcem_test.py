"""Monte Carlo EM: compiles once, improves the generative model, adapts step sizes, is reproducible."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vaex
from vaex._src import training

DIM, NUM_TRAIN, BATCH, LATENT = 12, 40, 20, 2


@functools.cache
def _model_and_data():
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=LATENT, hidden_sizes=(16,)),
                   vaex.BernoulliMLPDecoder(data_dim=DIM, hidden_sizes=(16,)))
  # Two prototypes with 10% bit flips: a structure a 2-D latent model can capture.
  rng = np.random.default_rng(0)
  prototypes = rng.uniform(size=(2, DIM)) < 0.5
  flips = rng.uniform(size=(NUM_TRAIN, DIM)) < 0.1
  data = (prototypes[np.arange(NUM_TRAIN) % 2] ^ flips).astype(np.uint8)
  return model, jnp.asarray(data)


@functools.cache
def _step(learning_rate=0.05, **step_kwargs):
  """One step function per setting, shared by the tests (each costs a compilation)."""
  model, _ = _model_and_data()
  return vaex.make_mcem_step(model, _optimizer(learning_rate), **step_kwargs)


def _optimizer(learning_rate):
  return training.make_optimizer("adagrad", learning_rate)


@functools.cache
def _initial_state(learning_rate=0.05, initial_step_size=0.1):
  model, _ = _model_and_data()
  return vaex.init_mcem_state(jax.random.key(0), model, _optimizer(learning_rate),
                              num_train=NUM_TRAIN, data_dim=DIM, initial_step_size=initial_step_size)


def _setup(learning_rate=0.05, initial_step_size=0.1, **step_kwargs):
  """`(model, step, state, data)`; the state is a fresh copy (steps donate it)."""
  model, data = _model_and_data()
  state = _copy(_initial_state(learning_rate, initial_step_size))
  return model, _step(learning_rate, **step_kwargs), state, data


def _batches(num_steps, seed=1):
  key = jax.random.key(seed)
  for i in range(num_steps):
    epoch, j = divmod(i, NUM_TRAIN // BATCH)
    order = training.epoch_permutation(key, epoch, NUM_TRAIN)
    yield i, order[j * BATCH:(j + 1) * BATCH]


def _run(step, state, data, num_steps, seed=2):
  key = jax.random.key(seed)
  history = []
  for i, indices in _batches(num_steps):
    state, metrics = step(state, data, indices, jax.random.fold_in(key, i))
    history.append(jax.tree.map(float, metrics))
  return state, history


def _log_marginal(model, params, data, num_samples=4000):
  """log p(x) by importance sampling from the prior (accurate in 2-D): `[num_train]`."""
  z = jax.random.normal(jax.random.key(9), (num_samples, LATENT))
  logits = model.apply(params, z, method=vaex.VAE.decode)  # [S, DIM]
  x = jnp.asarray(data, jnp.float32)
  log_lik = jax.vmap(lambda xi: vaex.bernoulli_log_likelihood(
      jnp.broadcast_to(xi, logits.shape), logits))(x)  # [N, S]
  return jax.nn.logsumexp(log_lik, axis=1) - np.log(num_samples)


def _copy(state):
  return jax.tree.map(lambda x: x.copy() if hasattr(x, "copy") else x, state)


def test_state_shapes_and_decoder_only_params():
  model, _, state, _ = _setup()
  assert state.positions.shape == (NUM_TRAIN, LATENT) and state.positions.dtype == jnp.float32
  assert state.step_sizes.shape == (NUM_TRAIN,)
  np.testing.assert_allclose(state.step_sizes, 0.1)
  assert set(state.params["params"]) == {"decoder"}
  _, decode = vaex.encoder_decoder(model, state.params)
  assert decode(jnp.zeros((3, LATENT))).shape == (3, DIM)


def test_step_compiles_once_and_updates_only_the_minibatch_chains():
  model, _, state, data = _setup()
  traces = []

  def counted_log_likelihood(x, logits):
    traces.append(1)
    return vaex.bernoulli_log_likelihood(x, logits)

  step = vaex.make_mcem_step(model, training.make_optimizer("adagrad", 0.05),
                             log_likelihood=counted_log_likelihood)
  before = np.asarray(state.positions).copy()
  first = jnp.arange(BATCH)
  state, metrics = step(state, data, first, jax.random.key(1))
  count = len(traces)
  for i in range(3):
    state, metrics = step(state, data, first + BATCH * (i % 2), jax.random.key(2 + i))
  assert len(traces) == count  # No retrace after the first call.
  assert int(state.step) == 4
  assert set(metrics) == {"log_likelihood", "log_joint", "loss", "acceptance", "step_size"}
  assert all(np.isfinite(float(v)) for v in metrics.values())
  # One step on the first half only: the other chains have not moved.
  _, _, state, data = _setup()
  state, _ = step(state, data, first, jax.random.key(1))
  after = np.asarray(state.positions)
  np.testing.assert_array_equal(after[BATCH:], before[BATCH:])
  assert not np.array_equal(after[:BATCH], before[:BATCH])


def test_training_improves_the_generative_log_likelihood():
  model, step, state, data = _setup()
  before = float(jnp.mean(_log_marginal(model, state.params, data)))
  state, history = _run(step, state, data, 60)
  after = float(jnp.mean(_log_marginal(model, state.params, data)))
  # Starting from about DIM * log 2 = 8.3 nats per example; the structure is worth several nats.
  assert after > before + 2.0, (before, after)
  assert np.mean([h["log_likelihood"] for h in history[-10:]]) > history[0]["log_likelihood"] + 2.0


def test_step_sizes_adapt_toward_the_target_acceptance():
  # From too large and too small steps, the per-chain step sizes move until acceptance nears 0.9.
  for initial_step_size in (5.0, 0.05):
    _, step, state, data = _setup(learning_rate=1e-3, initial_step_size=initial_step_size,
                                  num_hmc_steps=5, adaptation_rate=0.5)
    state, history = _run(step, state, data, 40)
    first, late = history[0]["acceptance"], np.mean([h["acceptance"] for h in history[-10:]])
    assert abs(late - 0.9) < 0.05, (initial_step_size, first, late)
    assert abs(first - 0.9) > 0.05, (initial_step_size, first)
    median = float(np.median(np.asarray(state.step_sizes)))
    assert median < initial_step_size if initial_step_size > 1 else median > initial_step_size


def test_same_key_same_result_and_different_key_different_result():
  _, step, state, data = _setup()
  indices = jnp.arange(BATCH)
  a, ma = step(_copy(state), data, indices, jax.random.key(5))
  b, mb = step(_copy(state), data, indices, jax.random.key(5))
  c, _ = step(_copy(state), data, indices, jax.random.key(6))
  for x, y in zip(jax.tree.leaves((a, ma)), jax.tree.leaves((b, mb))):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.positions, c.positions)


def test_bad_inputs_raise_clear_errors():
  model, step, state, data = _setup()
  key = jax.random.key(0)
  optimizer = training.make_optimizer("adagrad", 0.05)
  with pytest.raises(ValueError, match=r"`data` must hold the whole training set.*40 chains"):
    step(state, data[:30], jnp.arange(BATCH), key)
  with pytest.raises(ValueError, match=r"`data` must have rank 2"):
    step(state, data[0], jnp.arange(BATCH), key)
  with pytest.raises(ValueError, match=r"`indices` must be a 1-D integer array"):
    step(state, data, jnp.arange(BATCH, dtype=jnp.float32), key)
  with pytest.raises(ValueError, match=r"`indices` is empty"):
    step(state, data, jnp.arange(0), key)
  with pytest.raises(TypeError, match=r"`key` must be a jax.random key"):
    step(state, data, jnp.arange(BATCH), 0)
  with pytest.raises(TypeError, match=r"`state` must be an MCEMState"):
    step(state.params, data, jnp.arange(BATCH), key)
  with pytest.raises(ValueError, match=r"`target_acceptance` must be in \(0, 1\); got 90"):
    vaex.make_mcem_step(model, optimizer, target_acceptance=90)
  with pytest.raises(ValueError, match=r"`num_gradient_steps` must be >= 1; got 0"):
    vaex.make_mcem_step(model, optimizer, num_gradient_steps=0)
  with pytest.raises(ValueError, match=r"`step_size_range` must be \(min, max\)"):
    vaex.make_mcem_step(model, optimizer, step_size_range=(0.5, 0.1))
  with pytest.raises(ValueError, match=r"`initial_step_size` must be a number > 0; got 0"):
    vaex.init_mcem_state(key, model, optimizer, num_train=NUM_TRAIN, data_dim=DIM,
                         initial_step_size=0)
  with pytest.raises(TypeError, match=r"`model` must be a vaex.VAE"):
    vaex.init_mcem_state(key, model.decoder, optimizer, num_train=NUM_TRAIN, data_dim=DIM)
