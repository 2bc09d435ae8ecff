r"""Trains a VAE from a config; re-running the same command resumes from the last checkpoint.

  python experiments/train.py --config=experiments/configs/mnist_adam.py --workdir=/tmp/run \
      [--config.num_epochs=5 --config.data_dir=../shared/data ...]
"""

import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

from vaex import experiment

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file in experiments/configs/.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl and images.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietOrbax(std_logging.Filter):
  """Keeps orbax's per-save INFO chatter out of the training log (warnings still pass)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  std_logging.getLogger("absl").addFilter(_QuietOrbax())
  result = experiment.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  print(f"epoch {result['epoch']}: test ELBO {result['test_elbo']:.2f} nats, valid ELBO "
        f"{result['valid_elbo']:.2f} nats ({result['wall_s']:.1f} s of training). "
        f"Images and metrics.jsonl in {result['workdir']}")


if __name__ == "__main__":
  app.run(main)
