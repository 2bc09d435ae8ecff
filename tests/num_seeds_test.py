"""Many seeds in one program (`config.num_seeds`): replicas against single runs, resume, metrics lines.

One vmapped run of S = 2 replicas (seeds 3 and 4) on the smoke config, 1 epoch of 1,000 examples in
calls of 4 steps, is shared by the tests; its replica of seed 4 is compared with a single run with
`seed = 4`, trained by the unchanged one-seed path.
"""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

import vaex
from vaex import experiment
from vaex._src import seeds, sharding, training

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))
SEED, NUM_SEEDS = 3, 2
# Float32 rounding: XLA may sum a batched (vmapped) matmul in another order than the unbatched one,
# and 10 Adam updates carry such last-bit differences along. Measured: 6e-8 absolute on parameters
# of order 0.1 (the same model, 10 steps).
PARAMS_TOL = dict(rtol=1e-5, atol=1e-6)


def _config(**overrides):
  spec = importlib.util.spec_from_file_location("smoke", ROOT / "experiments" / "configs" / "smoke.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data_dir = str(DATA_DIR)
  config.num_epochs = 1
  config.steps_per_call = 4  # Calls of 4, 4 and 2 steps: checkpoints at steps 4, 8 and 10.
  config.num_sample_images = 4
  config.eval_iwae_samples = 8
  config.seed = SEED
  for k, v in overrides.items():
    config[k] = v
  return config


def _lines(workdir):
  return [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def _without_timing(records):
  timing = ("images_per_sec", "wall_s", "compile_s")
  return [{k: v for k, v in r.items() if k not in timing} for r in records]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The vmapped run (seeds 3, 4) and the single run with seed 4: `(workdir, result)` each."""
  root = tmp_path_factory.mktemp("num_seeds")
  vmapped = experiment.train_and_evaluate(_config(num_seeds=NUM_SEEDS), str(root / "vmapped"))
  single = experiment.train_and_evaluate(_config(seed=SEED + 1), str(root / "single"))
  return {"vmapped": (root / "vmapped", vmapped), "single": (root / "single", single)}


def test_a_replica_equals_the_single_run_of_its_seed(runs):
  vmapped_dir, vmapped = runs["vmapped"]
  single_dir, single = runs["single"]
  _, stacked, _ = experiment.restore_latest(_config(num_seeds=NUM_SEEDS), str(vmapped_dir), 1000, 784)
  _, alone, _ = experiment.restore_latest(_config(seed=SEED + 1), str(single_dir), 1000, 784)
  assert int(stacked.step) == int(alone.step) == 10
  for a, b in zip(jax.tree.leaves(stacked.params), jax.tree.leaves(alone.params), strict=True):
    assert a.shape == (NUM_SEEDS, *b.shape)
    np.testing.assert_allclose(np.asarray(a)[1], np.asarray(b), **PARAMS_TOL)
    # Replica 0 (seed 3) is another run: its parameters differ from seed 4's.
    assert not np.allclose(np.asarray(a)[0], np.asarray(b), **PARAMS_TOL)
  np.testing.assert_array_equal(jax.random.key_data(stacked.key)[1], jax.random.key_data(alone.key))
  # The same training and evaluation numbers, line by line.
  seed4 = [r for r in _lines(vmapped_dir) if r["seed"] == SEED + 1 and "source" not in r]
  alone_lines = _lines(single_dir)
  assert len(seed4) == len(alone_lines) == 4  # Training lines at steps 4, 8, 10; evaluation at 10.
  for r, s in zip(_without_timing(seed4), _without_timing(alone_lines), strict=True):
    assert r.pop("seed") == SEED + 1 and set(r) == set(s)
    for key, value in s.items():
      np.testing.assert_allclose(r[key], value, rtol=1e-5, err_msg=key)
  assert vmapped["per_seed"][1]["test_elbo"] == pytest.approx(single["test_elbo"], rel=1e-5)


def test_metrics_have_one_line_per_seed_and_one_seed_lines_have_none(runs):
  vmapped_dir, vmapped = runs["vmapped"]
  lines = _lines(vmapped_dir)
  train = [(r["step"], r["seed"]) for r in lines if "train_elbo" in r]
  evals = [(r["step"], r["seed"]) for r in lines if "test_elbo" in r]
  assert train == [(step, seed) for step in (4, 8, 10) for seed in (3, 4)]
  assert evals == [(10, 3), (10, 4)]
  for r in lines:
    assert np.isfinite(r.get("train_elbo", r.get("test_elbo")))
  assert vmapped["seed"] == SEED and [r["seed"] for r in vmapped["per_seed"]] == [3, 4]
  assert all("seed" not in r for r in _lines(runs["single"][0]))
  assert (vmapped_dir / "samples.png").stat().st_size > 0  # Replica 0's.
  assert (vmapped_dir / "checkpoints" / "10").is_dir()  # One checkpoint for all replicas.


def test_evaluate_checkpoint_gives_one_record_per_seed(runs):
  vmapped_dir, _ = runs["vmapped"]
  records = experiment.evaluate_checkpoint(_config(num_seeds=NUM_SEEDS), str(vmapped_dir),
                                           num_test_examples=100)
  alone = experiment.evaluate_checkpoint(_config(seed=SEED + 1), str(runs["single"][0]),
                                         num_test_examples=100)
  assert [r["seed"] for r in records] == [3, 4] and "seed" not in alone
  for key in ("test_elbo", "test_log_likelihood", "test_kl"):
    assert records[1][key] == pytest.approx(alone[key], rel=1e-5), key
  assert records[0]["test_log_likelihood"] != pytest.approx(alone["test_log_likelihood"], rel=1e-3)
  written = [r for r in _lines(vmapped_dir) if r.get("source") == "evaluate"]
  assert [r["seed"] for r in written] == [3, 4]
  with pytest.raises(ValueError, match=r"replica must be None or in \[0, config.num_seeds\)"):
    experiment.evaluate_checkpoint(_config(num_seeds=NUM_SEEDS), str(vmapped_dir), replica=2)


def test_resume_mid_run_is_bitwise_equal(runs, tmp_path):
  vmapped_dir, _ = runs["vmapped"]
  resumed = tmp_path / "resumed"
  shutil.copytree(vmapped_dir, resumed)
  shutil.rmtree(resumed / "checkpoints" / "10")  # Resume from step 8, inside the epoch.
  experiment.train_and_evaluate(_config(num_seeds=NUM_SEEDS), str(resumed))
  config = _config(num_seeds=NUM_SEEDS)
  _, a, _ = experiment.restore_latest(config, str(vmapped_dir), 1000, 784)
  _, b, _ = experiment.restore_latest(config, str(resumed), 1000, 784)
  for x, y in zip(jax.tree.leaves((a.params, a.opt_state)), jax.tree.leaves((b.params, b.opt_state)),
                  strict=True):
    np.testing.assert_array_equal(x, y)
  np.testing.assert_array_equal(jax.random.key_data(a.key), jax.random.key_data(b.key))
  training_lines = lambda d: _without_timing([r for r in _lines(d) if "source" not in r])  # noqa: E731
  assert training_lines(resumed) == training_lines(vmapped_dir)


def test_replica_state_and_replicas_slice_the_stacked_state(runs):
  _, stacked, _ = experiment.restore_latest(_config(num_seeds=NUM_SEEDS), str(runs["vmapped"][0]),
                                            1000, 784)
  one = seeds.replica_state(stacked, 1)
  fields = [(field, key) for field, _, key in seeds.replicas(stacked, SEED, NUM_SEEDS)]
  assert [field for field, _ in fields] == [{"seed": 3}, {"seed": 4}]
  np.testing.assert_array_equal(jax.random.key_data(fields[1][1]), jax.random.key_data(one.key))
  assert jax.tree.structure(one.opt_state) == jax.tree.structure(stacked.opt_state)
  assert one.step.shape == () and jax.tree.leaves(one.params)[0].ndim == 1


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(num_seeds=0), r"config.num_seeds: must be an int >= 1; got 0"),
        (dict(num_seeds=2, data_placement="host"),
         r"config.num_seeds: = 2 vmaps the on-device epoch function .* Set data_placement='device'"),
    ],
)
def test_unsupported_values_are_refused_naming_the_key(overrides, match, tmp_path):
  with pytest.raises(experiment.ConfigError, match=match):
    experiment.train_and_evaluate(_config(**overrides), str(tmp_path))
  assert not os.listdir(tmp_path)


def test_num_seeds_cannot_change_on_resume(runs):
  vmapped_dir, _ = runs["vmapped"]
  before = (vmapped_dir / "metrics.jsonl").read_text()
  with pytest.raises(experiment.ConfigError, match=r"different config \(num_seeds: 2 -> 3\)"):
    experiment.train_and_evaluate(_config(num_seeds=3), str(vmapped_dir))
  assert (vmapped_dir / "metrics.jsonl").read_text() == before


def test_vmapped_epoch_function_matches_single_runs_on_a_mesh():
  """The program the training loop runs on a mesh of 4 devices (each replica's batch sharded along
  "data") against one unvmapped run per seed on the same mesh, over two epochs (two data orders)."""
  dim, num_examples, batch = 12, 64, 16
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=3, hidden_sizes=(16,)),
                   vaex.BernoulliMLPDecoder(data_dim=dim, hidden_sizes=(16,)))
  optimizer = training.make_optimizer("adam", 1e-2)
  loss_fn = training.make_loss_fn(model, num_train=num_examples)
  mesh = sharding.make_mesh(4)
  data = (np.random.default_rng(0).uniform(size=(num_examples, dim)) < 0.4).astype(np.uint8)
  data = sharding.put_replicated(data, mesh)
  train_steps = training.make_train_steps(loss_fn, optimizer, batch_size=batch, mesh=mesh)
  together = seeds.vmap_train_steps(train_steps, mesh=mesh)
  stacked = sharding.put_replicated(seeds.create_train_state(5, 2, model, optimizer, dim), mesh)
  stacked, first = together(stacked, data, 4)  # Epoch 0, then epoch 1.
  stacked, second = together(stacked, data, 4)
  assert int(stacked.step) == 8 and first["bound"].shape == (2, 4)
  for s in range(2):
    alone = sharding.put_replicated(
        training.create_train_state(jax.random.key(5 + s), model, optimizer, dim), mesh)
    alone, alone_first = train_steps(alone, data, 4)
    alone, alone_second = train_steps(alone, data, 4)
    np.testing.assert_allclose(np.concatenate([first["bound"][s], second["bound"][s]]),
                               np.concatenate([alone_first["bound"], alone_second["bound"]]),
                               rtol=1e-5)
    for a, b in zip(jax.tree.leaves(stacked.params), jax.tree.leaves(alone.params), strict=True):
      np.testing.assert_allclose(np.asarray(a)[s], np.asarray(b), **PARAMS_TOL)


def test_per_seed_training_records_split_every_per_step_value():
  record = {"step": 4, "epoch": 0, "train_elbo": -1.0, "images_per_sec": 10.0, "wall_s": 2.0,
            "train_kl": 9.0, "kl_weight": 9.0, "skipped_steps": 1}
  nan = float("nan")
  metrics = {"bound": np.array([[-1.0, -3.0], [-2.0, nan]]), "kl": np.array([[1.0, 2.0], [3.0, 5.0]]),
             "kl_weight": np.array([[0.1, 0.2], [0.1, 0.2]])}
  lines = seeds.per_seed_training_records(record, metrics, seed=7)
  assert lines == [
      {"step": 4, "epoch": 0, "seed": 7, "train_elbo": -2.0, "images_per_sec": 10.0, "wall_s": 2.0,
       "train_kl": 1.5, "kl_weight": 0.2},
      {"step": 4, "epoch": 0, "seed": 8, "train_elbo": -2.0, "images_per_sec": 10.0, "wall_s": 2.0,
       "train_kl": 4.0, "kl_weight": 0.2, "skipped_steps": 1},
  ]
