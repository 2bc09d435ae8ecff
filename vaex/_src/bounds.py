"""Per-example variational bounds on log p(x): the SGVB estimators A and B, and the IWAE bound.

Conventions shared by every bound here:
  * `x: [batch, ...]`, floating, of any rank; everything is summed over the non-batch axes.
  * `encode(x)` returns q(z|x): a pair `(mean, log_var)`, each `[batch, dim_z]` (a diagonal Gaussian,
    natural-log variances; the fast path), or a distribution object with the distrax protocol
    (`sample_and_log_prob(seed=, sample_shape=)`, `log_prob`), batch shape `[batch]`, event last.
    See `vaex._src.posteriors`.
  * `prior`: None is p(z) = N(0, I) (the fast path); otherwise any object with `log_prob(z)` over the
    latent event, e.g. a `distrax.MixtureSameFamily`. See `vaex._src.priors`.
  * `decode(z)` is called once on all L samples of all examples, `z: [L * batch, *event]`
    (sample-major), and returns the parameters of p(x|z), scored by `log_likelihood(x, params)`
    (logits for `vaex.bernoulli_log_likelihood`, `(mean, log_var)` for
    `vaex.gaussian_log_likelihood`), or, with `log_likelihood=None`, a distribution whose
    `log_prob(x)` is used. See `vaex._src.likelihoods`.
  * `encode`/`decode` are any JAX-traceable callables: `functools.partial(module.apply, params)`, a
    bound method of a bound Flax module, an NNX or equinox module, or a closure over parameters being
    differentiated.
  * The result is one value per example, `[batch]`, in nats; the caller reduces.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from vaex._src import checks, densities, divergences, estimators, likelihoods, posteriors, priors

Encoder = Callable[[jax.Array], Any]
Decoder = Callable[[jax.Array], Any]
LogLikelihood = likelihoods.LogLikelihood


class ELBOTerms(NamedTuple):
  """The two terms of the ELBO, each `[batch]` in nats: `elbo = reconstruction - kl`.

  Attributes:
    reconstruction: 1/L sum_l log p(x|z_l), z_l ~ q(z|x).
    kl: KL(q(z|x) || p(z)): in closed form for estimator B, or the Monte Carlo estimate
      1/L sum_l [log q(z_l|x) - log p(z_l)] with the same samples for estimator A.
  """

  reconstruction: jax.Array
  kl: jax.Array


def _check_inputs(key: jax.Array, x: jax.Array, num_samples: int, prior: Any) -> int:
  checks.check_key(key)
  checks.check_floating(x, "x")
  if x.ndim < 2:
    checks.check_rank(x, "x", 2, "[batch, ...]")
  priors.check_prior(prior)
  return checks.check_positive_int(num_samples, "num_samples")


def _log_joint_and_posterior(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    log_likelihood: LogLikelihood | None,
    prior: Any,
    num_samples: int,
    gradient_estimator: str = "reparameterization",
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(log p(x|z_l), log p(z_l), log q(z_l|x)), each `[num_samples, batch]`, z_l ~ q(z|x).

  With "stl" or "dreg", log q is evaluated with q's parameters stopped (z keeps its path derivative).
  """
  q = posteriors.encode_posterior(encode, x)
  if gradient_estimator == "reparameterization":
    z, log_qz = posteriors.sample_posterior(key, q, num_samples, x.shape[0], with_log_prob=True)
  else:
    z, _ = posteriors.sample_posterior(key, q, num_samples, x.shape[0], with_log_prob=False)
    log_qz = estimators.path_log_prob(q, z)
  log_px_z = likelihoods.reconstruction_log_likelihood(x, z, decode, log_likelihood)
  return log_px_z, priors.prior_log_prob(prior, z), log_qz


class AnnealedIWAE(NamedTuple):
  """The IWAE objective with a weighted log-ratio, and diagnostics, each `[batch]` in nats.

  Attributes:
    objective: log 1/k sum_i exp(log p(x|z_i) + beta [log p(z_i) - log q(z_i|x)]), with the gradient
      of the chosen estimator; `vaex.iwae_bound` with `kl_weight=beta`.
    bound: the IWAE bound itself (beta = 1) on the same samples, stopped.
    kl: 1/k sum_i [log q(z_i|x) - log p(z_i)], estimator A's estimate of KL(q(z|x) || p(z)), stopped.
  """

  objective: jax.Array
  bound: jax.Array
  kl: jax.Array


def _is_one(kl_weight: float | jax.Array) -> bool:
  return isinstance(kl_weight, numbers.Real) and kl_weight == 1.0


