"""Pictures of a model: image grids (samples, reconstructions). Imports matplotlib lazily."""

from __future__ import annotations

import os

import numpy as np


def _import_matplotlib():
  try:
    import matplotlib
  except ImportError as e:
    raise ImportError(
        "Plotting needs matplotlib: install the `plots` extra, `pip install 'vaex[plots]'`."
    ) from e
  matplotlib.use("Agg", force=False)
  from matplotlib.figure import Figure

  return Figure


def image_grid(images: np.ndarray, num_rows: int, image_shape: tuple[int, int] = (28, 28)):
  """Tiles `images: [n, h*w]` (values in [0, 1]) into one `[rows*h, cols*w]` array, 1px gaps."""
  images = np.asarray(images, np.float32)
  n = images.shape[0]
  h, w = image_shape
  num_cols = -(-n // num_rows)
  grid = np.ones((num_rows * (h + 1) - 1, num_cols * (w + 1) - 1), np.float32)
  for i in range(n):
    r, c = divmod(i, num_cols)
    grid[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = images[i].reshape(h, w)
  return grid


def save_image_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    num_rows: int,
    title: str = "",
    image_shape: tuple[int, int] = (28, 28),
) -> None:
  """Writes `images: [n, h*w]` in [0, 1] as a grid PNG at `path` (written atomically)."""
  Figure = _import_matplotlib()
  grid = image_grid(images, num_rows, image_shape)
  scale = 0.012
  fig = Figure(figsize=(max(grid.shape[1] * scale, 4.5), grid.shape[0] * scale + (0.4 if title else 0)))
  ax = fig.add_axes((0, 0, 1, 1 if not title else 1 - 0.4 / fig.get_figheight()))
  ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
  ax.set_axis_off()
  if title:
    fig.suptitle(title, fontsize=8, y=0.995, va="top")
  tmp = f"{os.fspath(path)}.tmp.png"
  fig.savefig(tmp, dpi=150)
  os.replace(tmp, path)


def latent_manifold_grid(num_per_side: int) -> np.ndarray:
  """`[num_per_side**2, 2]` latent points: a linear grid on the open unit square mapped through the
  Gaussian inverse CDF (Kingma & Welling 2013, Figure 4), so that equal areas carry equal prior mass.
  Rows run top to bottom over the second coordinate, columns left to right over the first."""
  from scipy.special import ndtri  # Imported lazily: scipy is only needed for this picture.

  u = (np.arange(num_per_side) + 0.5) / num_per_side
  z1, z2 = np.meshgrid(ndtri(u), ndtri(u[::-1]))
  return np.stack([z1.ravel(), z2.ravel()], axis=-1).astype(np.float32)


def save_latent_manifold(decoder_mean, path: str | os.PathLike, *, num_per_side: int = 20,
                         image_shape: tuple[int, int] = (28, 28), title: str = "") -> None:
  """Draws the learned 2-D manifold: `decoder_mean(z: [n, 2]) -> [n, h*w]` at the grid points of
  `latent_manifold_grid`, tiled into one PNG."""
  z = latent_manifold_grid(num_per_side)
  images = np.asarray(decoder_mean(z))
  if images.shape != (len(z), image_shape[0] * image_shape[1]):
    raise ValueError(
        f"`decoder_mean` must map z: [{len(z)}, 2] to [{len(z)}, {image_shape[0] * image_shape[1]}]; "
        f"got {images.shape}. The manifold plot needs a model with latent_dim=2."
    )
  save_image_grid(np.clip(images, 0.0, 1.0), path, num_rows=num_per_side, title=title,
                  image_shape=image_shape)
