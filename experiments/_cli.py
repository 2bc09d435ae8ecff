"""Flags and logging shared by the experiment entry points (Flax-examples convention)."""

import logging as std_logging

from absl import flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file in experiments/configs/.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl and images.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietOrbax(std_logging.Filter):
  """Keeps orbax's per-save INFO chatter out of the log (its warnings still pass)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def setup_logging() -> None:
  logging.set_verbosity(logging.INFO)
  std_logging.getLogger("absl").addFilter(_QuietOrbax())