def _check_kl_weight(kl_weight: float | jax.Array) -> None:
  if isinstance(kl_weight, numbers.Real) and not kl_weight >= 0:
    raise ValueError(
        f"`kl_weight` must be >= 0; got {kl_weight!r}. It weighs the KL term: 1.0 is the ELBO, "
        "values below 1 favour reconstruction, above 1 a beta-VAE."
    )


def _log_mean_exp(log_w: jax.Array) -> jax.Array:
  return jax.nn.logsumexp(log_w, axis=0) - math.log(log_w.shape[0])


def _log_weights(log_px_z: jax.Array, log_pz: jax.Array, log_qz: jax.Array,
                 kl_weight: float | jax.Array) -> jax.Array:
  """log p(x|z) + beta [log p(z) - log q(z|x)]; with beta = 1 summed as `log_importance_weights`."""
  if _is_one(kl_weight):
    return log_px_z + log_pz - log_qz
  return log_px_z + kl_weight * (log_pz - log_qz)


def _with_diagnostics(objective: jax.Array, log_px_z: jax.Array, log_pz: jax.Array,
                      log_qz: jax.Array) -> AnnealedIWAE:
  """`objective` with the IWAE bound and the KL estimate of the same `[k, batch]` terms, stopped."""
  log_px_z, log_pz, log_qz = jax.lax.stop_gradient((log_px_z, log_pz, log_qz))
  return AnnealedIWAE(objective, _log_mean_exp(_log_weights(log_px_z, log_pz, log_qz, 1.0)),
                      jnp.mean(log_qz - log_pz, axis=0))


def _dreg_annealed_iwae(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    log_likelihood: LogLikelihood | None,
    prior: Any,
    num_samples: int,
    kl_weight: float | jax.Array,
) -> AnnealedIWAE:
  """The (annealed) IWAE bound in value, with the doubly reparameterized gradient (see `estimators`).

  With log w_i = log p(x|z_i) + beta [log p(z_i) - log q(z_i|x)] and w~ their normalized weights, the
  path derivative of sample i is weighted by (1 - beta) w~_i + beta w~_i^2: the score term of q in
  log w_i is -beta w~_i d log q / dphi, and E[w~_i d log q(z_i) / dphi] = E[dw~_i/dz_i dz_i/dphi]
  with dw~_i/dz_i = w~_i (1 - w~_i) d log w_i / dz_i. beta = 1 is DReG (w~_i^2), beta = 0 the plain
  reparameterization gradient of a q-free objective, and k = 1 is STL.
  """
  q = posteriors.encode_posterior(encode, x)
  z, _ = posteriors.sample_posterior(key, q, num_samples, x.shape[0], with_log_prob=False)

  def log_weight_terms(z):
    log_px_z = likelihoods.reconstruction_log_likelihood(x, z, decode, log_likelihood)
    return log_px_z, priors.prior_log_prob(prior, z), estimators.path_log_prob(q, z)

  # A forward-only decoder call gives the normalized weights; the second call carries the gradients.
  log_px_z, log_pz, log_qz = jax.lax.stop_gradient(log_weight_terms(jax.lax.stop_gradient(z)))
  weights = estimators.normalized_weights(_log_weights(log_px_z, log_pz, log_qz, kl_weight))
  scale = weights if _is_one(kl_weight) else (1.0 - kl_weight) + kl_weight * weights
  log_w = _log_weights(*log_weight_terms(estimators.scale_path_gradient(z, scale)), kl_weight)
  objective = estimators.with_value_of(_log_mean_exp(log_w), jnp.sum(weights * log_w, axis=0))
  return _with_diagnostics(objective, log_px_z, log_pz, log_qz)


def annealed_iwae(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    *,
    log_likelihood: LogLikelihood | None = densities.bernoulli_log_likelihood,
    prior: Any = None,
    num_samples: int,
    gradient_estimator: str = "reparameterization",
    kl_weight: float | jax.Array = 1.0,
) -> AnnealedIWAE:
  """`vaex.iwae_bound` with `kl_weight` (the objective), the IWAE bound and the KL estimate.

  For training with a KL warm-up on the IWAE bound: the objective carries the gradient, the bound and
  the KL (stopped, from the same samples and decoder calls) are what is reported.
  """
  gradient_estimator = estimators.check_gradient_estimator(gradient_estimator, bound="iwae")
  _check_kl_weight(kl_weight)
  num_samples = _check_inputs(key, x, num_samples, prior)
  if gradient_estimator == "dreg":
    return _dreg_annealed_iwae(key, x, encode, decode, log_likelihood, prior, num_samples, kl_weight)
  log_px_z, log_pz, log_qz = _log_joint_and_posterior(
      key, x, encode, decode, log_likelihood, prior, num_samples)
  objective = _log_mean_exp(_log_weights(log_px_z, log_pz, log_qz, kl_weight))
  return _with_diagnostics(objective, log_px_z, log_pz, log_qz)


