"""p(x|z) in the bounds: one decoder call on all samples, distribution decoders, image-shaped data."""

import distrax
import jax.numpy as jnp
import numpy as np
import pytest

import vaex

pytestmark = pytest.mark.usefixtures("allow_rank_promotion")

BATCH, DIM_Z, H, W = 6, 3, 4, 5


def _data():
  rng = np.random.default_rng(0)
  x = (rng.uniform(size=(BATCH, H, W, 1)) < 0.4).astype(np.float32)
  w_enc = rng.normal(size=(H * W, 2 * DIM_Z)).astype(np.float32) * 0.3
  w_dec = rng.normal(size=(DIM_Z, H * W)).astype(np.float32)
  return x, w_enc, w_dec


def _encode(w_enc):
  def encode(x):
    h = x.reshape(x.shape[0], -1) @ w_enc
    return h[:, :DIM_Z], h[:, DIM_Z:]
  return encode


BOUNDS = {
    "A": lambda k, x, e, d, **kw: vaex.elbo(k, x, e, d, num_samples=3, analytic_kl=False, **kw),
    "B": lambda k, x, e, d, **kw: vaex.elbo(k, x, e, d, num_samples=3, **kw),
    "iwae": lambda k, x, e, d, **kw: vaex.iwae_bound(k, x, e, d, num_samples=3, **kw),
    "log_px": lambda k, x, e, d, **kw: vaex.importance_sampled_log_likelihood(
        k, x, e, d, num_samples=5, chunk_size=2, **kw),
}


@pytest.mark.parametrize("bound", sorted(BOUNDS))
def test_image_shaped_data_equals_the_flattened_computation(variant, key, bound):
  x, w_enc, w_dec = _data()
  encode = _encode(w_enc)
  image = variant(lambda k, x: BOUNDS[bound](
      k, x, encode, lambda z: (z @ w_dec).reshape(z.shape[0], H, W, 1)))(key, x)
  flat = variant(lambda k, x: BOUNDS[bound](k, x, encode, lambda z: z @ w_dec))(
      key, x.reshape(BATCH, -1))
  assert image.shape == (BATCH,)
  np.testing.assert_allclose(image, flat, rtol=1e-6)


@pytest.mark.parametrize("bound", sorted(BOUNDS))
def test_a_distribution_decoder_equals_the_log_likelihood_path(variant, key, bound):
  x, w_enc, w_dec = _data()
  encode = _encode(w_enc)
  x = x.reshape(BATCH, -1)
  with_params = variant(lambda k, x: BOUNDS[bound](k, x, encode, lambda z: z @ w_dec))(key, x)
  with_object = variant(lambda k, x: BOUNDS[bound](
      k, x, encode, lambda z: distrax.Independent(distrax.Bernoulli(logits=z @ w_dec), 1),
      log_likelihood=None))(key, x)
  np.testing.assert_allclose(with_object, with_params, rtol=1e-5)


def test_a_distribution_decoder_on_images_with_a_shared_scale(key):
  """`distrax.Normal(loc, 0.5)` was refused by the old check on the decoder's output leaves."""
  x, w_enc, w_dec = _data()
  decode = lambda z: distrax.Independent(  # noqa: E731
      distrax.Normal((z @ w_dec).reshape(z.shape[0], H, W, 1), 0.5), 3)
  got = vaex.elbo(key, x, _encode(w_enc), decode, log_likelihood=None)
  want = vaex.elbo(key, x, _encode(w_enc), lambda z: (z @ w_dec).reshape(z.shape[0], H, W, 1),
                   log_likelihood=lambda x, m: vaex.gaussian_log_likelihood(
                       x, (m, jnp.full_like(m, 2 * np.log(0.5)))))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_the_decoder_is_called_once_on_all_samples(key):
  x, w_enc, w_dec = _data()
  calls = []

  def decode(z):
    calls.append(z.shape)
    return z @ w_dec

  vaex.iwae_bound(key, x.reshape(BATCH, -1), _encode(w_enc), decode, num_samples=7)
  assert calls == [(7 * BATCH, DIM_Z)]


