"""Opt-in plotting (needs matplotlib: `pip install 'jax-vae[plots]'`)."""

from vaex._src.plots import (
    grid_zoom,
    image_grid,
    latent_manifold_grid,
    save_image_grid,
    save_latent_manifold,
    save_marginal_likelihood_curves,
    save_snr_curves,
)

__all__ = ["grid_zoom", "image_grid", "latent_manifold_grid", "save_image_grid", "save_latent_manifold",
           "save_marginal_likelihood_curves", "save_snr_curves"]
