"""The training loop's report of itself: compile time apart from images/s, and the examples a batch
size that does not divide the training set leaves out of each epoch (a fresh random subset each time).
"""

import importlib.util
import json
import logging
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from vaex import experiment
from vaex._src import training

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))


def _smoke(**overrides):
  spec = importlib.util.spec_from_file_location("smoke", ROOT / "experiments" / "configs" / "smoke.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data_dir = str(DATA_DIR)
  config.num_sample_images = 4
  for k, v in overrides.items():
    config[k] = v
  return config


def _train_lines(workdir: Path) -> list[dict]:
  lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [r for r in lines if "train_elbo" in r]


@pytest.mark.parametrize("placement, compiled_name", [("device", "the epoch function"),
                                                      ("host", "the training step")])
def test_compile_time_and_left_out_examples_are_reported_once(tmp_path, caplog, placement,
                                                             compiled_name):
  """Compile time apart from images/s; 1,000 examples in batches of 300: 3 steps per epoch, 100
  examples left out of each, said once."""
  config = _smoke(batch_size=300, num_epochs=2, data_placement=placement)
  with caplog.at_level(logging.INFO):
    experiment.train_and_evaluate(config, str(tmp_path))
  messages = [r.getMessage() for r in caplog.records]
  assert [m for m in messages if "left out" in m] == [
      "1000 training examples, batch 300: 3 steps per epoch, 100 examples (10%) left out of each "
      "epoch, a different random subset every epoch."]
  compiled = [m for m in messages if m.startswith("compiled ")]
  assert len(compiled) == 1 and compiled[0].startswith(f"compiled {compiled_name} in "), compiled
  first, second = _train_lines(tmp_path)
  assert first["compile_s"] > 0 and "compile_s" not in second
  assert f"{first['compile_s']:.1f} s" in compiled[0]
  # The first call's wall time is its compilation plus its training, and images/s counts only the
  # latter: both come from one pair of clock readings, so the split is exact.
  train_s = 3 * 300 / first["images_per_sec"]
  assert first["wall_s"] == pytest.approx(first["compile_s"] + train_s, rel=1e-6)
  assert second["wall_s"] - first["wall_s"] == pytest.approx(3 * 300 / second["images_per_sec"],
                                                             rel=1e-6)
  # Compiling even this tiny model takes far longer than running 3 of its steps (the issue saw 383
  # against 74,562 images/s when the two were mixed).
  assert first["compile_s"] > train_s


def test_a_batch_size_that_divides_the_data_says_nothing_about_it(tmp_path, caplog):
  with caplog.at_level(logging.INFO):
    experiment.train_and_evaluate(_smoke(num_epochs=1), str(tmp_path))
  assert not [r for r in caplog.records if "left out" in r.getMessage()]


def _visited(num_examples: int, batch_size: int, num_epochs: int) -> tuple[list[np.ndarray], jax.Array]:
  """The example indices the scanned epoch function feeds to the loss, epoch by epoch: the data
  are the indices themselves and the loss reports its batch."""
  data = jnp.arange(num_examples, dtype=jnp.float32)[:, None]

  def loss_fn(params, key, x):
    del key
    return params["w"] * jnp.sum(x), {"bound": x[:, 0]}

  optimizer = optax.sgd(0.0)
  params = {"w": jnp.zeros(())}
  state = training.TrainState(params=params, opt_state=optimizer.init(params),
                              step=jnp.zeros((), jnp.int32), key=jax.random.key(3))
  steps = training.make_train_steps(loss_fn, optimizer, batch_size=batch_size)
  steps_per_epoch = num_examples // batch_size
  out = []
  for _ in range(num_epochs):
    state, metrics = steps(state, data, steps_per_epoch)
    out.append(np.asarray(metrics["bound"]).astype(int).ravel())
  return out, state.key


def test_each_epoch_leaves_out_a_fresh_uniformly_random_subset():
  num_examples, batch_size, num_epochs = 10, 3, 200  # 9 visited, 1 left out per epoch.
  visited, key = _visited(num_examples, batch_size, num_epochs)
  left_out = []
  for epoch, seen in enumerate(visited):
    assert len(set(seen)) == 9  # Without replacement within an epoch.
    order = np.asarray(training.epoch_permutation(key, epoch, num_examples))
    np.testing.assert_array_equal(seen, order[:9])  # The epoch reads its permutation's head.
    (rest,) = set(range(num_examples)) - set(seen)
    left_out.append(rest)
  # Which example is left out is uniform over the examples and changes from epoch to epoch.
  counts = np.bincount(left_out, minlength=num_examples)
  assert scipy.stats.chisquare(counts).pvalue > 1e-3, counts
  repeats = sum(a == b for a, b in zip(left_out, left_out[1:]))
  # Independent epochs repeat with probability 1/10: 199 pairs, mean 19.9, sd 4.2.
  assert abs(repeats - 19.9) < 4 * np.sqrt(199 * 0.1 * 0.9), repeats


def test_left_out_subsets_of_consecutive_epochs_overlap_as_independent_draws():
  # 1,000 examples in batches of 300: 100 left out per epoch. Two independent random subsets of 100
  # share 100 * 100 / 1000 = 10 examples on average (hypergeometric, variance 8.1 * 900 / 999).
  key = jax.random.key(0)
  orders = [np.asarray(training.epoch_permutation(key, e, 1000)) for e in range(41)]
  overlaps = [len(set(a[900:]) & set(b[900:])) for a, b in zip(orders, orders[1:])]
  standard_error = np.sqrt(100 * 0.1 * 0.9 * 900 / 999 / len(overlaps))
  assert abs(np.mean(overlaps) - 10.0) < 4 * standard_error, overlaps
