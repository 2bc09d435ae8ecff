"""Opt-in plotting (needs matplotlib: `pip install 'vaex[plots]'`)."""

from vaex._src.plots import (
    image_grid,
    latent_manifold_grid,
    save_image_grid,
    save_latent_manifold,
    save_marginal_likelihood_curves,
    save_snr_curves,
)

__all__ = ["image_grid", "latent_manifold_grid", "save_image_grid", "save_latent_manifold",
           "save_marginal_likelihood_curves", "save_snr_curves"]
