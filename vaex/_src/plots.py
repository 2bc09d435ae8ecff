"""Pictures of a model: image grids (samples, reconstructions, the 2-D latent manifold) of grey or
RGB images of any size, and learning curves. Imports matplotlib lazily."""

from __future__ import annotations

import os

import numpy as np


def _import_matplotlib():
  try:
    import matplotlib
  except ImportError as e:
    raise ImportError(
        "Plotting needs matplotlib: install the `plots` extra, `pip install 'jax-vae[plots]'`."
    ) from e
  matplotlib.use("Agg", force=False)
  from matplotlib.figure import Figure

  return Figure


def _save_atomically(fig, path: str | os.PathLike, *, dpi: int) -> None:
  """Writes the PNG next to `path` and renames it into place: a reader never sees half a file."""
  tmp = f"{os.fspath(path)}.tmp.png"
  fig.savefig(tmp, dpi=dpi)
  os.replace(tmp, path)


def _image_shape(image_shape) -> tuple[int, int, int]:
  """`(h, w)` or `(h, w, c)` with c 1 (grey) or 3 (RGB), as `(h, w, c)`; ValueError otherwise."""
  shape = tuple(int(s) for s in image_shape)
  if len(shape) == 2:
    shape = (*shape, 1)
  if len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3):
    raise ValueError(
        f"`image_shape` must be (height, width) or (height, width, channels) with 1 (grey) or 3 "
        f"(RGB) channels; got {tuple(image_shape)!r}: e.g. (28, 28) for MNIST, (28, 20) for Frey "
        "Face, (32, 32, 3) for CIFAR-10."
    )
  return shape


