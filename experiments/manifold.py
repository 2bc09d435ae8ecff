r"""Draws the learned 2-D latent manifold of a trained latent_dim=2 model (the paper's Figure 4).

  python experiments/train.py --config=experiments/configs/mnist_adam.py --workdir=runs/manifold \
      --config.latent_dim=2 --config.num_epochs=20 --config.data_dir=../shared/data
  python experiments/manifold.py --config=experiments/configs/mnist_adam.py --workdir=runs/manifold \
      --config.latent_dim=2 --config.data_dir=../shared/data

Writes manifold.png in the workdir: decoder means at Gaussian-inverse-CDF points of a 20x20 grid,
each image in its data set's shape (config IMAGE_SHAPES). The Frey Face manifold of Figure 4 (Nz = 2,
Gaussian decoder, 200 hidden units) from the Nz = 2 AEVB run of experiments/figure2.py:
  python experiments/manifold.py --config=experiments/configs/frey_face.py \
      --workdir=runs/frey_face_figure2/frey_face/aevb_nz2 --config.data_dir=../shared/data
(or train experiments/configs/frey_face.py itself, see its docstring).
"""

import os

import jax
from _cli import FLAGS, load_data_and_restore, setup
from _entry import run
from absl import app, flags

from vaex import plots
from vaex._src import sharding
from vaex._src.config import IMAGE_SHAPES
from vaex._src.vae import VAE

flags.DEFINE_integer("grid", 20, "Images per side of the manifold grid.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  setup()
  config = FLAGS.config
  _, model, state = load_data_and_restore(config, FLAGS.workdir)
  params = jax.tree.map(sharding.to_host, state.params)
  path = os.path.join(FLAGS.workdir, "manifold.png")
  plots.save_latent_manifold(
      lambda z: model.apply(params, z, method=VAE.decoder_mean), path, num_per_side=FLAGS.grid,
      image_shape=IMAGE_SHAPES[config.dataset],
      title=f"learned 2-D manifold ({config.dataset}, {config.likelihood} decoder)")
  print(f"wrote {path}")


if __name__ == "__main__":
  run(main)
