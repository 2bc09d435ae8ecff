r"""Kingma & Welling (2013) Figure 5: random samples from AEVB models of MNIST with Nz = 2, 5, 10, 20.

  python experiments/figure5.py --workdir=runs/figure5 --data_dir=../shared/data [--epochs=15]

For each Nz it trains the `mnist_adam` config with latent_dim = Nz in <workdir>/nz<Nz> (resumable: a
finished run is reused, a larger --epochs extends it). That is the paper's MNIST model (784-500-(2xNz)
tanh encoder, Nz-500-784 tanh Bernoulli decoder, estimator B, L = 1, M = 100, static binarized MNIST)
trained with Adam 1e-3 rather than the paper's Adagrad (`mnist_aevb`), which starts slowly from the
paper's N(0, 0.01) initialization: at Nz = 20 and 10 epochs it is at -133.8 nats where Adam is at -105.4
(BUILD_NOTES.md), and its samples are still blurry. Then it draws z ~ p(z) = N(0, I) with the key
fold_in(key(seed), Nz) and shows the decoder means (the Bernoulli probabilities of p(x | z), white = 1).

Writes in <workdir>:
  figure5.png            one panel per Nz (num_samples decoder means each), titled with the test ELBO
  figure5_nz<Nz>.png     each panel on its own
  figure5_samples.npz    the pictured means, `nz<Nz>: [num_samples, 784] float32` (redraw without models)
  figure5.jsonl          one line per Nz: epochs trained, test and valid ELBO (one sample per example)

Runtime on 2 CPU cores shared with another training run: 11 minutes for the default 15 epochs per
model (4 models, about 12 s per epoch with evaluation); `--epochs=100` (about 20 minutes per model on
that machine) gives sharper samples. Expected test ELBO after 15 epochs, seed 0: -154.5 (Nz = 2),
-124.4 (5), -108.7 (10), -104.0 (20).
Deterministic for a given --seed (a workdir holds runs of one seed: use a new --workdir for another).
"""

import importlib.util
import json
import math
import os
import time
from pathlib import Path

import jax
import numpy as np
from _entry import run
from absl import app, flags, logging

from vaex import experiment
from vaex._src import plots, sharding
from vaex._src.vae import VAE

flags.DEFINE_string("workdir", None, "Root directory of the runs and the figure.", required=True)
flags.DEFINE_string("data_dir", None, "Directory with binarized_mnist_*.amat[.gz].")
flags.DEFINE_integer("epochs", 15, "Epochs per model (CPU budget); e.g. 100 for sharper samples.")
flags.DEFINE_list("latent_dims", ["2", "5", "10", "20"], "Values of Nz, one panel each.")
flags.DEFINE_integer("seed", 0, "Seed of the training runs and of the samples.")
flags.DEFINE_integer("num_samples", 100, "Samples per panel (a square number gives a square grid).")
flags.DEFINE_integer("num_train_examples", 0, "Train on the first n examples only (tests); 0: all.")
FLAGS = flags.FLAGS

CONFIG = "mnist_adam"
_SCALE = 2  # Screen pixels per image pixel in figure5.png (an integer: no resampling artifacts).


