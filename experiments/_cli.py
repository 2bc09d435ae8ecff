"""Flags, logging and checkpoint loading shared by the experiment entry points (Flax-examples
convention)."""

import logging as std_logging
import os

import jax
import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from vaex import experiment

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file in experiments/configs/.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl and images.")
flags.mark_flags_as_required(["config", "workdir"])
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0 for a multi-process run (jax.distributed). Default: "
                    "$JAX_COORDINATOR_ADDRESS, or JAX's cluster auto-detection (TPU pods, SLURM).")
flags.DEFINE_integer("num_processes", None, "Number of processes (default: $JAX_NUM_PROCESSES).")
flags.DEFINE_integer("process_id", None, "This process's index (default: $JAX_PROCESS_ID).")
flags.DEFINE_integer("distributed_timeout", 60, "Seconds to wait for the coordinator.")
flags.DEFINE_string(
    "compilation_cache_dir",
    os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join("~", ".cache", "vaex", "jax"),
    "JAX's persistent compilation cache: a rerun, a resume, or evaluate/sample/manifold after train "
    "loads the compiled programs from here instead of compiling them again (~3 s -> ~0.4 s for "
    "the MNIST epoch function). Default: $JAX_COMPILATION_CACHE_DIR, else ~/.cache/vaex/jax; "
    "'' turns it off.")


class _QuietOrbax(std_logging.Filter):
  """Keeps orbax's per-save INFO chatter out of the log (its warnings still pass)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def setup() -> None:
  """Logging, the compilation cache, and `jax.distributed` when a multi-process run is asked for
  (flags or environment)."""
  logging.set_verbosity(logging.INFO)
  std_logging.getLogger("absl").addFilter(_QuietOrbax())
  if FLAGS.compilation_cache_dir:
    # JAX keys each entry on the program, the jax/XLA versions, the devices and the flags, so a
    # stale entry is never used; only programs that took >= 1 s to compile are stored (JAX default).
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(FLAGS.compilation_cache_dir))
  if FLAGS.coordinator_address or FLAGS.num_processes or os.environ.get("JAX_COORDINATOR_ADDRESS"):
    from vaex._src import sharding

    sharding.initialize_distributed(
        FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
        timeout_seconds=FLAGS.distributed_timeout,
    )


def load_data_and_restore(config: ml_collections.ConfigDict, workdir: str):
  """`(splits, model, state)`: the config's data splits and the latest checkpoint of the run in
  `workdir` (the data give the training-set size and the input dimension the model is built for).
  A run of `config.num_seeds` > 1 replicas gives replica 0's state (seed `config.seed`)."""
  splits = experiment.load_datasets(config)
  model, state, _ = experiment.restore_latest(config, workdir, *splits["train"].shape)
  if config.num_seeds > 1:
    from vaex._src import seeds

    state = seeds.replica_state(state, 0)
  return splits, model, state
