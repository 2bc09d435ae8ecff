"""Data parallelism on a jax.sharding.Mesh (8 forced CPU devices) and over processes (jax.distributed).

Tolerance: sharded runs are not bitwise equal to one device because XLA sums the batch's gradient
in a different order (per-device partial sums, then an all-reduce); float32 reassociation differs by
a few ulps per step. After a dozen Adam steps parameters agree to ~1e-7 absolute; we assert 1e-5.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from subprocess_env import script_env

import vaex
from vaex import experiment
from vaex._src import evaluation, sharding, training

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))
ATOL = 1e-5
DIM, NUM_EXAMPLES, BATCH = 12, 64, 16


def _small():
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=3, hidden_sizes=(16,)),
                   vaex.BernoulliMLPDecoder(data_dim=DIM, hidden_sizes=(16,)))
  optimizer = training.make_optimizer("adam", 1e-2)
  loss_fn = training.make_loss_fn(model, num_train=NUM_EXAMPLES)
  data = (np.random.default_rng(0).uniform(size=(NUM_EXAMPLES, DIM)) < 0.4).astype(np.uint8)
  return model, optimizer, loss_fn, data


def _train_on(num_devices, epochs=3):
  model, optimizer, loss_fn, data = _small()
  mesh = sharding.make_mesh(num_devices)
  state = sharding.put_replicated(
      training.create_train_state(jax.random.key(0), model, optimizer, DIM), mesh)
  steps = training.make_train_steps(loss_fn, optimizer, batch_size=BATCH, mesh=mesh)
  data = sharding.put_replicated(data, mesh)
  for _ in range(epochs):
    state, _ = steps(state, data, num_steps=NUM_EXAMPLES // BATCH)
  return state, steps, data


def test_eight_forced_devices_are_visible():
  assert jax.device_count() == 8


@pytest.mark.parametrize("num_devices", [2, 4, 8])
def test_sharded_training_matches_one_device(num_devices):
  one, _, _ = _train_on(1)
  many, _, _ = _train_on(num_devices)
  for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(many.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=ATOL)
  leaf = jax.tree.leaves(many.params)[0]
  assert leaf.sharding.mesh.devices.size == num_devices and leaf.sharding.is_fully_replicated


def test_the_sharded_step_really_splits_the_batch_and_all_reduces():
  state, steps, data = _train_on(8, epochs=1)
  hlo = steps.lower(state, data, num_steps=2).compile().as_text()
  assert "all-reduce" in hlo
  # The per-device program works on 16 / 8 = 2 examples: the decoder's logits are [2, 12].
  assert "f32[2,12]" in hlo


def test_per_step_path_on_eight_devices_matches_one_device():
  model, optimizer, loss_fn, data = _small()
  results = []
  for n in (1, 8):
    mesh = sharding.make_mesh(n)
    step = training.make_train_step(loss_fn, optimizer, mesh=mesh)
    state = sharding.put_replicated(
        training.create_train_state(jax.random.key(0), model, optimizer, DIM), mesh)
    for i in range(4):
      batch = jax.device_put(data[i * BATCH:(i + 1) * BATCH], sharding.batch_sharded(mesh))
      state, _ = step(state, batch)
    results.append(jax.tree.leaves(state.params))
  for a, b in zip(*results):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=ATOL)


def test_sharded_evaluation_matches_one_device():
  model, _, _, data = _small()
  params = model.init(jax.random.key(1), data[:1].astype(np.float32))
  values = []
  for n in (1, 8):
    mesh = sharding.make_mesh(n)
    fn = evaluation.make_dataset_bound(model, estimator="iwae", num_samples=5, batch_size=24,
                                       mesh=mesh)
    values.append(np.asarray(fn(sharding.put_replicated(params, mesh), jax.random.key(2),
                                sharding.put_replicated(data, mesh))))
  assert values[0].shape == (NUM_EXAMPLES,)
  np.testing.assert_allclose(values[0], values[1], rtol=1e-5)


def test_batch_not_divisible_by_devices_is_refused_with_both_numbers():
  _, optimizer, loss_fn, _ = _small()
  with pytest.raises(ValueError, match=r"`batch_size` \(100\) must be divisible by the number of "
                                       r"devices \(8\).*batch_size=104 or 96"):
    training.make_train_steps(loss_fn, optimizer, batch_size=100, mesh=sharding.make_mesh(8))


def test_too_many_devices_is_refused():
  with pytest.raises(ValueError, match="`num_devices` must be between 0 .* and 8"):
    sharding.make_mesh(9)


def _smoke(**overrides):
  spec = importlib.util.spec_from_file_location("smoke", ROOT / "experiments/configs/smoke.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data_dir = str(DATA_DIR)
  config.num_sample_images = 0
  for k, v in overrides.items():
    config[k] = v
  return config


def test_checkpoint_written_on_eight_devices_resumes_on_one(tmp_path):
  common = dict(batch_size=96, eval_batch_size=1000)
  experiment.train_and_evaluate(_smoke(num_devices=8, num_epochs=1, **common), str(tmp_path / "a"))
  experiment.train_and_evaluate(_smoke(num_devices=1, num_epochs=2, **common), str(tmp_path / "a"))
  experiment.train_and_evaluate(_smoke(num_devices=1, num_epochs=2, **common), str(tmp_path / "b"))
  config = _smoke(num_devices=1, num_epochs=2, **common)
  _, a, _ = experiment.restore_latest(config, str(tmp_path / "a"), 1000, 784)
  _, b, _ = experiment.restore_latest(config, str(tmp_path / "b"), 1000, 784)
  assert int(a.step) == int(b.step) == 20
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=ATOL)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _train_cmd(workdir, *extra):
  return [sys.executable, str(ROOT / "experiments" / "train.py"),
          "--config=experiments/configs/smoke.py", f"--workdir={workdir}",
          f"--config.data_dir={DATA_DIR}", "--config.num_devices=0", "--config.num_epochs=1",
          "--config.num_sample_images=0", *extra]


def _env(devices):
  return script_env(devices)


def _run_all(procs, timeout):
  deadline = time.monotonic() + timeout
  try:
    for p in procs:
      p.wait(timeout=max(1, deadline - time.monotonic()))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return [(p.returncode, p.stdout.read(), p.stderr.read()) for p in procs]


def _final_params(workdir):
  config = _smoke(num_devices=1, num_epochs=1)
  _, state, _ = experiment.restore_latest(config, str(workdir), 1000, 784)
  return jax.tree.leaves(state.params)


def test_two_processes_on_loopback_match_one_process_with_four_devices(tmp_path):
  port = _free_port()
  procs = [
      subprocess.Popen(
          _train_cmd(tmp_path / "multi", "--config.data_placement=host",
                     f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                     f"--process_id={i}"),
          env=_env(2), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)
  ]
  procs.append(subprocess.Popen(_train_cmd(tmp_path / "single"), env=_env(4), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  results = _run_all(procs, timeout=420)
  for code, _, err in results:
    assert code == 0, err[-3000:]
  # Process 0 alone wrote the metrics; every global batch was assembled from both processes' rows.
  lines = (tmp_path / "multi" / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line)["step"] for line in lines if "train_elbo" in line] == [10]
  for a, b in zip(_final_params(tmp_path / "multi"), _final_params(tmp_path / "single")):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=ATOL)


def test_unreachable_coordinator_fails_in_bounded_time_naming_the_address():
  address = f"127.0.0.1:{_free_port()}"
  code = ("from vaex._src import sharding; "
          f"sharding.initialize_distributed({address!r}, 2, 1, timeout_seconds=5)")
  start = time.monotonic()
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=_env(1))
  assert out.returncode != 0
  assert address in out.stderr
  assert time.monotonic() - start < 90


def test_process_id_outside_the_process_count_is_refused():
  expected = r"`process_id` must be in \[0, num_processes\) = \[0, 2\); got 2"
  with pytest.raises(ValueError, match=expected):
    sharding.initialize_distributed("127.0.0.1:1", 2, 2)
