"""Opt-in plotting (needs matplotlib: `pip install 'vaex[plots]'`)."""

from vaex._src.plots import image_grid, save_image_grid

__all__ = ["image_grid", "save_image_grid"]
