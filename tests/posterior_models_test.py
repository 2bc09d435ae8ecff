"""Full-covariance and flow posteriors: densities against scipy / float64 references, in the bounds."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import vaex
from vaex._src import flows

BATCH, DIM, HIDDEN = 3, 4, 16


def _full_cov(key, batch=BATCH, dim=DIM):
  k1, k2, k3 = jax.random.split(key, 3)
  loc = jax.random.normal(k1, (batch, dim))
  tril = jnp.tril(0.5 * jax.random.normal(k2, (batch, dim, dim)), -1)
  diag = jnp.exp(0.3 * jax.random.normal(k3, (batch, dim)))
  return vaex.FullCovarianceGaussian(loc, tril + jax.vmap(jnp.diag)(diag))


def test_full_covariance_log_prob_matches_scipy(key, variant):
  q = _full_cov(key)
  z, log_q = variant(lambda q, k: q.sample_and_log_prob(seed=k, sample_shape=(5,)))(
      q, jax.random.key(1))
  assert z.shape == (5, BATCH, DIM) and log_q.shape == (5, BATCH)
  cov = np.asarray(q.covariance(), np.float64)
  for b in range(BATCH):
    expected = stats.multivariate_normal(np.asarray(q.loc[b], np.float64), cov[b]).logpdf(
        np.asarray(z[:, b], np.float64))
    np.testing.assert_allclose(log_q[:, b], expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(variant(lambda q, z: q.log_prob(z))(q, z)[:, b], expected,
                               rtol=1e-5, atol=1e-4)
  assert q.batch_shape == (BATCH,) and q.event_shape == (DIM,)
  np.testing.assert_array_equal(q.mean(), q.loc)


def test_full_covariance_sample_moments(key):
  q = _full_cov(key, batch=1, dim=3)
  n = 100_000
  z = np.asarray(q.sample(seed=jax.random.key(2), sample_shape=(n,))[:, 0], np.float64)
  cov = np.asarray(q.covariance()[0], np.float64)
  se_mean = np.sqrt(np.diag(cov) / n)
  np.testing.assert_array_less(np.abs(z.mean(0) - np.asarray(q.loc[0])), 4 * se_mean)
  # Var of a sample covariance entry: (S_ij^2 + S_ii S_jj) / n.
  se_cov = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)
  np.testing.assert_array_less(np.abs(np.cov(z, rowvar=False) - cov), 4 * se_cov)


def test_full_covariance_kl_to_standard_normal_closed_form(key):
  q = _full_cov(key)
  cov = np.asarray(q.covariance(), np.float64)
  mu = np.asarray(q.loc, np.float64)
  expected = [0.5 * (np.trace(c) + m @ m - DIM - np.linalg.slogdet(c)[1]) for m, c in zip(mu, cov)]
  np.testing.assert_allclose(q.kl_to_standard_normal(), expected, rtol=1e-5)
  # And as E_q[log q - log p] by Monte Carlo, within 4 standard errors.
  z, log_q = q.sample_and_log_prob(seed=jax.random.key(3), sample_shape=(50_000,))
  diff = np.asarray(log_q - vaex.standard_normal_log_prob(z), np.float64)
  assert np.all(np.abs(diff.mean(0) - expected) < 4 * diff.std(0) / np.sqrt(len(diff)))


def test_estimator_b_takes_the_full_covariance_closed_form_kl(key):
  x = (jax.random.uniform(key, (BATCH, 12)) < 0.5).astype(jnp.float32)
  q = _full_cov(key)
  decode = vaex.BernoulliMLPDecoder(data_dim=12, hidden_sizes=(HIDDEN,))
  dec_params = decode.init(key, q.loc)
  terms = vaex.elbo_terms(jax.random.key(4), x, lambda _: q, lambda z: decode.apply(dec_params, z),
                          num_samples=2, analytic_kl=True)
  np.testing.assert_allclose(terms.kl, q.kl_to_standard_normal(), rtol=1e-6)
  with pytest.raises(ValueError, match="analytic_kl=False"):  # Against another prior: none.
    vaex.elbo(key, x, lambda _: q, lambda z: decode.apply(dec_params, z), analytic_kl=True,
              prior=vaex.DiagGaussianMixture(jnp.zeros(2), jnp.zeros((2, DIM)), jnp.zeros((2, DIM))))


def test_full_covariance_encoder_output_and_gradients(key):
  x = (jax.random.uniform(key, (BATCH, 12)) < 0.5).astype(jnp.float32)
  enc = vaex.FullCovarianceMLPEncoder(latent_dim=DIM, hidden_sizes=(HIDDEN,))
  params = enc.init(key, x)
  q = enc.apply(params, x)
  assert q.loc.shape == (BATCH, DIM) and q.scale_tril.shape == (BATCH, DIM, DIM)
  np.testing.assert_array_equal(np.triu(np.asarray(q.scale_tril), 1), 0.0)
  assert np.all(np.diagonal(np.asarray(q.scale_tril), axis1=1, axis2=2) > 0)
  assert params["params"]["tril_head"]["kernel"].shape == (HIDDEN, DIM * (DIM - 1) // 2)
  # Every parameter (the strictly-lower head too) gets a gradient from estimator A.
  model = vaex.VAE(enc, vaex.BernoulliMLPDecoder(data_dim=12, hidden_sizes=(HIDDEN,)))
  params = model.init(key, x)
  grads = jax.jit(jax.grad(lambda p: vaex.loss(p, jax.random.key(1), x, model, estimator="A")))(params)
  assert float(jnp.abs(grads["params"]["encoder"]["tril_head"]["kernel"]).sum()) > 0


def _np_flow_log_prob(q, z):
  """log q(z) by hand, float64 numpy: invert the couplings (last first), then the base density."""
  f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
  y = f64(z)
  context = f64(q.context)
  log_det_total = np.zeros(y.shape[:-1])
  for step in reversed(range(q.num_flows)):
    p = {k: f64(v) for k, v in q.flow_params[step].items()}
    mask = np.arange(DIM) % 2 == step % 2
    masked = np.where(mask, y, 0.0)
    ctx = np.broadcast_to(context, (*y.shape[:-1], context.shape[-1]))
    h = np.tanh(np.concatenate([masked, ctx], -1) @ p["w_hidden"] + p["b_hidden"])
    out = h @ p["w_out"] + p["b_out"]
    shift, log_scale = out[..., :DIM], np.tanh(out[..., DIM:])
    x = np.where(mask, y, (y - shift) * np.exp(-log_scale))
    log_det_total += np.sum(np.where(mask, 0.0, log_scale), -1)  # log |det| of the forward step
    y = x
  loc, var = f64(q.loc), np.exp(f64(q.log_var))
  base = np.sum(-0.5 * (np.log(2 * np.pi * var) + (y - loc) ** 2 / var), -1)
  return base - log_det_total


def _random_flow_posterior(key, num_flows):
  x = jax.random.uniform(key, (BATCH, 12))
  enc = vaex.FlowMLPEncoder(latent_dim=DIM, hidden_sizes=(HIDDEN,), num_flows=num_flows,
                            flow_hidden_size=8, context_dim=5)
  params = enc.init(key, x)
  # Non-zero output layers, so that every coupling does something.
  params = jax.tree_util.tree_map_with_path(
      lambda path, v: 0.5 * jax.random.normal(jax.random.fold_in(key, len(str(path))), v.shape)
      if "w_out" in str(path) or "b_out" in str(path) else v, params)
  return enc.apply(params, x)


def test_flow_log_prob_matches_change_of_variables(key, variant):
  q = _random_flow_posterior(key, num_flows=3)
  assert isinstance(q, vaex.FlowPosterior) and q.batch_shape == (BATCH,) and q.event_shape == (DIM,)
  z, log_q = variant(lambda q, k: q.sample_and_log_prob(seed=k, sample_shape=(6,)))(
      q, jax.random.key(1))
  assert z.shape == (6, BATCH, DIM) and log_q.shape == (6, BATCH)
  expected = _np_flow_log_prob(q, z)
  np.testing.assert_allclose(log_q, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(variant(lambda q, z: q.log_prob(z))(q, z), expected, rtol=1e-4, atol=1e-4)


def test_flow_sampling_pushes_the_base_forward(key):
  """The samples are the base sample through the couplings, step 0 first (float64 numpy)."""
  q = _random_flow_posterior(key, num_flows=2)
  z = np.asarray(q.sample(seed=jax.random.key(5), sample_shape=(4,)), np.float64)
  base = vaex.FlowPosterior(q.loc, q.log_var, q.context, ())
  y = np.asarray(base.sample(seed=jax.random.key(5), sample_shape=(4,)), np.float64)
  for step in range(2):
    p = {k: np.asarray(v, np.float64) for k, v in q.flow_params[step].items()}
    mask = np.asarray(flows.coupling_mask(step, DIM))
    ctx = np.broadcast_to(np.asarray(q.context, np.float64), (*y.shape[:-1], q.context.shape[-1]))
    h = np.tanh(np.concatenate([np.where(mask, y, 0.0), ctx], -1) @ p["w_hidden"] + p["b_hidden"])
    out = h @ p["w_out"] + p["b_out"]
    y = np.where(mask, y, y * np.exp(np.tanh(out[..., DIM:])) + out[..., :DIM])
  np.testing.assert_allclose(z, y, rtol=1e-4, atol=1e-5)


def test_flow_with_zero_steps_is_the_diagonal_gaussian(key):
  x = jax.random.uniform(key, (BATCH, 12))
  flow = vaex.FlowMLPEncoder(latent_dim=DIM, hidden_sizes=(HIDDEN,), num_flows=0)
  params = flow.init(key, x)
  q = flow.apply(params, x)
  diag = vaex.MLPEncoder(latent_dim=DIM, hidden_sizes=(HIDDEN,))
  mean, log_var = diag.apply({"params": {k: params["params"][k] for k in ("mlp", "gaussian_head")}}, x)
  np.testing.assert_allclose(q.loc, mean, rtol=1e-6)
  z, log_q = q.sample_and_log_prob(seed=jax.random.key(1), sample_shape=(3,))
  np.testing.assert_allclose(log_q, vaex.diag_gaussian_log_prob(
      z, jnp.broadcast_to(mean, z.shape), jnp.broadcast_to(log_var, z.shape)), rtol=1e-5)
  z_diag = vaex.reparameterize(jax.random.key(1), mean, log_var, 3)
  assert z_diag.shape == z.shape


def _flow_model(num_flows=2):
  enc = vaex.FlowMLPEncoder(latent_dim=DIM, hidden_sizes=(HIDDEN,), num_flows=num_flows,
                            flow_hidden_size=8, context_dim=5)
  return vaex.VAE(enc, vaex.BernoulliMLPDecoder(data_dim=12, hidden_sizes=(HIDDEN,)))


def test_flow_bounds_and_jitted_gradients(key):
  x = (jax.random.uniform(key, (BATCH, 12)) < 0.5).astype(jnp.float32)
  model = _flow_model()
  params = model.init(key, x)
  encode, decode = vaex.encoder_decoder(model, params)
  for fn in (lambda k: vaex.elbo(k, x, encode, decode, analytic_kl=False, num_samples=2),
             lambda k: vaex.iwae_bound(k, x, encode, decode, num_samples=5)):
    values = jax.jit(fn)(jax.random.key(1))
    assert values.shape == (BATCH,) and np.all(np.isfinite(values)) and np.all(values < 0)
  # IWAE-k increases with k in expectation (mean over many keys, 4 standard errors).
  keys = jax.random.split(jax.random.key(2), 200)
  iwae = lambda k, n: vaex.iwae_bound(k, x, encode, decode, num_samples=n).mean()  # noqa: E731
  b1 = np.asarray(jax.jit(jax.vmap(lambda k: iwae(k, 1)))(keys))
  b20 = np.asarray(jax.jit(jax.vmap(lambda k: iwae(k, 20)))(keys))
  assert (b20 - b1).mean() > -4 * (b20 - b1).std() / math.sqrt(len(keys))
  grads = jax.jit(jax.grad(lambda p: vaex.loss(p, jax.random.key(3), x, model, estimator="iwae",
                                               num_samples=3)))(params)
  enc_grads = grads["params"]["encoder"]
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert float(jnp.abs(enc_grads["flow_1_w_out"]).sum()) > 0  # The flow itself is trained.


def test_analytic_kl_refuses_the_flow(key):
  x = (jax.random.uniform(key, (BATCH, 12)) < 0.5).astype(jnp.float32)
  model = _flow_model()
  params = model.init(key, x)
  with pytest.raises(ValueError, match=r"closed form.*FlowPosterior.*analytic_kl=False"):
    vaex.loss(params, key, x, model, estimator="B")


def test_flow_works_with_stl_and_dreg(key):
  x = (jax.random.uniform(key, (BATCH, 12)) < 0.5).astype(jnp.float32)
  model = _flow_model()
  params = model.init(key, x)
  bound = jax.jit(lambda est, k, g: vaex.bound(params, key, x, model, estimator=est, num_samples=k,
                                               gradient_estimator=g), static_argnums=(0, 1, 2))
  np.testing.assert_allclose(bound("A", 2, "stl"), bound("A", 2, "reparameterization"), rtol=1e-5)
  np.testing.assert_allclose(bound("iwae", 4, "dreg"), bound("iwae", 4, "reparameterization"),
                             rtol=1e-5)


def test_flow_encoder_rejects_negative_num_flows(key):
  with pytest.raises(ValueError, match="num_flows.*>= 0.*-1"):
    vaex.FlowMLPEncoder(latent_dim=DIM, num_flows=-1).init(key, jnp.zeros((1, 12)))


def test_import_vaex_does_not_import_distrax_for_the_flow():
  import subprocess
  import sys
  code = "import sys, vaex; vaex.FlowMLPEncoder; assert 'distrax' not in sys.modules"
  subprocess.run([sys.executable, "-c", code], check=True)
