"""Learning-rate schedules from configs: values against closed forms, warm-up, and resume rules."""

import math

import numpy as np
import pytest

from vaex import experiment
from vaex._src import builders, workdir

STEPS_PER_EPOCH = 10


def _config(**overrides):
  config = experiment.default_config()
  config.learning_rate = 2e-3
  config.num_epochs = 5
  for k, v in overrides.items():
    config[k] = v
  experiment.validate_config(config)
  return config


def _rates(config, steps):
  schedule = builders.make_schedule(config, STEPS_PER_EPOCH)
  return np.array([float(schedule(t)) if callable(schedule) else schedule for t in steps])


def test_cosine_decays_from_the_rate_to_its_final_scale_over_num_epochs():
  config = _config(lr_schedule="cosine", lr_final_scale=0.1)
  steps = np.arange(0, 70)
  total = 5 * STEPS_PER_EPOCH
  expected = 2e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * np.minimum(steps, total) / total)))
  np.testing.assert_allclose(_rates(config, steps), expected, rtol=1e-5)


def test_cosine_horizon_is_lr_decay_epochs_when_set():
  config = _config(lr_schedule="cosine", lr_decay_epochs=2)
  rates = _rates(config, [0, 10, 20, 40])
  np.testing.assert_allclose(rates, [2e-3, 1e-3, 0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("name", ["constant", "cosine", "iwae"])
def test_warmup_rises_linearly_then_follows_the_schedule(name):
  warm = _config(lr_schedule=name, lr_warmup_epochs=0.5)
  cold = _config(lr_schedule=name)
  steps = np.arange(0, 30)
  ramp = np.minimum(1.0, (steps + 1) / 5)
  np.testing.assert_allclose(_rates(warm, steps), ramp * _rates(cold, steps), rtol=1e-6)
  assert _rates(warm, [0])[0] > 0  # The first update moves the parameters.


@pytest.mark.parametrize("key, value, message", [
    ("lr_schedule", "linear", "lr_schedule: must be one of"),
    ("lr_warmup_epochs", -1.0, "lr_warmup_epochs: must be a finite number >= 0"),
    ("lr_decay_epochs", -2, "lr_decay_epochs: must be an int >= 0"),
    ("lr_final_scale", 1.5, r"lr_final_scale: must be in \[0, 1\]"),
    ("adam_b1", 1.0, r"adam_b1: must be in \[0, 1\)"),
])
def test_bad_schedule_keys_are_refused(key, value, message):
  config = experiment.default_config()
  config[key] = value
  with pytest.raises(experiment.ConfigError, match=message):
    experiment.validate_config(config)


def test_adam_b1_reaches_the_optimizer():
  import jax.numpy as jnp

  params = {"w": jnp.ones(())}
  grads = {"w": jnp.ones(())}
  for b1 in (0.0, 0.9):
    optimizer = builders.build_optimizer(_config(adam_b1=b1), STEPS_PER_EPOCH)
    state = optimizer.init(params)
    _, state = optimizer.update(grads, state, params)
    mu = state[0].mu["w"]
    assert math.isclose(float(mu), 1 - b1, rel_tol=1e-6)


def test_resuming_a_cosine_run_with_another_horizon_is_refused(tmp_path):
  first = _config(lr_schedule="cosine", num_epochs=5)
  workdir.prepare_workdir(first, str(tmp_path))
  longer = _config(lr_schedule="cosine", num_epochs=8)
  with pytest.raises(experiment.ConfigError, match="set --config.lr_decay_epochs=5"):
    workdir.prepare_workdir(longer, str(tmp_path))
  # Keeping the horizon explicitly extends the run on the same schedule.
  workdir.prepare_workdir(_config(lr_schedule="cosine", num_epochs=8, lr_decay_epochs=5),
                          str(tmp_path))
  # A constant schedule may always be extended.
  workdir.prepare_workdir(_config(num_epochs=5), str(tmp_path / "c"))
  workdir.prepare_workdir(_config(num_epochs=9), str(tmp_path / "c"))