def make_config(latent_dim: int, *, epochs: int, data_dir: str | None, seed: int,
                num_train_examples: int = 0):
  """The `mnist_adam` config with latent_dim = `latent_dim`, on one device."""
  path = Path(__file__).parent / "configs" / f"{CONFIG}.py"
  spec = importlib.util.spec_from_file_location(CONFIG, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.latent_dim, config.num_epochs, config.seed = latent_dim, epochs, seed
  config.data_dir = data_dir
  config.num_train_examples = num_train_examples
  config.num_devices = 1
  return config


def draw_samples(key: jax.Array, model: VAE, params, latent_dim: int, num_samples: int) -> np.ndarray:
  """Decoder means `[num_samples, 784] float32` at `z ~ N(0, I)`, `z: [num_samples, latent_dim]`."""
  z = jax.random.normal(key, (num_samples, latent_dim))
  return np.asarray(model.apply(params, z, method=VAE.decoder_mean), np.float32)


def _grid_rows(num_samples: int) -> int:
  return max(1, math.isqrt(num_samples))


def plot(samples_by_nz: dict[int, np.ndarray], results_by_nz: dict[int, dict], path: str, *,
         title: str = "") -> None:
  """One titled panel per Nz, side by side; each image pixel is `_SCALE` x `_SCALE` screen pixels."""
  figure_cls = plots._import_matplotlib()
  grids = {nz: plots.image_grid(s, _grid_rows(len(s))) for nz, s in samples_by_nz.items()}
  dpi, gap, bottom = 100, 40, 16  # Pixels: around the panels, below them.
  top = 120 if title else 72  # Pixels above the panels: panel titles (and the figure title).
  widths = [g.shape[1] * _SCALE for g in grids.values()]
  height = max(g.shape[0] for g in grids.values()) * _SCALE
  content_w = sum(widths) + gap * (len(grids) + 1)
  fig_w = max(content_w, 1100 if title else 0)  # Wide enough for the figure title.
  fig_h = height + top + bottom
  fig = figure_cls(figsize=(fig_w / dpi, fig_h / dpi), facecolor="white")
  left = gap + (fig_w - content_w) // 2
  for (nz, grid), width in zip(grids.items(), widths):
    h = grid.shape[0] * _SCALE
    ax = fig.add_axes((left / fig_w, (bottom + height - h) / fig_h, width / fig_w, h / fig_h))
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    result = results_by_nz[nz]
    epochs = f"{result['epoch']} epoch{'s' if result['epoch'] != 1 else ''}"
    ax.set_title(f"{nz}-D latent space\ntest ELBO {result['test_elbo']:.1f} nats, {epochs}",
                 fontsize=14)
    left += width + gap
  if title:
    fig.suptitle(title, fontsize=17, y=1 - 10 / fig_h, va="top")
  tmp = f"{path}.tmp.png"
  fig.savefig(tmp, dpi=dpi)
  os.replace(tmp, path)


def _write_jsonl(rows: list[dict], path: str) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(row) + "\n" for row in rows)
  os.replace(tmp, path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  dims = [int(v) for v in FLAGS.latent_dims]
  if not dims or FLAGS.num_samples < 1:
    raise app.UsageError(f"Need at least one latent dimension and --num_samples >= 1; got "
                         f"--latent_dims={FLAGS.latent_dims} --num_samples={FLAGS.num_samples}.")
  os.makedirs(FLAGS.workdir, exist_ok=True)
  configs = {nz: make_config(nz, epochs=FLAGS.epochs, data_dir=FLAGS.data_dir, seed=FLAGS.seed,
                             num_train_examples=FLAGS.num_train_examples) for nz in dims}
  for config in configs.values():
    experiment.validate_config(config)  # Every check before the first run starts.
  train_shape = experiment.load_datasets(configs[dims[0]])["train"].shape
  start = time.perf_counter()
  rows, samples_by_nz, results_by_nz = [], {}, {}
  for nz, config in configs.items():
    workdir = os.path.join(FLAGS.workdir, f"nz{nz}")
    result = experiment.train_and_evaluate(config, workdir)
    model, state, _ = experiment.restore_latest(config, workdir, *train_shape)
    params = jax.tree.map(sharding.to_host, state.params)
    key = jax.random.fold_in(jax.random.key(FLAGS.seed), nz)
    samples_by_nz[nz] = draw_samples(key, model, params, nz, FLAGS.num_samples)
    results_by_nz[nz] = result
    plot({nz: samples_by_nz[nz]}, results_by_nz, os.path.join(FLAGS.workdir, f"figure5_nz{nz}.png"))
    rows.append({"latent_dim": nz, "config": CONFIG, "seed": FLAGS.seed, "epoch": result["epoch"],
                 "step": result["step"], "test_elbo": result["test_elbo"],
                 "valid_elbo": result["valid_elbo"], "train_seconds": result["wall_s"],
                 "workdir": result["workdir"]})
    _write_jsonl(rows, os.path.join(FLAGS.workdir, "figure5.jsonl"))  # After each run: partial results.
    print(f"Nz={nz:3d}: test ELBO {result['test_elbo']:.2f} after {result['epoch']} epochs "
          f"({time.perf_counter() - start:.0f} s so far)", flush=True)
  np.savez(os.path.join(FLAGS.workdir, "figure5_samples.npz"),
           **{f"nz{nz}": s for nz, s in samples_by_nz.items()})
  path = os.path.join(FLAGS.workdir, "figure5.png")
  plot(samples_by_nz, results_by_nz, path,
       title="AEVB on MNIST: decoder means of z ~ p(z) (Kingma & Welling 2013, Figure 5)")
  print(f"wrote {path} and figure5.jsonl in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  run(main)