def log_importance_weights(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    *,
    log_likelihood: LogLikelihood | None = densities.bernoulli_log_likelihood,
    prior: Any = None,
    num_samples: int = 1,
    score_term: bool = True,
) -> jax.Array:
  """The log importance weights log p(x, z_l) - log q(z_l|x), z_l ~ q(z|x): `[num_samples, batch]`.

  The building block of every sampling-based bound: their mean over the sample axis is estimator A
  of the ELBO, their `logsumexp - log L` is the IWAE bound, and softmax over the sample axis gives
  the normalized importance weights (e.g. for a gradient estimator of your own).

  Args:
    key: a `jax.random.key` for the samples.
    x: `[batch, ...]` floating data.
    encode: `x -> (mean, log_var)` (each `[batch, dim_z]`) or a distribution over z.
    decode: `z: [L * batch, *event] -> params of p(x|z)` (or a distribution, with
      `log_likelihood=None`).
    log_likelihood: `(x, params) -> [L * batch]` (or per-element values over leading data axes),
      e.g. `vaex.bernoulli_log_likelihood`; None scores x with `decode(z).log_prob`.
    prior: None for N(0, I), or an object with `log_prob(z)`.
    num_samples: L (Python int >= 1).
    score_term: False differentiates log q(z_l|x) only along z_l's path, dropping the score term
      of q's parameters: the log-weights of STL and DReG. The values are the same.

  Returns:
    `[num_samples, batch]` log-weights in nats.
  """
  num_samples = _check_inputs(key, x, num_samples, prior)
  log_px_z, log_pz, log_qz = _log_joint_and_posterior(
      key, x, encode, decode, log_likelihood, prior, num_samples,
      "reparameterization" if score_term else "stl",
  )
  return log_px_z + log_pz - log_qz


def elbo_terms(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    *,
    log_likelihood: LogLikelihood | None = densities.bernoulli_log_likelihood,
    prior: Any = None,
    num_samples: int = 1,
    analytic_kl: bool = True,
    gradient_estimator: str = "reparameterization",
) -> ELBOTerms:
  """The ELBO's reconstruction and KL terms separately, each `[batch]`: see `vaex.elbo`.

  `vaex.elbo(...)` equals `terms.reconstruction - terms.kl` for the same arguments (estimator A in
  `vaex.elbo` sums the log-weights directly, so the two agree to float32 rounding).

  Returns:
    `ELBOTerms(reconstruction, kl)`, each `[batch]` in nats.
  """
  num_samples = _check_inputs(key, x, num_samples, prior)
  gradient_estimator = estimators.check_gradient_estimator(
      gradient_estimator, bound="elbo", analytic_kl=analytic_kl
  )
  if analytic_kl:
    q = posteriors.encode_posterior(encode, x)
    kl = divergences.analytic_kl(q, prior)
    z, _ = posteriors.sample_posterior(key, q, num_samples, x.shape[0], with_log_prob=False)
    log_px_z = likelihoods.reconstruction_log_likelihood(x, z, decode, log_likelihood)
    return ELBOTerms(jnp.mean(log_px_z, axis=0), kl)
  log_px_z, log_pz, log_qz = _log_joint_and_posterior(
      key, x, encode, decode, log_likelihood, prior, num_samples, gradient_estimator
  )
  return ELBOTerms(jnp.mean(log_px_z, axis=0), jnp.mean(log_qz - log_pz, axis=0))


