r"""Writes samples.png (decoder means of z ~ N(0, I)) and reconstructions.png of the latest checkpoint.

  python experiments/sample.py --config=experiments/configs/mnist_adam.py --workdir=/tmp/run
"""

from _cli import FLAGS, load_data_and_restore, setup
from _entry import run
from absl import app

from vaex import experiment


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  setup()
  config = FLAGS.config
  splits, model, state = load_data_and_restore(config, FLAGS.workdir)
  paths = experiment.write_images(model, state.params, state.key, splits["test"], config,
                                  FLAGS.workdir)
  print("wrote " + ", ".join(paths))


if __name__ == "__main__":
  run(main)
