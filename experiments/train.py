r"""Trains a VAE from a config; re-running the same command resumes from the last checkpoint.

  python experiments/train.py --config=experiments/configs/mnist_adam.py --workdir=/tmp/run \
      [--config.num_epochs=5 --config.data_dir=../shared/data ...]
"""

from _cli import FLAGS, setup
from _entry import run
from absl import app

from vaex import experiment


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  setup()
  result = experiment.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  print(f"epoch {result['epoch']}: test ELBO {result['test_elbo']:.2f} nats, valid ELBO "
        f"{result['valid_elbo']:.2f} nats ({result['wall_s']:.1f} s of training). "
        f"samples.png, reconstructions.png and metrics.jsonl are in {result['workdir']}")


if __name__ == "__main__":
  run(main)
