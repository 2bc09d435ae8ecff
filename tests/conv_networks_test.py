"""vaex.ConvEncoder / vaex.ConvDecoder: shapes for several image sizes, flat and image layouts, the
bounds on image-shaped data, training, tracing once, bad inputs, and the `architecture` config key."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import vaex
from vaex import experiment
from vaex._src import config as config_lib
from vaex._src import decoders, densities, pixel_likelihoods

LIKELIHOODS = ("bernoulli", "gaussian", "categorical", "discretized_logistic", "continuous_bernoulli")
SHAPES = [(28, 28, 1), (32, 32, 3), (28, 20, 1), (30, 26, 2)]  # The last two are cropped / odd.


def _images(shape, batch=3, seed=0):
  """8-bit grey values k / 255, `[batch, *shape]` float32."""
  levels = np.random.default_rng(seed).integers(0, 256, (batch, *shape))
  return jnp.asarray(levels / 255, jnp.float32)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_encoder_shapes_for_images_and_flat_rows(shape):
  x = _images(shape)
  encoder = vaex.ConvEncoder(latent_dim=5, features=(4, 8), image_shape=shape)
  params = encoder.init(jax.random.key(0), x)
  mean, log_var = encoder.apply(params, x)
  assert mean.shape == log_var.shape == (3, 5)
  flat_mean, flat_log_var = encoder.apply(params, x.reshape(3, -1))
  np.testing.assert_array_equal(flat_mean, mean)
  np.testing.assert_array_equal(flat_log_var, log_var)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_decoder_shapes_and_flat_layout(shape, likelihood):
  z = jax.random.normal(jax.random.key(1), (3, 5))
  decoder = vaex.ConvDecoder(shape, likelihood=likelihood, features=(8, 4))
  params = decoder.init(jax.random.key(0), z)
  out = decoder.apply(params, z)
  extra = (256,) if likelihood == "categorical" else ()
  leaves = jax.tree.leaves(out)
  assert [leaf.shape for leaf in leaves] == [(3, *shape, *extra)] * len(leaves)
  mean = decoder.mean(out)
  assert mean.shape == (3, *shape) and bool(jnp.all((mean >= 0) & (mean <= 1)))
  # flatten=True: the same numbers in the pipeline's rows [batch, H * W * C] (same parameters).
  flat = vaex.ConvDecoder(shape, likelihood=likelihood, features=(8, 4), flatten=True)
  flat_out = flat.apply(params, z)
  for leaf, flat_leaf in zip(leaves, jax.tree.leaves(flat_out)):
    np.testing.assert_array_equal(flat_leaf, leaf.reshape(3, -1, *extra))
  np.testing.assert_array_equal(flat.mean(flat_out), mean.reshape(3, -1))
  assert flat.data_dim == int(np.prod(shape))


def test_decoder_likelihood_attribute_picks_the_functions():
  want = {"bernoulli": densities.bernoulli_log_likelihood,
          "gaussian": densities.gaussian_log_likelihood,
          "categorical": decoders.intensity_categorical_log_likelihood,
          "discretized_logistic": pixel_likelihoods.discretized_logistic_log_likelihood,
          "continuous_bernoulli": pixel_likelihoods.continuous_bernoulli_log_likelihood}
  for likelihood, function in want.items():
    decoder = vaex.ConvDecoder((28, 28, 1), likelihood=likelihood)
    assert decoder.likelihood == likelihood and isinstance(decoder, vaex.ConvDecoder)
    assert type(decoder).log_likelihood is function and decoder.log_likelihood is function
    assert vaex.VAE(vaex.ConvEncoder(), decoder).log_likelihood is function
    assert decoder.clone().likelihood == likelihood  # Flax rebuilds modules from their fields.
  assert type(vaex.ConvDecoder((28, 28, 1), "categorical")).log_likelihood is want["categorical"]


def test_decoder_mean_matches_the_likelihood_family():
  logits = jnp.array([[-3.0, 0.0, 2.0]])
  cases = {"bernoulli": jax.nn.sigmoid(logits),
           "continuous_bernoulli": decoders.continuous_bernoulli_mean(logits),
           "categorical": decoders.categorical_mean(jnp.stack([logits] * 256, -1))}
  for likelihood, want in cases.items():
    decoder = vaex.ConvDecoder((1, 3, 1), likelihood=likelihood)
    params = jnp.stack([logits] * 256, -1) if likelihood == "categorical" else logits
    np.testing.assert_allclose(decoder.mean(params), want, rtol=1e-6)


@pytest.mark.parametrize("shape, likelihood", [((28, 28, 1), name) for name in LIKELIHOODS] + [
    ((32, 32, 3), "categorical"), ((32, 32, 3), "discretized_logistic")], ids=str)
def test_elbo_and_iwae_on_image_shaped_data(shape, likelihood):
  x = _images(shape, batch=4)
  if likelihood == "bernoulli":
    x = jnp.round(x)
  model = vaex.VAE(vaex.ConvEncoder(latent_dim=3, features=(4, 4)),
                   vaex.ConvDecoder(shape, likelihood=likelihood, features=(4, 4)))
  params = model.init(jax.random.key(0), x)
  for estimator, num_samples in (("A", 2), ("B", 1), ("iwae", 3)):
    value = vaex.bound(params, jax.random.key(1), x, model, estimator=estimator,
                       num_samples=num_samples)
    assert value.shape == (4,) and bool(jnp.all(jnp.isfinite(value)))
  # The ELBO with one sample is log p(x|z) - KL: recompute it by hand from the same z.
  mean, log_var = model.apply(params, x, method=vaex.VAE.encode)
  z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(jax.random.key(1), mean.shape)
  log_px = type(model.decoder).log_likelihood(x, model.apply(params, z, method=vaex.VAE.decode))
  by_hand = jnp.sum(log_px.reshape(4, -1), axis=1) - vaex.gaussian_kl(mean, log_var)
  np.testing.assert_allclose(vaex.bound(params, jax.random.key(1), x, model, estimator="B"),
                             by_hand, rtol=1e-5)


@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical"])
def test_training_steps_reduce_the_loss_and_compile_once(likelihood):
  # 8 images: a 10 x 10 square of grey values (1 for the Bernoulli) somewhere on a black ground.
  rng = np.random.default_rng(3)
  x = np.zeros((8, 28, 28, 1), np.float32)
  for image, (i, j) in zip(x, rng.integers(0, 18, (8, 2))):
    image[i:i + 10, j:j + 10] = 1.0 if likelihood == "bernoulli" else rng.integers(128, 256) / 255
  x = jnp.asarray(x)
  model = vaex.VAE(vaex.ConvEncoder(latent_dim=4, features=(4, 8)),
                   vaex.ConvDecoder((28, 28, 1), likelihood=likelihood, features=(8, 4)))
  params = model.init(jax.random.key(0), x)
  optimizer = optax.adam(3e-3)
  opt_state = optimizer.init(params)
  traces = []

  @jax.jit
  def step(params, opt_state, key):
    traces.append(1)
    value, grads = jax.value_and_grad(vaex.loss)(params, key, x, model)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, value

  @jax.jit
  def mean_loss(params):  # The same 16 keys before and after: a paired comparison.
    keys = jax.random.split(jax.random.key(100), 16)
    return jnp.mean(jax.vmap(lambda key: vaex.loss(params, key, x, model))(keys))

  before = mean_loss(params)
  for t in range(30):
    params, opt_state, _ = step(params, opt_state, jax.random.key(t))
  after = mean_loss(params)
  assert len(traces) == 1
  # Measured: 537 -> 373 nats (Bernoulli), 4355 -> 2605 (categorical) after 30 steps.
  assert after < before - 0.15 * abs(before), (before, after)


def test_bad_inputs_are_refused_with_their_fix():
  z = jnp.zeros((2, 3))
  with pytest.raises(ValueError, match=r"`likelihood` of ConvDecoder must be one of .*'poisson'"):
    vaex.ConvDecoder((28, 28, 1), likelihood="poisson")
  with pytest.raises(ValueError, match=r"`image_shape` of ConvDecoder .*\(28, 28\)"):
    vaex.ConvDecoder((28, 28)).init(jax.random.key(0), z)
  with pytest.raises(ValueError, match=r"`features` of ConvDecoder .*\(\)"):
    vaex.ConvDecoder((28, 28, 1), features=()).init(jax.random.key(0), z)
  with pytest.raises(ValueError, match=r"`z` .*\[batch, dim_z\]"):
    vaex.ConvDecoder((28, 28, 1)).init(jax.random.key(0), jnp.zeros((2, 2, 3)))
  with pytest.raises(ValueError, match=r"ConvEncoder takes images .*\(2, 784\).*image_shape"):
    vaex.ConvEncoder().init(jax.random.key(0), jnp.zeros((2, 784)))
  with pytest.raises(ValueError, match=r"ConvEncoder\(image_shape=\(28, 28, 1\)\) .*\(2, 32, 32, 3\)"):
    vaex.ConvEncoder(image_shape=(28, 28, 1)).init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)))


def _conv_config(**overrides):
  config = experiment.default_config()
  config.architecture = "conv"
  config.update(overrides)
  return config


def test_config_builds_flat_conv_models_for_the_pipeline():
  config = _conv_config(latent_dim=3, conv_features=(4, 8), activation="relu")
  model = experiment.build_model(config, 784)
  assert model.encoder.image_shape == (28, 28, 1) and tuple(model.encoder.features) == (4, 8)
  assert tuple(model.decoder.features) == (8, 4) and model.decoder.flatten
  x = jnp.round(_images((28, 28, 1), batch=2)).reshape(2, 784)
  params = model.init(jax.random.key(0), x)
  assert vaex.bound(params, jax.random.key(1), x, model).shape == (2,)
  means = model.apply(params, jnp.zeros((2, 3)), method=vaex.VAE.decoder_mean)
  assert means.shape == (2, 784)  # What run_evaluation.write_images draws.
  with pytest.raises(ValueError, match=r"data_dim=784"):  # vaex.bound's check of flat rows.
    vaex.bound(params, jax.random.key(1), x[:, :700], model)
  with pytest.raises(ValueError, match=r"IMAGE_SHAPES.*data_dim=700"):
    experiment.build_model(config, 700)


@pytest.mark.parametrize("overrides, match", [
    (dict(architecture="transformer"), r"config\.architecture: must be one of \('mlp', 'conv'\)"),
    (dict(conv_features=()), r"config\.conv_features: must be a non-empty tuple"),
    (dict(conv_features=(8, 0)), r"config\.conv_features: .*\(8, 0\)"),
    (dict(paper_init=True), r"config\.paper_init: .*architecture='conv'"),
    (dict(algorithm="wake_sleep"), r"config\.algorithm: .*architecture='conv'"),
])
def test_conv_configs_that_do_not_fit_are_refused(overrides, match):
  with pytest.raises(experiment.ConfigError, match=match):
    experiment.validate_config(_conv_config(**overrides))


def test_conv_needs_a_data_set_with_an_image_shape(monkeypatch):
  monkeypatch.setattr(config_lib, "IMAGE_SHAPES", {})
  with pytest.raises(experiment.ConfigError, match=r"config\.architecture: 'conv' needs the image "
                     r"shape.*'binarized_mnist'.*architecture='mlp'"):
    experiment.validate_config(_conv_config())
  config = _conv_config()
  config.architecture = "mlp"
  experiment.validate_config(config)
