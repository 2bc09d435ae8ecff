"""Image grids and the 2-D latent manifold picture."""

import numpy as np
import pytest
from scipy import stats

from vaex import plots


def test_image_grid_tiles_images_with_gaps():
  images = np.stack([np.full(4, i / 5.0) for i in range(6)])  # six 2x2 images
  grid = plots.image_grid(images, num_rows=2, image_shape=(2, 2))
  assert grid.shape == (2 * 3 - 1, 3 * 3 - 1)
  np.testing.assert_allclose(grid[3:5, 6:8], 5 / 5.0)  # Last image, bottom right.
  assert np.all(grid[2, :] == 1.0)  # The gap row.


def test_latent_manifold_grid_is_the_gaussian_inverse_cdf_of_a_uniform_grid():
  z = plots.latent_manifold_grid(4)
  assert z.shape == (16, 2)
  u = (np.arange(4) + 0.5) / 4
  np.testing.assert_allclose(np.unique(z[:, 0]), stats.norm.ppf(u), rtol=1e-5)
  assert z[0, 1] > 0 > z[-1, 1]  # Top row first.
  np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-6)


def test_save_latent_manifold_writes_a_png_and_checks_the_decoder(tmp_path):
  path = tmp_path / "manifold.png"
  plots.save_latent_manifold(lambda z: np.tile(stats.norm.cdf(z[:, :1]), (1, 784)), path,
                             num_per_side=5)
  assert path.read_bytes()[:4] == b"\x89PNG"
  with pytest.raises(ValueError, match="latent_dim=2"):
    plots.save_latent_manifold(lambda z: np.zeros((len(z), 10)), tmp_path / "x.png")
