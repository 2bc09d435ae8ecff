r"""Draws the learned 2-D latent manifold of a trained latent_dim=2 model (the paper's Figure 4).

  python experiments/train.py --config=experiments/configs/mnist_adam.py --workdir=runs/manifold \
      --config.latent_dim=2 --config.num_epochs=20 --config.data_dir=../shared/data
  python experiments/manifold.py --config=experiments/configs/mnist_adam.py --workdir=runs/manifold \
      --config.latent_dim=2 --config.data_dir=../shared/data

Writes manifold.png in the workdir: decoder means at Gaussian-inverse-CDF points of a 20x20 grid.
"""

import os

import jax
from _cli import FLAGS, load_data_and_restore, setup
from absl import app, flags

from vaex import plots
from vaex._src import sharding
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
      title=f"learned 2-D manifold ({config.dataset}, {config.likelihood} decoder)")
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