def test_rows_are_sample_major(key):
  """Row l * batch + i of the decoder's input is sample l of example i: the log-weights match."""
  x, w_enc, w_dec = _data()
  x = x.reshape(BATCH, -1)
  encode = _encode(w_enc)
  log_w = vaex.log_importance_weights(key, x, encode, lambda z: z @ w_dec, num_samples=4)
  mean, log_var = encode(x)
  z = vaex.reparameterize(key, mean, log_var, 4)
  want = (vaex.bernoulli_log_likelihood(jnp.broadcast_to(x, (4, *x.shape)), z @ w_dec)
          + vaex.standard_normal_log_prob(z)
          - vaex.diag_gaussian_log_prob(z, jnp.broadcast_to(mean, z.shape),
                                        jnp.broadcast_to(log_var, z.shape)))
  np.testing.assert_allclose(log_w, want, rtol=1e-6)


def test_elbo_terms_add_up_to_the_elbo(key):
  x, w_enc, w_dec = _data()
  args = (key, x.reshape(BATCH, -1), _encode(w_enc), lambda z: z @ w_dec)
  for analytic_kl in (True, False):
    terms = vaex.elbo_terms(*args, num_samples=3, analytic_kl=analytic_kl)
    assert isinstance(terms, vaex.ELBOTerms)
    np.testing.assert_allclose(terms.reconstruction - terms.kl,
                               vaex.elbo(*args, num_samples=3, analytic_kl=analytic_kl), rtol=1e-6)
  terms = vaex.elbo_terms(*args)
  np.testing.assert_allclose(terms.kl, vaex.gaussian_kl(*_encode(w_enc)(args[1])), rtol=1e-6)
  assert np.all(terms.kl > 0) and np.all(terms.reconstruction < 0)


@pytest.mark.parametrize(
    "decode, log_likelihood, error, words",
    [
        # One value for the whole batch, not one per example.
        (lambda z: z @ np.ones((DIM_Z, 20), np.float32),
         lambda x, logits: jnp.sum(vaex.bernoulli_log_likelihood(x, logits)), ValueError,
         ["one value per example", "(18,)", "got array of shape ()"]),
        # Per-example values of the wrong length.
        (lambda z: z @ np.ones((DIM_Z, 20), np.float32),
         lambda x, logits: vaex.bernoulli_log_likelihood(x, logits)[:5], ValueError,
         ["one value per example", "(5,)"]),
        # A decoder that returns a different number of rows than it was given.
        (lambda z: distrax.Independent(distrax.Bernoulli(logits=jnp.zeros((4, 20))), 1), None,
         ValueError, ["batch shape (4,)", "18", "L * batch"]),
        (lambda z: jnp.zeros((4, 20)), vaex.bernoulli_log_likelihood, ValueError,
         ["decode(z)", "(4, 20)", "(18, 20)"]),
        # Parameters with log_likelihood=None, and a distribution with a parameter likelihood.
        (lambda z: jnp.zeros((z.shape[0], 20)), None, TypeError,
         ["log_likelihood=None", "log_prob", "vaex.bernoulli_log_likelihood"]),
        (lambda z: distrax.Independent(distrax.Bernoulli(logits=jnp.zeros((z.shape[0], 20))), 1),
         vaex.bernoulli_log_likelihood, TypeError, ["distribution object", "log_likelihood=None"]),
    ],
)
def test_bad_decoders_and_likelihoods(key, decode, log_likelihood, error, words):
  x, w_enc, _ = _data()
  with pytest.raises(error) as info:
    vaex.elbo(key, x.reshape(BATCH, -1), _encode(w_enc), decode, log_likelihood=log_likelihood,
              num_samples=3)
  for word in words:
    assert word in str(info.value), (word, str(info.value))
