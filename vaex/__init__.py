"""vaex: variational autoencoders in JAX/Flax (distribution `jax-vae`; PyPI's `vaex` is another project).

Kingma & Welling, Auto-Encoding Variational Bayes (2013), as small pure functions: densities, the
reparameterization trick, the SGVB estimators A and B, the importance-weighted bound, and Flax linen
encoders and decoders. Data loading (`vaex.data`), plotting (`vaex.plots`) and the config-driven
training loop (`vaex.experiment`) are opt-in modules.

Conventions, everywhere in the package:

- Prior: `prior=None` is p(z) = N(0, I) (the fast path, closed-form KL); any object with `log_prob`
  may replace it, and a closed form that does not exist is an error, never a silent fallback.
- Variances are natural-log variances: a diagonal Gaussian is `(mean, log_var)`, variance
  `exp(log_var)`, each `[batch, dim_z]` from an encoder.
- Bounds are per example: `elbo`, `iwae_bound` and the likelihoods return `[batch]` in nats; the caller
  reduces. A bound is maximized (higher is better, negative for binary images); `loss` is minus its
  batch mean and is minimized.
- The decoder is called once on all samples, `z: [L * batch, dim_z]`, sample-major (row `l * batch +
  i` is sample `l` of example `i`), never vmapped over samples; samples are `[L, batch, ...]`.
- Randomness: a `jax.random.key` is the first positional argument, e.g. `elbo(key, x, encode,
  decode)`; nothing keeps hidden random state.
- Shapes in docstrings read `x: [batch, 784] float32`.
"""

from vaex._src.bounds import (
    AnnealedIWAE,
    ELBOTerms,
    annealed_iwae,
    elbo,
    elbo_terms,
    iwae_bound,
    log_importance_weights,
)
from vaex._src.checks import check_binary, check_finite
from vaex._src.conv_networks import ConvDecoder, ConvEncoder
from vaex._src.decoders import (
    BernoulliMLPDecoder,
    CategoricalMLPDecoder,
    ContinuousBernoulliMLPDecoder,
    DiscretizedLogisticMLPDecoder,
    GaussianMLPDecoder,
)
from vaex._src.densities import (
    bernoulli_log_likelihood,
    diag_gaussian_log_prob,
    gaussian_kl,
    gaussian_log_likelihood,
    standard_normal_log_prob,
)
from vaex._src.diagnostics import active_units, kl_per_dimension
from vaex._src.distributions import DiagGaussianMixture, FullCovarianceGaussian
from vaex._src.encoders import MLP, FlowMLPEncoder, FullCovarianceMLPEncoder, MLPEncoder
from vaex._src.estimators import GRADIENT_ESTIMATORS
from vaex._src.flows import FlowPosterior
from vaex._src.gradient_snr import gradient_snr
from vaex._src.hmc import HMCInfo, HMCResult, HMCState, hmc_init, hmc_sample, hmc_step
from vaex._src.hmc_marginal_likelihood import hmc_log_likelihood
from vaex._src.marginal_likelihood import importance_sampled_log_likelihood
from vaex._src.mcem import MCEMState, init_mcem_state, make_mcem_step
from vaex._src.pixel_likelihoods import (
    categorical_log_likelihood,
    continuous_bernoulli_log_likelihood,
    discretized_logistic_log_likelihood,
    discretized_logistic_mixture_log_likelihood,
)
from vaex._src.prior_models import MixturePrior, VampPrior
from vaex._src.priors import sample_prior
from vaex._src.reparameterization import reparameterize
from vaex._src.vae import VAE, bound, encoder_decoder, loss, prior_distribution

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "AnnealedIWAE",
    "VAE",
    "BernoulliMLPDecoder",
    "CategoricalMLPDecoder",
    "ContinuousBernoulliMLPDecoder",
    "ConvDecoder",
    "ConvEncoder",
    "DiagGaussianMixture",
    "DiscretizedLogisticMLPDecoder",
    "ELBOTerms",
    "FlowMLPEncoder",
    "FlowPosterior",
    "FullCovarianceGaussian",
    "FullCovarianceMLPEncoder",
    "GRADIENT_ESTIMATORS",
    "GaussianMLPDecoder",
    "HMCInfo",
    "HMCResult",
    "HMCState",
    "MCEMState",
    "MLPEncoder",
    "MixturePrior",
    "VampPrior",
    "active_units",
    "annealed_iwae",
    "bernoulli_log_likelihood",
    "bound",
    "categorical_log_likelihood",
    "check_binary",
    "check_finite",
    "continuous_bernoulli_log_likelihood",
    "diag_gaussian_log_prob",
    "discretized_logistic_log_likelihood",
    "discretized_logistic_mixture_log_likelihood",
    "elbo",
    "elbo_terms",
    "encoder_decoder",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "gradient_snr",
    "hmc_init",
    "hmc_log_likelihood",
    "hmc_sample",
    "hmc_step",
    "importance_sampled_log_likelihood",
    "init_mcem_state",
    "iwae_bound",
    "kl_per_dimension",
    "log_importance_weights",
    "loss",
    "make_mcem_step",
    "prior_distribution",
    "reparameterize",
    "sample_prior",
    "standard_normal_log_prob",
]
