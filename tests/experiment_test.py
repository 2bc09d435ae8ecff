"""The experiment runner and command lines on the `smoke` config with the real data files."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from subprocess_env import script_env

from vaex import experiment
from vaex._src import checkpointing

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))
CONFIGS = sorted((ROOT / "experiments" / "configs").glob("*.py"))


def _load_config(name):
  spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _smoke(**overrides):
  config = _load_config("smoke")
  config.data_dir = str(DATA_DIR)
  config.num_sample_images = 4
  for k, v in overrides.items():
    config[k] = v
  return config


def _params(workdir, config):
  splits_shape = (config.num_train_examples, 784)
  _, state, _ = experiment.restore_latest(config, str(workdir), *splits_shape)
  return jax.tree.leaves(state.params), state


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_is_valid_and_documented(path):
  config = _load_config(path.stem)
  experiment.validate_config(config)
  doc = (path.read_text().split('"""')[1]).lower()
  assert "command" in doc and "runtime" in doc and "expected" in doc, path
  for key in ("data_dir", "num_epochs", "batch_size", "seed", "optimizer", "learning_rate",
              "latent_dim", "num_samples", "estimator"):
    assert key in config


def test_smoke_run_writes_everything(tmp_path):
  result = experiment.train_and_evaluate(_smoke(), str(tmp_path))
  assert result["epoch"] == 2 and result["test_elbo"] < 0
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train_lines = [r for r in lines if "train_elbo" in r]
  eval_lines = [r for r in lines if "test_elbo" in r]
  assert [r["step"] for r in train_lines] == [10, 20]
  for r in train_lines:
    assert {"step", "epoch", "train_elbo", "images_per_sec", "wall_s"} <= set(r)
  for r in eval_lines:
    assert {"step", "epoch", "valid_elbo", "test_elbo"} <= set(r) and r["test_elbo"] < 0
  assert json.loads((tmp_path / "config.json").read_text())["latent_dim"] == 8
  assert (tmp_path / "samples.png").stat().st_size > 0
  assert (tmp_path / "reconstructions.png").stat().st_size > 0
  assert (tmp_path / "checkpoints" / "20").is_dir()


def test_stopped_and_resumed_run_is_bitwise_equal_to_an_uninterrupted_one(tmp_path):
  straight = tmp_path / "straight"
  experiment.train_and_evaluate(_smoke(num_epochs=3), str(straight))
  resumed = tmp_path / "resumed"
  experiment.train_and_evaluate(_smoke(num_epochs=1), str(resumed))
  # A crash after the metrics of a later epoch were written but before its checkpoint finished:
  with open(resumed / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": 20, "epoch": 2, "train_elbo": 0.0}) + "\n")
  experiment.train_and_evaluate(_smoke(num_epochs=2), str(resumed))
  experiment.train_and_evaluate(_smoke(num_epochs=3), str(resumed))
  config = _smoke(num_epochs=3)
  a, state_a = _params(straight, config)
  b, state_b = _params(resumed, config)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  np.testing.assert_array_equal(jax.random.key_data(state_a.key), jax.random.key_data(state_b.key))
  steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()
           if "train_elbo" in line]
  assert steps == [10, 20, 30]


def test_resume_within_an_epoch_is_bitwise_equal(tmp_path):
  experiment.train_and_evaluate(_smoke(num_epochs=1, steps_per_call=4), str(tmp_path / "a"))
  # Steps 4 and 8 are mid-epoch checkpoints; drop the end-of-epoch one and resume from step 8.
  import shutil
  shutil.rmtree(tmp_path / "a" / "checkpoints" / "10")
  experiment.train_and_evaluate(_smoke(num_epochs=1, steps_per_call=4), str(tmp_path / "a"))
  experiment.train_and_evaluate(_smoke(num_epochs=1, steps_per_call=4), str(tmp_path / "b"))
  config = _smoke(num_epochs=1, steps_per_call=4)
  for x, y in zip(_params(tmp_path / "a", config)[0], _params(tmp_path / "b", config)[0]):
    np.testing.assert_array_equal(x, y)


def test_workdir_of_another_config_is_refused_and_left_untouched(tmp_path):
  experiment.train_and_evaluate(_smoke(num_epochs=1), str(tmp_path))
  before = (tmp_path / "metrics.jsonl").read_text()
  with pytest.raises(experiment.ConfigError, match=r"different config \(latent_dim: 8 -> 4\)"):
    experiment.train_and_evaluate(_smoke(num_epochs=1, latent_dim=4), str(tmp_path))
  assert (tmp_path / "metrics.jsonl").read_text() == before


