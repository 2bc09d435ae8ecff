"""The train state, the objective, the compiled step and epoch paths, and the optimizers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import vaex
from vaex._src import training

BATCH, NUM_EXAMPLES, DIM = 10, 60, 12


def _setup(prior_precision=0.0, input_transform="binary", estimator="B"):
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=3, hidden_sizes=(16,)),
                   vaex.BernoulliMLPDecoder(data_dim=DIM, hidden_sizes=(16,)))
  optimizer = training.make_optimizer("adam", 1e-2)
  loss_fn = training.make_loss_fn(model, estimator=estimator, prior_precision=prior_precision,
                                  num_train=NUM_EXAMPLES)
  state = training.create_train_state(jax.random.key(0), model, optimizer, DIM)
  data = (np.random.default_rng(0).uniform(size=(NUM_EXAMPLES, DIM)) < 0.4).astype(np.uint8)
  return model, optimizer, loss_fn, state, jnp.asarray(data)


def _copy(state):
  return jax.tree.map(lambda x: x.copy() if hasattr(x, "copy") else x, state)


def test_scan_epoch_equals_the_per_step_path():
  _, optimizer, loss_fn, state, data = _setup()
  steps = training.make_train_steps(loss_fn, optimizer, batch_size=BATCH)
  step = training.make_train_step(loss_fn, optimizer)
  spe = NUM_EXAMPLES // BATCH
  scanned, metrics = steps(_copy(state), data, num_steps=spe)
  looped = _copy(state)
  order = training.epoch_permutation(state.key, 0, NUM_EXAMPLES)
  bounds = []
  for i in range(spe):
    looped, m = step(looped, data[order[i * BATCH:(i + 1) * BATCH]])
    bounds.append(m["bound"])
  assert metrics["bound"].shape == (spe,)
  np.testing.assert_allclose(metrics["bound"], bounds, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(scanned.params), jax.tree.leaves(looped.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert int(scanned.step) == int(looped.step) == spe


def test_chunked_calls_are_bitwise_equal_to_one_call():
  _, optimizer, loss_fn, state, data = _setup()
  steps = training.make_train_steps(loss_fn, optimizer, batch_size=BATCH)
  whole, _ = steps(_copy(state), data, num_steps=6)
  part, _ = steps(_copy(state), data, num_steps=2)
  part, _ = steps(part, data, num_steps=4)
  for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(part.params)):
    np.testing.assert_array_equal(a, b)


def test_epoch_function_compiles_once_across_epochs():
  _, optimizer, loss_fn, state, data = _setup()
  traces = []

  def counted_loss(params, key, x):
    traces.append(1)
    return loss_fn(params, key, x)

  steps = training.make_train_steps(counted_loss, optimizer, batch_size=BATCH)
  for _ in range(4):
    state, _ = steps(state, data, num_steps=NUM_EXAMPLES // BATCH)
  assert len(traces) == 1
  assert int(state.step) == 4 * (NUM_EXAMPLES // BATCH)


def test_epochs_visit_every_example_once_in_fresh_orders(key):
  orders = [np.asarray(training.epoch_permutation(key, e, NUM_EXAMPLES)) for e in range(3)]
  for order in orders:
    np.testing.assert_array_equal(np.sort(order), np.arange(NUM_EXAMPLES))
  assert not np.array_equal(orders[0], orders[1])
  np.testing.assert_array_equal(orders[0], training.epoch_permutation(key, 0, NUM_EXAMPLES))


def test_steps_use_fresh_keys_and_training_improves_the_bound():
  _, optimizer, loss_fn, state, data = _setup()
  steps = training.make_train_steps(loss_fn, optimizer, batch_size=BATCH)
  first = None
  for _ in range(30):
    state, metrics = steps(state, data, num_steps=NUM_EXAMPLES // BATCH)
    first = metrics["bound"].mean() if first is None else first
  assert metrics["bound"].mean() > first + 1.0


def test_weight_decay_is_the_gaussian_prior_spread_over_the_data(key):
  model, _, plain, state, data = _setup()
  _, _, with_prior, _, _ = _setup(prior_precision=2.0)
  x = data[:BATCH].astype(jnp.float32)
  sq_norm = sum(float(np.sum(np.asarray(p, np.float64) ** 2)) for p in jax.tree.leaves(state.params))
  loss_plain, _ = plain(state.params, key, x)
  loss_prior, metrics = with_prior(state.params, key, x)
  # -(1/N) log N(theta; 0, I/2) up to a constant: 2 * ||theta||^2 / (2 N).
  np.testing.assert_allclose(loss_prior - loss_plain, 2.0 * sq_norm / (2 * NUM_EXAMPLES), rtol=1e-4)
  np.testing.assert_allclose(metrics["bound"], -loss_plain, rtol=1e-6)


def test_prepare_inputs(key):
  u8 = jnp.array([[0, 255, 51]], jnp.uint8)
  np.testing.assert_allclose(training.prepare_inputs(key, u8, "intensity"), [[0.0, 1.0, 0.2]])
  np.testing.assert_array_equal(
      training.prepare_inputs(key, jnp.array([[0, 1]], jnp.uint8), "binary"), [[0.0, 1.0]])
  intensities = jnp.full((20_000, 2), 0.3)
  draws = training.prepare_inputs(key, intensities, "dynamic_binarization")
  assert set(np.unique(draws)) <= {0.0, 1.0}
  assert abs(float(draws.mean()) - 0.3) < 4 * np.sqrt(0.3 * 0.7 / draws.size)
  with pytest.raises(ValueError, match="input_transform"):
    training.prepare_inputs(key, u8, "gray")


@pytest.mark.parametrize("name", training.OPTIMIZERS)
def test_every_optimizer_trains(name):
  opt = training.make_optimizer(name, 0.05, grad_clip_norm=1.0)
  params = {"w": jnp.array([3.0, -2.0])}
  state = opt.init(params)
  for _ in range(50):
    grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  assert float(jnp.sum(params["w"] ** 2)) < 13.0


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(name="rmsprop", learning_rate=1e-3), "`optimizer` must be one of"),
     (dict(name="adam", learning_rate=-1e-3), "`learning_rate` must be > 0"),
     (dict(name="adam", learning_rate=1e-3, grad_clip_norm=0.0), "`grad_clip_norm`")],
)
def test_bad_optimizer_settings(kwargs, match):
  with pytest.raises(ValueError, match=match):
    training.make_optimizer(**kwargs)


def test_bad_objective_settings():
  model = vaex.VAE(vaex.MLPEncoder(), vaex.BernoulliMLPDecoder())
  with pytest.raises(ValueError, match="`estimator` must be one of"):
    training.make_loss_fn(model, estimator="C")
  with pytest.raises(ValueError, match="`prior_precision` must be >= 0"):
    training.make_loss_fn(model, prior_precision=-1.0)


# ----- KL weight schedule and free bits -----

def test_kl_weight_rises_linearly_then_stays():
  steps = jnp.array([0, 1, 50, 99, 100, 101, 10_000])
  got = jax.vmap(lambda s: training.kl_weight_at(s, 0.5, 100))(steps)
  np.testing.assert_allclose(got, [0.0, 0.005, 0.25, 0.495, 0.5, 0.5, 0.5], rtol=1e-6)
  np.testing.assert_allclose(training.kl_weight_at(jnp.asarray(7), 0.5, 0), 0.5)


def test_free_bits_clamp_the_batch_mean_kl_of_each_dimension():
  # Two examples, three dimensions: batch means 0.1, 1.0 and 0.45.
  kl = jnp.array([[0.0, 1.5, 0.4], [0.2, 0.5, 0.5]])
  np.testing.assert_allclose(training.free_bits_kl(kl, 0.5), 0.5 + 1.0 + 0.5, rtol=1e-6)
  np.testing.assert_allclose(training.free_bits_kl(kl, 0.0), 0.1 + 1.0 + 0.45, rtol=1e-6)
  # Below the threshold a dimension's KL gets no gradient; above it the gradient is 1/batch.
  grad = jax.grad(lambda k: training.free_bits_kl(k, 0.5))(kl)
  np.testing.assert_allclose(grad, [[0.0, 0.5, 0.0], [0.0, 0.5, 0.0]])


@pytest.mark.parametrize("gradient_estimator", ["reparameterization", "dreg"])
def test_iwae_loss_with_a_kl_warmup_weighs_the_log_ratio_and_reports_the_iwae_bound(gradient_estimator):
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=3, hidden_sizes=(8,)),
                   vaex.BernoulliMLPDecoder(data_dim=10, hidden_sizes=(8,)))
  x = (np.random.default_rng(0).uniform(size=(5, 10)) < 0.5).astype(np.float32)
  params = model.init(jax.random.key(0), x)
  key = jax.random.key(1)
  kwargs = dict(estimator="iwae", num_samples=3, gradient_estimator=gradient_estimator)
  plain = training.make_loss_fn(model, **kwargs)
  warm = training.make_loss_fn(model, kl_warmup_steps=10, **kwargs)
  assert warm.takes_step
  loss, metrics = warm(params, key, x, jnp.asarray(4))
  np.testing.assert_allclose(metrics["kl_weight"], 0.4, rtol=1e-6)
  np.testing.assert_allclose(metrics["bound"], plain(params, key, x)[1]["bound"], rtol=1e-6)
  encode, decode = vaex.encoder_decoder(model, params)
  weighted = vaex.iwae_bound(key, x, encode, decode, num_samples=3, kl_weight=0.4,
                             gradient_estimator=gradient_estimator)
  np.testing.assert_allclose(loss, -jnp.mean(weighted), rtol=1e-6)
  assert metrics["kl"] > 0 and metrics["bound"] < -loss  # beta < 1 weighs the (positive) KL less.
  # After the warm-up the loss is the IWAE bound's, in value and gradient.
  after = jax.value_and_grad(lambda p: warm(p, key, x, jnp.asarray(25))[0])(params)
  for a, b in zip(jax.tree.leaves(after),
                  jax.tree.leaves(jax.value_and_grad(lambda p: plain(p, key, x)[0])(params))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="Free bits .* estimator 'B'"):
    training.make_loss_fn(model, free_bits=0.5, **kwargs)


def test_loss_with_kl_knobs_reports_the_elbo_as_the_bound():
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=3, hidden_sizes=(8,)),
                   vaex.BernoulliMLPDecoder(data_dim=10, hidden_sizes=(8,)))
  x = (np.random.default_rng(0).uniform(size=(5, 10)) < 0.5).astype(np.float32)
  params = model.init(jax.random.key(0), x)
  key = jax.random.key(1)
  plain = training.make_loss_fn(model)
  for kwargs in (dict(kl_weight=0.3), dict(free_bits=0.2), dict(kl_warmup_steps=10)):
    weighted = training.make_loss_fn(model, **kwargs)
    _, metrics = weighted(params, key, x, *((jnp.asarray(4),) if weighted.takes_step else ()))
    np.testing.assert_allclose(metrics["bound"], plain(params, key, x)[1]["bound"], rtol=1e-6)
  _, metrics = training.make_loss_fn(model, kl_warmup_steps=10, kl_weight=2.0)(
      params, key, x, jnp.asarray(4))
  np.testing.assert_allclose(metrics["kl_weight"], 0.8, rtol=1e-6)
  np.testing.assert_allclose(metrics["loss"], -(metrics["bound"] + metrics["kl"]) + 0.8 * metrics["kl"],
                             rtol=1e-5)