def image_grid(images: np.ndarray, num_rows: int, image_shape: tuple[int, ...] = (28, 28), *,
               zoom: int = 1, gap: int = 1) -> np.ndarray:
  """Tiles images into one picture, row by row, with white gaps between them.

  Args:
    images: `[n, h*w*c]` (flat, row-major) or `[n, h, w(, c)]` values in [0, 1].
    num_rows: rows of the grid; the columns are `ceil(n / num_rows)`.
    image_shape: `(h, w)` or `(h, w, c)`, c = 1 (grey) or 3 (RGB).
    zoom: each pixel becomes a `zoom x zoom` block (nearest neighbour, no resampling blur).
    gap: white pixels between neighbouring images (after zooming); no margin around the grid.

  Returns:
    `float32 [rows * (zoom*h + gap) - gap, cols * (zoom*w + gap) - gap]` for grey images, with a
    trailing axis of 3 for RGB.
  """
  h, w, c = _image_shape(image_shape)
  images = np.asarray(images, np.float32)
  n = images.shape[0] if images.ndim else 0
  if images.ndim < 2 or images[0].size != h * w * c:
    raise ValueError(
        f"`images` must be [n, {h * w * c}] (or [n, {h}, {w}, {c}]) for image_shape "
        f"{tuple(image_shape)}; got shape {images.shape}. Pass the data set's image shape: e.g. "
        "(28, 28) for MNIST, (28, 20) for Frey Face, (32, 32, 3) for CIFAR-10."
    )
  images = images.reshape(n, h, w, c).repeat(zoom, axis=1).repeat(zoom, axis=2)
  zh, zw = h * zoom, w * zoom
  num_cols = -(-n // num_rows)
  grid = np.ones((num_rows * (zh + gap) - gap, num_cols * (zw + gap) - gap, c), np.float32)
  for i in range(n):
    r, col = divmod(i, num_cols)
    grid[r * (zh + gap): r * (zh + gap) + zh, col * (zw + gap): col * (zw + gap) + zw] = images[i]
  return grid[..., 0] if c == 1 else grid


def grid_zoom(num_rows: int, num_cols: int, image_shape: tuple[int, ...], *,
              target_pixels: int = 1000) -> int:
  """The zoom that makes a grid's longer side about `target_pixels` (2 to 8; 3 for a 10x10 MNIST
  grid, 2 for a 20x20 manifold): images large enough to read at a glance."""
  h, w, _ = _image_shape(image_shape)
  longest = max(num_rows * (h + 1), num_cols * (w + 1))
  return int(np.clip(target_pixels // longest, 2, 8))


def save_image_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    num_rows: int,
    title: str = "",
    image_shape: tuple[int, ...] = (28, 28),
    zoom: int | None = None,
) -> None:
  """Writes `images: [n, h*w*c]` in [0, 1] as a grid PNG at `path` (written atomically).

  The PNG is the grid itself, pixel for pixel: each image pixel a `zoom x zoom` block (None: about
  1,000 pixels on the longer side, `grid_zoom`), 2-pixel white gaps, no margin, and the title (if
  any) in a strip above. `image_shape` is `(h, w)` or `(h, w, c)` with c = 3 for RGB.
  """
  import textwrap

  Figure = _import_matplotlib()
  n = np.shape(images)[0]
  zoom = zoom or grid_zoom(num_rows, -(-n // num_rows), image_shape)
  grid = np.clip(image_grid(images, num_rows, image_shape, zoom=zoom, gap=2), 0.0, 1.0)
  dpi = 100
  height, width = grid.shape[:2]
  lines = textwrap.wrap(title, max(20, width // 7)) if title else []
  strip = 6 + 14 * len(lines)  # Pixels above the grid for the title.
  fig = Figure(figsize=(width / dpi, (height + (strip if lines else 0)) / dpi))
  ax = fig.add_axes((0, 0, 1, height / (height + (strip if lines else 0))))
  if grid.ndim == 2:  # Grey as RGB: exact 8-bit values, no colormap lookup table in between.
    grid = np.repeat(grid[..., None], 3, axis=-1)
  ax.imshow(grid, interpolation="nearest")
  ax.set_axis_off()
  if lines:
    fig.text(0.5, 1 - 3 / (height + strip), "\n".join(lines), fontsize=8, ha="center", va="top")
  _save_atomically(fig, path, dpi=dpi)


def latent_manifold_grid(num_per_side: int) -> np.ndarray:
  """`[num_per_side**2, 2]` latent points: a linear grid on the open unit square mapped through the
  Gaussian inverse CDF (Kingma & Welling 2013, Figure 4), so that equal areas carry equal prior mass.
  Rows run top to bottom over the second coordinate, columns left to right over the first."""
  from scipy.special import ndtri  # Imported lazily: scipy is only needed for this picture.

  u = (np.arange(num_per_side) + 0.5) / num_per_side
  z1, z2 = np.meshgrid(ndtri(u), ndtri(u[::-1]))
  return np.stack([z1.ravel(), z2.ravel()], axis=-1).astype(np.float32)


def save_latent_manifold(decoder_mean, path: str | os.PathLike, *, num_per_side: int = 20,
                         image_shape: tuple[int, ...] = (28, 28), title: str = "") -> None:
  """Draws the learned 2-D manifold: `decoder_mean(z: [n, 2]) -> [n, h*w*c]` at the grid points of
  `latent_manifold_grid`, tiled into one PNG. `image_shape`: `(h, w)` or `(h, w, c)`."""
  h, w, c = _image_shape(image_shape)
  z = latent_manifold_grid(num_per_side)
  images = np.asarray(decoder_mean(z))
  if images.shape != (len(z), h * w * c):
    raise ValueError(
        f"`decoder_mean` must map z: [{len(z)}, 2] to [{len(z)}, {h * w * c}] (image_shape "
        f"{tuple(image_shape)}); got {images.shape}. The manifold plot needs a model with "
        "latent_dim=2 and the data set's image shape."
    )
  save_image_grid(np.clip(images, 0.0, 1.0), path, num_rows=num_per_side, title=title,
                  image_shape=image_shape)


_METHOD_STYLES = {"aevb": ("AEVB", "tab:blue"), "wake_sleep": ("Wake-Sleep", "tab:red"),
                  "mcem": ("MCEM", "tab:green")}


def save_marginal_likelihood_curves(records, path: str | os.PathLike, *, title: str = "",
                                    ylim: tuple[float, float] | None = None) -> None:
  """Kingma & Welling (2013) Figure 3: marginal log-likelihood against training samples seen.

  One panel per training-set size, one color per method; solid lines are test points, dashed lines
  training points (as in the paper), on a log x-axis.

  Args:
    records: dicts with `method` ("aevb", "wake_sleep", "mcem" or any other name), `num_train`,
      `samples_seen`, `train_log_likelihood` and `test_log_likelihood` (nats per datapoint), e.g.
      the lines of `figure3.jsonl`.
    path: where the PNG is written (atomically).
    title: a line above the panels.
    ylim: the y range of every panel; None fits one shared range to all the data.
  """
  records = [r for r in records if "test_log_likelihood" in r and r.get("samples_seen", 0) > 0]
  if not records:
    raise ValueError(
        "`records` holds no point with `samples_seen` > 0 and `test_log_likelihood`; nothing to "
        "plot. Pass the evaluation lines of a run (e.g. figure3.jsonl)."
    )
  Figure = _import_matplotlib()
  sizes = sorted({r["num_train"] for r in records})
  methods = sorted({r["method"] for r in records},
                   key=lambda m: list(_METHOD_STYLES).index(m) if m in _METHOD_STYLES else 99)
  if ylim is None:
    values = [r[k] for r in records for k in ("train_log_likelihood", "test_log_likelihood")]
    margin = 0.04 * (max(values) - min(values) or 1.0)
    ylim = (min(values) - margin, max(values) + margin)
  fig = Figure(figsize=(5.2 * len(sizes), 4.2))
  for i, size in enumerate(sizes):
    ax = fig.add_subplot(1, len(sizes), i + 1)
    for method in methods:
      label, color = _METHOD_STYLES.get(method, (method, None))
      rows = sorted((r for r in records if r["num_train"] == size and r["method"] == method),
                    key=lambda r: r["samples_seen"])
      seen = [r["samples_seen"] for r in rows]
      line, = ax.plot(seen, [r["train_log_likelihood"] for r in rows], "--", color=color,
                      marker=".", label=f"{label} (train)")
      ax.plot(seen, [r["test_log_likelihood"] for r in rows], "-", color=line.get_color(),
              marker=".", label=f"{label} (test)")
    ax.set_xscale("log")
    ax.set_title(f"MNIST, Ntrain = {size:,}")
    ax.set_xlabel("# training samples evaluated")
    ax.set_ylim(*ylim)
    ax.grid(alpha=0.3, which="both")
    if i == 0:
      ax.set_ylabel("marginal log-likelihood per datapoint (nats)")
    ax.legend(fontsize=7, loc="upper left")  # Curves rise to the right: that corner stays free.
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  _save_atomically(fig, path, dpi=110)


_ESTIMATOR_STYLES = {"reparameterization": ("IWAE gradient", "tab:red", "-o"),
                     "dreg": ("DReG", "tab:blue", "--s")}


def save_snr_curves(records, path: str | os.PathLike, *, title: str = "") -> None:
  """Gradient signal-to-noise ratio against k (Rainforth et al. 2018, Figure 1), log-log.

  Args:
    records: dicts with `estimator`, `k`, `encoder_snr` and `decoder_snr`, e.g. the lines of
      `snr.jsonl` (`experiments/snr.py`).
    path: where the PNG is written (atomically).
    title: a line above the panels.
  """
  records = [r for r in records if {"estimator", "k", "encoder_snr", "decoder_snr"} <= set(r)]
  if not records:
    raise ValueError("`records` holds no line with `estimator`, `k`, `encoder_snr` and "
                     "`decoder_snr`; pass the lines of snr.jsonl.")
  Figure = _import_matplotlib()
  fig = Figure(figsize=(9.0, 3.8))
  for i, (field, name) in enumerate((("encoder_snr", "inference network (encoder)"),
                                     ("decoder_snr", "generative network (decoder)"))):
    ax = fig.add_subplot(1, 2, i + 1)
    for estimator in sorted({r["estimator"] for r in records}):
      label, color, style = _ESTIMATOR_STYLES.get(estimator, (estimator, None, "-o"))
      rows = sorted((r for r in records if r["estimator"] == estimator), key=lambda r: r["k"])
      ax.plot([r["k"] for r in rows], [r[field] for r in rows], style, color=color, label=label,
              markersize=4)  # Dashed DReG stays visible where it equals IWAE (the decoder panel).
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k (importance samples)")
    ax.set_ylabel("mean |E g| / std g over parameters")
    ax.set_title(name, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  _save_atomically(fig, path, dpi=110)
