"""vaex: variational autoencoders in JAX/Flax.

Kingma & Welling, Auto-Encoding Variational Bayes (2013), as small pure functions: densities, the
reparameterization trick, the SGVB estimators A and B, the importance-weighted bound, and Flax linen
encoders and decoders. Data loading (`vaex.data`) and plotting (`vaex.plots`) are opt-in modules.
"""

from vaex._src.bounds import ELBOTerms, elbo, elbo_terms, iwae_bound, log_importance_weights
from vaex._src.checks import check_binary, check_finite
from vaex._src.decoders import BernoulliMLPDecoder, GaussianMLPDecoder
from vaex._src.densities import (
    bernoulli_log_likelihood,
    diag_gaussian_log_prob,
    gaussian_kl,
    gaussian_log_likelihood,
    standard_normal_log_prob,
)
from vaex._src.diagnostics import active_units, kl_per_dimension
from vaex._src.encoders import MLP, MLPEncoder
from vaex._src.estimators import GRADIENT_ESTIMATORS
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
from vaex._src.priors import sample_prior
from vaex._src.reparameterization import reparameterize
from vaex._src.vae import VAE, bound, encoder_decoder, loss

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "VAE",
    "BernoulliMLPDecoder",
    "ELBOTerms",
    "GRADIENT_ESTIMATORS",
    "GaussianMLPDecoder",
    "HMCInfo",
    "HMCResult",
    "HMCState",
    "MCEMState",
    "MLPEncoder",
    "active_units",
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
    "reparameterize",
    "sample_prior",
    "standard_normal_log_prob",
]