def elbo(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    *,
    log_likelihood: LogLikelihood | None = densities.bernoulli_log_likelihood,
    prior: Any = None,
    num_samples: int = 1,
    analytic_kl: bool = True,
    gradient_estimator: str = "reparameterization",
    kl_weight: float | jax.Array = 1.0,
) -> jax.Array:
  """The SGVB estimate of the evidence lower bound, one value per example.

  Kingma & Welling (2013), Section 2.3:

  * `analytic_kl=True`, estimator B (eq. 7): -KL(q(z|x) || p(z)) + 1/L sum_l log p(x|z_l). The KL
    is in closed form: `vaex.gaussian_kl` for `(mean, log_var)` against N(0, I), otherwise the KL
    distrax registers for the pair. Where none exists (a flow posterior, a mixture prior) a
    ValueError says so: use estimator A.
  * `analytic_kl=False`, estimator A (eq. 6): 1/L sum_l [log p(x, z_l) - log q(z_l|x)].

  Both are unbiased for the ELBO; B usually has lower variance.

  Args:
    key: a `jax.random.key` for the L samples z_l ~ q(z|x).
    x: `[batch, ...]` floating data (e.g. `[batch, 784]` or `[batch, 28, 28, 1]`).
    encode: `x -> (mean, log_var)`, each `[batch, dim_z]`, or a distribution object over z with
      batch shape `[batch]` (e.g. `distrax.MultivariateNormalTri`).
    decode: `z: [L * batch, dim_z] -> params of p(x|z)` (or a distribution, with
      `log_likelihood=None`); called once on all samples.
    log_likelihood: `(x, params) -> [L * batch]`, e.g. `vaex.bernoulli_log_likelihood`; None uses
      `decode(z).log_prob(x)`.
    prior: None for p(z) = N(0, I), or an object with `log_prob(z)` (e.g. a
      `distrax.MixtureSameFamily`).
    num_samples: L, samples per example (Python int >= 1).
    analytic_kl: estimator B if True, estimator A if False.
    gradient_estimator: "reparameterization" (default), or "stl" (sticking the landing, Roeder et
      al. 2017; estimator A only): log q(z|x) with q's parameters stopped, same value, lower-variance
      unbiased gradient. "dreg" is for `vaex.iwae_bound`.
    kl_weight: beta, the weight of the KL term (Higgins et al. 2017): `reconstruction - beta * KL`;
      1.0 is the ELBO, 0.0 a pure reconstruction objective. A float >= 0 or a traced scalar (a KL
      warm-up schedule).

  Returns:
    `[batch]` ELBO estimates in nats (to be maximized).
  """
  _check_kl_weight(kl_weight)
  unweighted = _is_one(kl_weight)
  if analytic_kl or not unweighted:
    terms = elbo_terms(key, x, encode, decode, log_likelihood=log_likelihood, prior=prior,
                       num_samples=num_samples, analytic_kl=analytic_kl,
                       gradient_estimator=gradient_estimator)
    return terms.reconstruction - (terms.kl if unweighted else kl_weight * terms.kl)
  gradient_estimator = estimators.check_gradient_estimator(gradient_estimator, bound="elbo")
  log_w = log_importance_weights(key, x, encode, decode, log_likelihood=log_likelihood, prior=prior,
                                 num_samples=num_samples,
                                 score_term=gradient_estimator == "reparameterization")
  return jnp.mean(log_w, axis=0)


def iwae_bound(
    key: jax.Array,
    x: jax.Array,
    encode: Encoder,
    decode: Decoder,
    *,
    log_likelihood: LogLikelihood | None = densities.bernoulli_log_likelihood,
    prior: Any = None,
    num_samples: int,
    gradient_estimator: str = "reparameterization",
    kl_weight: float | jax.Array = 1.0,
) -> jax.Array:
  """The importance-weighted bound of Burda et al. (2015), one value per example.

  log (1/k sum_k p(x, z_k) / q(z_k|x)) with z_k ~ q(z|x), computed with `logsumexp` of
  `vaex.log_importance_weights`. It is a lower bound on log p(x) that tightens as k grows; k = 1 is
  estimator A of the ELBO.

  Args:
    key: a `jax.random.key` for the k samples.
    x: `[batch, ...]` floating data.
    encode: `x -> (mean, log_var)`, each `[batch, dim_z]`, or a distribution object over z.
    decode: `z: [k * batch, dim_z] -> params of p(x|z)` (or a distribution, with
      `log_likelihood=None`).
    log_likelihood: `(x, params) -> [k * batch]`; None uses `decode(z).log_prob(x)`.
    prior: None for N(0, I), or an object with `log_prob(z)`.
    num_samples: k, importance samples per example (Python int >= 1).
    gradient_estimator: "reparameterization" (default), or "dreg" (doubly reparameterized,
      Tucker et al. 2019): same value; the encoder's gradient from the squared normalized weights
      times the path derivative (a higher signal-to-noise ratio than the IWAE gradient's), the decoder's
      exactly the IWAE gradient. DReG calls the decoder twice (once forward-only).
    kl_weight: beta, the weight of each importance weight's log-ratio log p(z_k) - log q(z_k|x):
      log 1/k sum_k exp(log p(x|z_k) + beta [log p(z_k) - log q(z_k|x)]). 1.0 is the IWAE bound;
      with k = 1 it is `vaex.elbo(analytic_kl=False, kl_weight=beta)`. Below 1 it is not a bound on
      log p(x): it is the IWAE counterpart of a KL warm-up (a float >= 0 or a traced scalar). With
      "dreg" the path derivatives are weighted by (1 - beta) w~ + beta w~^2.

  Returns:
    `[batch]` bound values in nats.
  """
  # The stopped diagnostics of `annealed_iwae` are unused here; under jit XLA drops them.
  return annealed_iwae(key, x, encode, decode, log_likelihood=log_likelihood, prior=prior,
                       num_samples=num_samples, gradient_estimator=gradient_estimator,
                       kl_weight=kl_weight).objective
