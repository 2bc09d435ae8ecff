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


def test_image_grid_keeps_row_major_orientation_of_non_square_images():
  images = np.zeros((3, 28 * 20), np.float32)
  images[1].reshape(28, 20)[5, 17] = 0.5  # Row 5, column 17 of the second Frey-Face-sized image.
  grid = plots.image_grid(images, num_rows=1, image_shape=(28, 20))
  assert grid.shape == (28, 3 * 21 - 1)
  assert grid[5, 21 + 17] == 0.5 and np.count_nonzero(grid == 0.5) == 1


def test_image_grid_zoom_gap_and_rgb():
  rgb = np.zeros((4, 2, 3, 3), np.float32)
  rgb[..., 0] = 1.0  # Red images.
  rgb[3, 1, 2] = (0.0, 0.0, 1.0)  # One blue pixel: last image, bottom-right corner.
  grid = plots.image_grid(rgb.reshape(4, -1), num_rows=2, image_shape=(2, 3, 3), zoom=3, gap=2)
  assert grid.shape == (2 * (6 + 2) - 2, 2 * (9 + 2) - 2, 3)
  np.testing.assert_array_equal(grid[0, 0], (1.0, 0.0, 0.0))
  np.testing.assert_array_equal(grid[6:8, :], 1.0)  # The white gap rows between the image rows.
  np.testing.assert_array_equal(grid[-3:, -3:], np.broadcast_to((0.0, 0.0, 1.0), (3, 3, 3)))
  assert np.count_nonzero(np.all(grid == (0.0, 0.0, 1.0), axis=-1)) == 9  # One pixel, zoomed 3x3.
  grey = plots.image_grid(np.ones((2, 4)), num_rows=1, image_shape=(2, 2, 1), zoom=2, gap=0)
  assert grey.shape == (4, 8)  # Grey images give a 2-D grid; gap=0: no white at all.
  assert grey.min() == 1.0


@pytest.mark.parametrize(
    "images, image_shape, match",
    [(np.zeros((2, 784)), (28, 20), r"`images` must be \[n, 560\].*got shape \(2, 784\)"),
     (np.zeros((2, 12)), (2, 3, 2), r"`image_shape` must be .*1 \(grey\) or 3 \(RGB\).*\(2, 3, 2\)"),
     (np.zeros((2, 12)), (12,), r"`image_shape` must be \(height, width\)")],
    ids=["wrong_size", "two_channels", "one_axis"],
)
def test_image_grid_bad_shapes_say_what_to_pass(images, image_shape, match):
  with pytest.raises(ValueError, match=match):
    plots.image_grid(images, num_rows=1, image_shape=image_shape)


def test_grid_zoom_makes_grids_about_a_thousand_pixels():
  assert plots.grid_zoom(10, 10, (28, 28)) == 3  # 100 MNIST samples: 84-pixel images.
  assert plots.grid_zoom(20, 20, (28, 20)) == 2  # A 20x20 manifold: never below 2x.
  assert plots.grid_zoom(1, 2, (2, 2)) == 8  # Tiny grids stop at 8x.


@pytest.mark.parametrize("image_shape", [(28, 20), (32, 32, 3)], ids=["frey_face", "cifar10"])
def test_saved_grid_is_the_grid_pixel_for_pixel_without_margins(tmp_path, image_shape):
  import matplotlib.image

  size = int(np.prod(image_shape))
  images = np.random.default_rng(0).uniform(0.0, 0.5, (6, size))  # Dark: white shows the gaps.
  path = tmp_path / "grid.png"
  plots.save_image_grid(images, path, num_rows=2, image_shape=image_shape, zoom=3)
  picture = matplotlib.image.imread(path)[..., :3]
  expected = plots.image_grid(images, 2, image_shape, zoom=3, gap=2)
  assert picture.shape[:2] == expected.shape[:2]  # No title: no strip, no margin, no resampling.
  if len(image_shape) == 2:
    expected = np.repeat(expected[..., None], 3, axis=-1)
  np.testing.assert_allclose(picture, expected, atol=1 / 255 + 1e-6)  # 8-bit PNG rounding.


def test_saved_grid_with_title_adds_only_a_strip_above(tmp_path):
  import matplotlib.image

  path = tmp_path / "titled.png"
  plots.save_image_grid(np.zeros((4, 560)), path, num_rows=2, image_shape=(28, 20), zoom=2,
                        title="samples")
  picture = matplotlib.image.imread(path)[..., :3]
  grid = plots.image_grid(np.zeros((4, 560)), 2, (28, 20), zoom=2, gap=2)
  assert picture.shape[1] == grid.shape[1] and picture.shape[0] == grid.shape[0] + 20
  assert picture[20:].mean() < 0.1 and picture[:, 0].mean() < 0.5  # Images reach the left edge.


def test_save_latent_manifold_takes_the_image_shape(tmp_path):
  path = tmp_path / "frey_manifold.png"
  plots.save_latent_manifold(lambda z: np.tile(stats.norm.cdf(z[:, :1]), (1, 560)), path,
                             num_per_side=4, image_shape=(28, 20))
  assert path.read_bytes()[:4] == b"\x89PNG"
  with pytest.raises(ValueError, match=r"\[16, 560\] \(image_shape \(28, 20\)\); got \(16, 784\)"):
    plots.save_latent_manifold(lambda z: np.zeros((len(z), 784)), path, num_per_side=4,
                               image_shape=(28, 20))