def test_unwritable_workdir_is_refused_before_training(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  with pytest.raises(PermissionError, match="--workdir .* is not writable"):
    experiment.train_and_evaluate(_smoke(), str(blocker / "run"))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(num_epochs=0), "config.num_epochs: must be an int >= 1; got 0"),
        (dict(batch_size=5000), "config.batch_size: is 5000 but the training set has only 1000"),
        (dict(optimizer="rmsprop"), "config.optimizer: must be one of"),
        (dict(learning_rate=-0.1), "config.learning_rate: must be a finite number > 0"),
        (dict(estimator="C"), "config.estimator: must be one of"),
        (dict(hidden_sizes=()), "config.hidden_sizes"),
        (dict(likelihood="gaussian"), "config.input_transform: a Gaussian likelihood"),
    ],
)
def test_bad_config_values_fail_before_anything_is_written(tmp_path, overrides, match):
  with pytest.raises(experiment.ConfigError, match=match):
    experiment.train_and_evaluate(_smoke(**overrides), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_unknown_config_key_is_refused(tmp_path):
  config = _smoke()
  config.unlock()
  config.num_epoch = 3  # A typo.
  with pytest.raises(experiment.ConfigError, match=r"config.num_epoch: unknown key"):
    experiment.train_and_evaluate(config, str(tmp_path / "run"))


def test_missing_data_lists_where_it_looked(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    experiment.train_and_evaluate(_smoke(data_dir=str(tmp_path / "nowhere")), str(tmp_path / "run"))
  assert str(tmp_path / "nowhere") in str(info.value)
  assert not (tmp_path / "run").exists()


def test_gaussian_decoder_config_runs(tmp_path):
  config = _load_config("gaussian_decoder_mnist5k")
  config.data_dir = str(DATA_DIR)
  config.num_epochs = 1
  config.num_sample_images = 4
  config.num_devices = 1  # conftest forces 8 CPU devices; batch 100 does not split over 8.
  result = experiment.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(result["test_elbo"])


def test_checkpoint_of_another_model_size_is_refused(tmp_path):
  experiment.train_and_evaluate(_smoke(num_epochs=1), str(tmp_path))
  config = _smoke(num_epochs=1, latent_dim=4)
  with pytest.raises(checkpointing.CheckpointError, match="different model size or config"):
    experiment.restore_latest(config, str(tmp_path), 1000, 784)


def test_non_finite_training_stops_without_checkpointing(tmp_path):
  with pytest.raises(FloatingPointError, match=r"non-finite at step \d+.*last good checkpoint"):
    experiment.train_and_evaluate(_smoke(learning_rate=1e30, optimizer="sgd"), str(tmp_path))
  assert not any((tmp_path / "checkpoints").iterdir())


def _run(script, *args, env_extra=None):
  env = script_env(**(env_extra or {}))
  return subprocess.run(
      [sys.executable, str(ROOT / "experiments" / script), *args],
      capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
  )


def test_command_lines_train_evaluate_and_sample(tmp_path):
  cache = tmp_path / "jax_cache"
  common = ["--config=experiments/configs/smoke.py", f"--workdir={tmp_path}",
            f"--config.data_dir={DATA_DIR}", "--config.num_epochs=1", f"--compilation_cache_dir={cache}"]
  # Cache every program, however fast it compiled, so that the smoke model's programs land in it.
  out = _run("train.py", *common, env_extra={"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
  assert out.returncode == 0, out.stderr[-3000:]
  assert "test ELBO" in out.stdout
  assert any(cache.iterdir()), "train.py stored no compiled program in --compilation_cache_dir"
  out = _run("evaluate.py", *common)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "IWAE-16" in out.stdout
  record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
  assert record["test_iwae_k"] == 16 and record["test_log_likelihood"] >= record["test_elbo"] - 1.0
  assert 0 <= record["active_units"] <= 8 and len(record["kl_per_dimension"]) == 8
  assert abs(record["test_reconstruction"] - record["test_kl"] - record["test_elbo"]) < 1e-3
  assert record["test_examples"] == 10_000
  out = _run("evaluate.py", *common, "--num_test_examples=50")
  assert out.returncode == 0, out.stderr[-3000:]
  assert "50 test examples" in out.stdout
  record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
  assert record["test_examples"] == 50 and np.isfinite(record["test_log_likelihood"])
  (tmp_path / "samples.png").unlink()
  out = _run("sample.py", *common)
  assert out.returncode == 0, out.stderr[-3000:]
  assert (tmp_path / "samples.png").exists()


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_evaluate_refuses_a_bad_number_of_test_examples(tmp_path, bad):
  with pytest.raises(ValueError, match="num_test_examples must be an int >= 0"):
    experiment.evaluate_checkpoint(_smoke(), str(tmp_path), num_test_examples=bad)


def test_command_line_refuses_an_unknown_config_key(tmp_path):
  out = _run("train.py", "--config=experiments/configs/smoke.py", f"--workdir={tmp_path}",
             "--config.not_a_key=1")
  assert out.returncode != 0
  assert "not_a_key" in out.stderr


def test_wake_sleep_algorithm_runs_from_the_config(tmp_path):
  result = experiment.train_and_evaluate(_smoke(num_epochs=1, algorithm="wake_sleep"), str(tmp_path))
  assert np.isfinite(result["test_elbo"]) and result["test_elbo"] < 0


# ----- gradient estimators and KL knobs from the config -----

@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(gradient_estimator="stl"), "config.gradient_estimator: 'stl' .* estimator='A'"),
        (dict(gradient_estimator="dreg", estimator="A"),
         "config.gradient_estimator: 'dreg' .*estimator='iwae'"),
        (dict(gradient_estimator="score"), "config.gradient_estimator: must be one of"),
        (dict(kl_weight=-0.5), "config.kl_weight: must be a finite number >= 0"),
        (dict(estimator="iwae", num_samples=5, free_bits=0.5), "config.free_bits: .* estimator='B'"),
        (dict(estimator="A", free_bits=0.5), "config.free_bits: .* estimator='B'"),
        (dict(algorithm="wake_sleep", kl_weight=0.5), "config.kl_weight: applies to AEVB"),
    ],
)
def test_estimator_and_kl_keys_that_do_not_fit_are_refused(tmp_path, overrides, match):
  with pytest.raises(experiment.ConfigError, match=match):
    experiment.train_and_evaluate(_smoke(**overrides), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_kl_warmup_is_logged_and_resumes_bitwise_mid_warmup(tmp_path):
  """Warm-up over 3 epochs of 10 steps; resumed from step 14 (mid-warm-up, mid-epoch)."""
  config = dict(num_epochs=2, steps_per_call=4, kl_warmup_epochs=3, kl_weight=0.8)
  experiment.train_and_evaluate(_smoke(**config), str(tmp_path / "a"))
  import shutil
  for step in ("20", "18"):  # Resume from the mid-epoch checkpoint of step 14.
    shutil.rmtree(tmp_path / "a" / "checkpoints" / step)
  experiment.train_and_evaluate(_smoke(**config), str(tmp_path / "a"))
  experiment.train_and_evaluate(_smoke(**config), str(tmp_path / "b"))
  for x, y in zip(_params(tmp_path / "a", _smoke(**config))[0],
                  _params(tmp_path / "b", _smoke(**config))[0]):
    np.testing.assert_array_equal(x, y)
  lines = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
  weights = {r["step"]: r["kl_weight"] for r in lines if "kl_weight" in r}
  # The weight in force at the last update of each call: 0.8 * (step - 1) / 30.
  for step, weight in weights.items():
    assert weight == pytest.approx(0.8 * (step - 1) / 30, rel=1e-6), (step, weight)
  assert all(r["train_kl"] > 0 for r in lines if "train_kl" in r)


@pytest.mark.parametrize("overrides", [dict(gradient_estimator="stl", estimator="A"),
                                       dict(gradient_estimator="dreg", estimator="iwae", num_samples=3),
                                       dict(free_bits=0.25, kl_weight=2.0),
                                       dict(gradient_estimator="dreg", estimator="iwae", num_samples=3,
                                            kl_warmup_epochs=2)])
def test_estimator_and_kl_configs_train(tmp_path, overrides):
  summary = experiment.train_and_evaluate(_smoke(num_epochs=1, **overrides), str(tmp_path))
  assert np.isfinite(summary["test_elbo"]) and summary["test_elbo"] < 0
  if "kl_warmup_epochs" in overrides:  # The IWAE bound with a KL warm-up logs its weight and KL.
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if "train_elbo" in r]
    assert train and all(0 < r["kl_weight"] < 0.5 and r["train_kl"] > 0 for r in train), train
