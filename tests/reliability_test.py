"""Reliability (issue 8): bad inputs, the non-finite guard, kill -9 crash safety, numerical edge
cases and run-to-run reproducibility.

* `CATALOGUE` lists bad inputs across the public API, the data loaders, the configs and the command
  line, and the checkpoints and workdir. Each case asserts the error type and that the message names
  the argument (or file) and gives the fix. BUILD_NOTES.md has the same table.
* The crash test SIGKILLs `experiments/train.py` at random moments (fixed seed), resumes it each
  time, and checks that it ends bitwise equal to an uninterrupted run, with every step logged once.
* The other tests run in-process on the smoke config or a tiny VAE, to stay fast.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from subprocess_env import script_env

import vaex
import vaex.data
from vaex import experiment
from vaex._src import builders, checkpointing, training
from vaex._src import workdir as workdir_lib

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR") or ROOT.parent / "shared" / "data")
SMOKE = ROOT / "experiments" / "configs" / "smoke.py"

pytestmark = pytest.mark.skipif(
    not (DATA_DIR / "binarized_mnist_test.amat.gz").is_file(), reason=f"no data in {DATA_DIR}"
)


def _smoke_config(**overrides: Any):
  spec = importlib.util.spec_from_file_location("smoke", SMOKE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data_dir = str(DATA_DIR)
  for k, v in overrides.items():
    config[k] = v
  return config


def _smoke(**overrides: Any):
  """The smoke config for in-process runs: 1 epoch, checkpoints every 5 steps, no images."""
  return _smoke_config(**{"num_epochs": 1, "steps_per_call": 5, "num_sample_images": 0, **overrides})


def _tree_equal(a: Any, b: Any) -> None:
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _all_finite(tree: Any) -> bool:
  return all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(tree))


def _metrics(workdir: Path) -> list[dict[str, Any]]:
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
          if line.strip()]


def _steps(directory: Path) -> list[int]:
  """The complete checkpoint steps in `directory` (orbax's temporary directories excluded)."""
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if directory.is_dir() else []


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
  """A finished 1-epoch smoke run (checkpoints at steps 5 and 10). Tests copy it before changing it."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  experiment.train_and_evaluate(_smoke(), str(workdir))
  return workdir


def _copy_run(run: Path, tmp: Path) -> Path:
  target = tmp / "run"
  shutil.copytree(run, target)
  return target


# ------------------------------------------------------------------------------------------------
# The catalogue of bad inputs.


class CommandFailed(Exception):
  """A command line exited with a non-zero status; the message is its stderr."""


def _cli(*flags: str) -> None:
  env = script_env(JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, str(ROOT / "experiments" / "train.py"), f"--config={SMOKE}", *flags],
      capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
  )
  if out.returncode != 0:
    raise CommandFailed(f"exit status {out.returncode}\n{out.stderr[-3000:]}")


@functools.cache
def _tiny_vae(decoder: type = vaex.BernoulliMLPDecoder):
  """A VAE 784 -> 16 -> 2 -> 16 -> 784 and its parameters (initialized in one compiled call)."""
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=2, hidden_sizes=(16,)),
                   decoder(data_dim=784, hidden_sizes=(16,)))
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 784)))
  return model, params


def _callables(dim_x: int = 10, dim_out: int = 10):
  encode = lambda x: (x[:, :2] * 0.1, x[:, :2] * 0.0)  # noqa: E731
  decode = lambda z: jnp.zeros((z.shape[0], dim_out)) + jnp.sum(z, -1, keepdims=True)  # noqa: E731
  x = np.ones((3, dim_x), np.float32)
  return x, encode, decode


def _elbo(x=None, key=None, num_samples=1, encode=None, decode=None, dim_out=10):
  x0, encode0, decode0 = _callables(dim_out=dim_out)
  return vaex.elbo(jax.random.key(0) if key is None else key, x0 if x is None else x,
                   encode or encode0, decode or decode0, num_samples=num_samples)


def _iwae(x=None, num_samples=4):
  x0, encode, decode = _callables()
  return vaex.iwae_bound(jax.random.key(0), x0 if x is None else x, encode, decode,
                         num_samples=num_samples)


def _amat_lines(n: int) -> str:
  rng = np.random.default_rng(0)
  return "".join(" ".join(map(str, rng.integers(0, 2, 784))) + "\n" for _ in range(n))


def _write(path: Path, text: str | bytes) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(text.encode() if isinstance(text, str) else text)
  return path


def _truncated_amat(tmp: Path) -> None:
  _write(tmp / "binarized_mnist_test.amat", _amat_lines(2) + "0 1 0 1 0\n")
  vaex.data.load_binarized_mnist("test", data_dir=tmp, source="files")


def _truncated_gzip(tmp: Path) -> None:
  raw = (DATA_DIR / "binarized_mnist_test.amat.gz").read_bytes()
  _write(tmp / "binarized_mnist_test.amat.gz", raw[: len(raw) // 2])
  vaex.data.load_binarized_mnist("test", data_dir=tmp)


def _short_amat(tmp: Path) -> None:
  _write(tmp / "binarized_mnist_test.amat", _amat_lines(3))
  vaex.data.load_binarized_mnist("test", data_dir=tmp)


def _truncated_csv(tmp: Path) -> None:
  line = ",".join(["0"] * 784 + ["3"]) + "\n"
  _write(tmp / "mnist_5k_grayscale.csv", line * 2 + line[:600])
  vaex.data.load_mnist_grayscale_subset(data_dir=tmp)


def _unknown_key(tmp: Path) -> None:
  config = _smoke()
  config.unlock()
  config.num_epoch = 3  # A typo of num_epochs.
  experiment.train_and_evaluate(config, str(tmp / "w"))


def _python_type(tmp: Path) -> None:
  _smoke().latent_dim = "big"


def _corrupt_latest(tmp: Path, run: Path) -> None:
  """Truncates every file of the latest checkpoint's state, then resumes the run."""
  workdir = _copy_run(run, tmp)
  for path in (workdir / "checkpoints" / "10" / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  experiment.train_and_evaluate(_smoke(), str(workdir))


def _bit_flip(tmp: Path, run: Path) -> None:
  """Flips one bit of the largest array file: orbax itself reads such a file without complaint."""
  workdir = _copy_run(run, tmp)
  files = [p for p in (workdir / "checkpoints" / "10" / "state").rglob("*") if p.is_file()]
  largest = max(files, key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  data[len(data) // 2] ^= 0x01
  largest.write_bytes(bytes(data))
  experiment.restore_latest(_smoke(), str(workdir), 1000, 784)


def _other_size(tmp: Path, run: Path) -> None:
  experiment.restore_latest(_smoke(latent_dim=4), str(run), 1000, 784)


def _other_config(tmp: Path, run: Path) -> None:
  experiment.train_and_evaluate(_smoke(latent_dim=4), str(_copy_run(run, tmp)))


def _no_checkpoint(tmp: Path) -> None:
  experiment.restore_latest(_smoke(), str(tmp / "empty"), 1000, 784)


def _below_a_file(tmp: Path) -> None:
  _write(tmp / "a_file", "")
  experiment.train_and_evaluate(_smoke(), str(tmp / "a_file" / "run"))


def _full_disk_workdir(tmp: Path) -> None:
  def no_space(path, text):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(workdir_lib, "_write_atomically", no_space)
    workdir_lib.prepare_workdir(_smoke(), str(tmp / "run"))


def _x_size_vs_model(tmp: Path) -> None:
  model, params = _tiny_vae()
  vaex.bound(params, jax.random.key(0), jnp.zeros((2, 100)), model)


def _full_disk_checkpoint(tmp: Path, error: Exception) -> None:
  _, params = _tiny_vae()
  state = training.TrainState(params=params, opt_state=(), step=jnp.zeros((), jnp.int32),
                              key=jax.random.key(0))
  checkpointer = checkpointing.Checkpointer(tmp / "checkpoints")
  try:
    checkpointer.save(state, {"epoch": 0})

    def no_space(*args, **kwargs):
      raise error

    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(ocp.CheckpointManager, "save", no_space)
      checkpointer.save(state.replace(step=state.step + 5), {"epoch": 1})
  finally:
    checkpointer.close()


@dataclasses.dataclass(frozen=True)
class Bad:
  """One bad input. `names`/`fix` are substrings of the message; `{tmp}` stands for the test's dir."""

  id: str
  input: str
  where: str
  error: type[BaseException]
  call: Callable[..., Any]
  names: tuple[str, ...]
  fix: tuple[str, ...]
  uses_run: bool = False  # `call(tmp, trained_run)` instead of `call(tmp)`.
  check: Callable[[BaseException], bool] | None = None


CATALOGUE: list[Bad] = [
    # ----- public API: bounds, densities, reparameterization -----
    Bad("x_rank3", "x of rank 3 ([2, 3, 10], unflattened images) into a dense encoder", "vaex.elbo",
        ValueError, lambda tmp: _elbo(x=np.ones((2, 3, 10), np.float32)),
        ("encode(x)", "[batch, dim_z]", "(2, 3, 10)"), ("x.reshape(x.shape[0], -1)",)),
    Bad("x_rank1", "x of rank 1 (one example without a batch axis)", "vaex.iwae_bound", ValueError,
        lambda tmp: _iwae(x=np.ones((10,), np.float32)), ("`x`", "rank 2"), ("x[None]",)),
    Bad("x_size_vs_decoder", "x with 12 features, decoder outputs 10", "vaex.elbo", ValueError,
        lambda tmp: _elbo(x=np.ones((3, 12), np.float32), dim_out=10),
        ("decode(z)", "(3, 10)", "(12,) values per example"), ("parameters for each row of z",)),
    Bad("x_size_vs_flax_model", "x with 100 features for a VAE built for 784", "vaex.bound",
        ValueError, _x_size_vs_model,
        ("`x`", "100", "784"), ("data_dim",)),
    Bad("mean_log_var_mismatch", "mean [2, 3] with log_var [2, 2]", "vaex.reparameterize",
        ValueError, lambda tmp: vaex.reparameterize(jax.random.key(0), jnp.zeros((2, 3)),
                                                    jnp.zeros((2, 2))),
        ("`mean`", "`log_var`", "(2, 3)", "(2, 2)"), ("jnp.split(h, 2, axis=-1)", "broadcast_to")),
    Bad("kl_mismatch", "mean [4, 2] with log_var [1, 2]", "vaex.gaussian_kl", ValueError,
        lambda tmp: vaex.gaussian_kl(jnp.zeros((4, 2)), jnp.zeros((1, 2))),
        ("`mean`", "`log_var`"), ("jnp.broadcast_to(log_var, mean.shape)",)),
    Bad("encoder_mismatch", "encoder returning mean [3, 4], log_var [3, 3]", "vaex.elbo",
        ValueError, lambda tmp: _elbo(encode=lambda x: (x[:, :4], x[:, :3]),
                                      x=np.ones((3, 10), np.float32)),
        ("mean (encode(x)[0])", "log_var (encode(x)[1])"), ("jnp.split",)),
    Bad("encoder_single_output", "encoder returning one array", "vaex.elbo", TypeError,
        lambda tmp: _elbo(encode=lambda x: x), ("encode(x)", "(mean, log_var)"),
        ("jnp.split(h, 2, axis=-1)",)),
    Bad("k_zero", "num_samples=0 (k < 1)", "vaex.iwae_bound", ValueError,
        lambda tmp: _iwae(num_samples=0), ("`num_samples`", "got 0"), ("at least one sample",)),
    Bad("k_negative", "num_samples=-3", "vaex.reparameterize", ValueError,
        lambda tmp: vaex.reparameterize(jax.random.key(0), jnp.zeros((2,)), jnp.zeros((2,)), -3),
        ("`num_samples`", "-3"), (">= 1", "at least one sample")),
    Bad("k_float", "num_samples=2.0 (not an int)", "vaex.elbo", TypeError,
        lambda tmp: _elbo(num_samples=2.0), ("`num_samples`", "float 2.0"), ("num_samples=5",)),
    Bad("k_array", "num_samples=jnp.array(3) (an array, cannot fix a shape)", "vaex.iwae_bound",
        TypeError, lambda tmp: _iwae(num_samples=jnp.array(3)), ("`num_samples`", "array"),
        ("Python int", "static value")),
    Bad("x_uint8", "uint8 x where floats are needed", "vaex.elbo", TypeError,
        lambda tmp: _elbo(x=np.ones((3, 10), np.uint8)), ("`x`", "uint8"),
        ("x.astype(jnp.float32)", "divide by 255")),
    Bad("x_int32_density", "int32 x", "vaex.bernoulli_log_likelihood", TypeError,
        lambda tmp: vaex.bernoulli_log_likelihood(jnp.ones((2, 3), jnp.int32), jnp.zeros((2, 3))),
        ("`x`", "int32"), ("astype(jnp.float32)",)),
    Bad("logits_shape", "logits [2, 4] for x [2, 3]", "vaex.bernoulli_log_likelihood", ValueError,
        lambda tmp: vaex.bernoulli_log_likelihood(jnp.ones((2, 3)), jnp.zeros((2, 4))),
        ("`x`", "`logits`", "(2, 3)", "(2, 4)"), ("jnp.broadcast_to(logits, x.shape)",)),
    Bad("key_int", "key=7 (an int seed)", "vaex.elbo", TypeError, lambda tmp: _elbo(key=7),
        ("`key`", "int 7"), ("jax.random.key(seed)",)),
    Bad("key_batch", "a batch of 3 keys", "vaex.reparameterize", TypeError,
        lambda tmp: vaex.reparameterize(jax.random.split(jax.random.key(0), 3), jnp.zeros(2),
                                        jnp.zeros(2)),
        ("`key`", "shape (3,)"), ("jax.vmap",)),
    Bad("key_float_array", "a float array as key", "vaex.iwae_bound", TypeError,
        lambda tmp: vaex.iwae_bound(np.zeros(2, np.float32), *_callables(), num_samples=2),
        ("`key`", "float32"), ("jax.random.key(seed)",)),
    Bad("gaussian_given_logits", "logits instead of a (mean, log_var) pair",
        "vaex.gaussian_log_likelihood", TypeError,
        lambda tmp: vaex.gaussian_log_likelihood(jnp.zeros((2, 3)), jnp.zeros((2, 3))),
        ("`params`", "pair (mean, log_var)", "ArrayImpl"), ("vaex.bernoulli_log_likelihood",)),
    Bad("estimator_unknown", "estimator='C'", "vaex.loss", ValueError,
        lambda tmp: vaex.loss(_tiny_vae()[1], jax.random.key(0), jnp.zeros((2, 784)),
                              _tiny_vae()[0], estimator="C"),
        ("`estimator`", "'C'"), ("'A', 'B', 'iwae'",)),
    # ----- host-side value checks -----
    Bad("non_binary", "0.5 in data for a Bernoulli likelihood", "vaex.check_binary", ValueError,
        lambda tmp: vaex.check_binary(np.array([[0.0, 0.5, 1.0]])),
        ("`x`", "0.5", "index (0, 1)"), ("Binarize", "vaex.gaussian_log_likelihood")),
    Bad("nan", "NaN in data", "vaex.check_finite", ValueError,
        lambda tmp: vaex.check_finite(np.array([[0.0, 1.0], [np.nan, 0.0]]), "x_train"),
        ("`x_train`", "nan", "index (1, 0)"), ("Clean or drop",)),
    Bad("inf", "-inf in data", "vaex.check_finite", ValueError,
        lambda tmp: vaex.check_finite(np.array([1.0, -np.inf])), ("`x`", "-inf", "index (1,)"),
        ("Clean or drop",)),
    Bad("nan_to_check_binary", "NaN in data given to the binary check", "vaex.check_binary",
        ValueError, lambda tmp: vaex.check_binary(np.array([0.0, np.nan, 1.0])),
        ("`x`", "nan", "index (1,)"), ("Clean or drop",)),
    # ----- data files -----
    Bad("data_missing", "data_dir without the files", "vaex.data.load_binarized_mnist",
        vaex.data.DataNotFoundError,
        lambda tmp: vaex.data.load_binarized_mnist("test", data_dir=tmp / "nowhere"),
        ("{tmp}/nowhere/binarized_mnist_test.amat", "{tmp}/nowhere/binarized_mnist_test.amat.gz",
         "from the `data_dir` argument"), ("To fix", "VAEX_DATA_DIR")),
    Bad("data_truncated", "a .amat file cut mid-line", "vaex.data.load_binarized_mnist",
        vaex.data.DataFormatError, _truncated_amat,
        ("{tmp}/binarized_mnist_test.amat", "line 3", "found 5"), ("truncated", "copy it again")),
    Bad("data_truncated_gzip", "a .amat.gz file cut in half", "vaex.data.load_binarized_mnist",
        vaex.data.DataFormatError, _truncated_gzip,
        ("{tmp}/binarized_mnist_test.amat.gz", "gzip"), ("copy it again",)),
    Bad("data_short", "a .amat file with 3 of 10,000 rows", "vaex.data.load_binarized_mnist",
        vaex.data.DataFormatError, _short_amat,
        ("{tmp}/binarized_mnist_test.amat", "3 rows", "expected 10000"), ("copy it again",)),
    Bad("data_split", "split='validation'", "vaex.data.load_binarized_mnist", ValueError,
        lambda tmp: vaex.data.load_binarized_mnist("validation", data_dir=tmp),
        ("`split`", "'validation'"), ("here it is 'valid'",)),
    Bad("grayscale_missing", "data_dir without the grayscale CSV",
        "vaex.data.load_mnist_grayscale_subset", vaex.data.DataNotFoundError,
        lambda tmp: vaex.data.load_mnist_grayscale_subset(data_dir=tmp),
        ("{tmp}/mnist_5k_grayscale.csv.gz", "{tmp}/mnist_5k_grayscale.csv"),
        ("To fix", "data_dir=")),
    Bad("grayscale_truncated", "a grayscale CSV cut mid-line", "vaex.data.load_mnist_grayscale_subset",
        vaex.data.DataFormatError, _truncated_csv,
        ("{tmp}/mnist_5k_grayscale.csv", "line 3", "found 301"), ("truncated", "copy it again")),
    Bad("config_data_missing", "config.data_dir without the files", "train_and_evaluate",
        vaex.data.DataNotFoundError,
        lambda tmp: experiment.train_and_evaluate(_smoke(data_dir=str(tmp / "nowhere")),
                                                  str(tmp / "w")),
        ("{tmp}/nowhere/binarized_mnist_train.amat",), ("To fix", "VAEX_DATA_DIR")),
    # ----- configs and the command line -----
    Bad("batch_size_zero", "config.batch_size=0", "train_and_evaluate", experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(batch_size=0), str(tmp / "w")),
        ("config.batch_size", "got 0"), ("must be an int >= 1",)),
    Bad("batch_size_too_large", "config.batch_size=5000 for 1,000 examples", "train_and_evaluate",
        experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(batch_size=5000), str(tmp / "w")),
        ("config.batch_size", "5000", "only 1000"), ("use a batch size <= 1000",)),
    Bad("num_train_too_large", "config.num_train_examples=60000 (train split has 50,000)",
        "train_and_evaluate", experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(num_train_examples=60000), str(tmp / "w")),
        ("config.num_train_examples", "60000", "only 50000"), ("<= 50000", "0 uses all"),
        ),
    Bad("optimizer_unknown", "config.optimizer='rmsprop'", "train_and_evaluate",
        experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(optimizer="rmsprop"), str(tmp / "w")),
        ("config.optimizer", "'rmsprop'"), ("one of ('adam', 'adagrad', 'sgd')",)),
    Bad("learning_rate_negative", "config.learning_rate=-0.1", "train_and_evaluate",
        experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(learning_rate=-0.1), str(tmp / "w")),
        ("config.learning_rate", "-0.1"), ("finite number > 0",)),
    Bad("learning_rate_nan", "config.learning_rate=nan", "train_and_evaluate",
        experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(learning_rate=float("nan")), str(tmp / "w")),
        ("config.learning_rate", "nan"), ("finite number > 0",)),
    Bad("num_epochs_zero", "config.num_epochs=0", "train_and_evaluate", experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(num_epochs=0), str(tmp / "w")),
        ("config.num_epochs", "got 0"), ("must be an int >= 1",)),
    Bad("unknown_config_key", "config.num_epoch (typo)", "train_and_evaluate",
        experiment.ConfigError, _unknown_key, ("config.num_epoch", "unknown key"),
        ("default_config()", "Check the spelling")),
    Bad("estimator_config", "config.estimator='C'", "train_and_evaluate", experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(estimator="C"), str(tmp / "w")),
        ("config.estimator", "'C'"), ("one of ('A', 'B', 'iwae')",)),
    Bad("transform_vs_likelihood", "input_transform='intensity' with a Bernoulli likelihood",
        "train_and_evaluate", experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(input_transform="intensity"),
                                                  str(tmp / "w")),
        ("config.input_transform", "Bernoulli"),
        ("'dynamic_binarization'", "likelihood='gaussian'")),
    Bad("on_non_finite_unknown", "config.on_non_finite='ignore'", "train_and_evaluate",
        experiment.ConfigError,
        lambda tmp: experiment.train_and_evaluate(_smoke(on_non_finite="ignore"), str(tmp / "w")),
        ("config.on_non_finite", "'ignore'"), ("one of ('stop', 'skip')",)),
    Bad("python_type", "config.latent_dim = 'big' in Python", "ml_collections ConfigDict",
        TypeError, _python_type, ("latent_dim", "big"), ("cannot be casted to type <class 'int'>",)),
    Bad("cli_type", "--config.latent_dim=big", "experiments/train.py", CommandFailed,
        lambda tmp: _cli(f"--workdir={tmp / 'w'}", "--config.latent_dim=big"),
        ("exit status 1", "--config.latent_dim=big", "invalid literal for int()"),
        ("--helpshort",)),
    # ----- workdir and checkpoints -----
    Bad("checkpoint_corrupt", "every file of checkpoints/10/state/ cut in half", "train_and_evaluate",
        checkpointing.CheckpointError, _corrupt_latest, ("{tmp}/run/checkpoints/10", "corrupt"),
        ("Delete that directory", "previous checkpoint (step 5)", "new --workdir"), uses_run=True),
    Bad("checkpoint_bit_flip", "one flipped bit in a checkpoint's array file", "restore_latest",
        checkpointing.CheckpointError, _bit_flip, ("{tmp}/run/checkpoints/10", "SHA-256"),
        ("Delete that directory", "previous checkpoint (step 5)"), uses_run=True),
    Bad("checkpoint_other_size", "restoring a latent_dim=8 run with latent_dim=4", "restore_latest",
        checkpointing.CheckpointError, _other_size,
        ("checkpoints/10", "different model size or config",
         "params/params/encoder/gaussian_head/bias has shape (16,) there but (8,) here"),
        ("Use a new --workdir",), uses_run=True),
    Bad("checkpoint_missing", "a workdir without checkpoints", "restore_latest",
        checkpointing.CheckpointError, _no_checkpoint, ("No checkpoint in", "{tmp}/empty"),
        ("train first", "experiments/train.py")),
    Bad("workdir_other_config", "resuming a latent_dim=8 workdir with latent_dim=4",
        "train_and_evaluate", experiment.ConfigError, _other_config,
        ("--workdir", "{tmp}/run", "latent_dim: 8 -> 4"), ("Use a new --workdir",), uses_run=True),
    Bad("workdir_below_file", "--workdir below a regular file", "train_and_evaluate",
        PermissionError, _below_a_file, ("--workdir", "{tmp}/a_file/run", "not writable"),
        ("Choose a directory you can write to",)),
    Bad("disk_full_workdir", "ENOSPC while writing to the workdir", "prepare_workdir", OSError,
        _full_disk_workdir, ("--workdir", "{tmp}/run", "No space left on device"),
        ("Free some disk space",),
        check=lambda e: not isinstance(e, PermissionError) and e.errno == errno.ENOSPC,
        ),
    Bad("disk_full_checkpoint", "ENOSPC while orbax writes a checkpoint", "Checkpointer.save",
        OSError, lambda tmp: _full_disk_checkpoint(tmp, OSError(errno.ENOSPC, "No space left")),
        ("step 5", "{tmp}/checkpoints", "No space left"),
        ("Free some disk space", "re-run the same command", "(step 0)"),
        check=lambda e: e.errno == errno.ENOSPC),
    Bad("disk_full_checkpoint_tensorstore", "ENOSPC as tensorstore reports it (a ValueError)",
        "Checkpointer.save", OSError,
        lambda tmp: _full_disk_checkpoint(
            tmp, ValueError("Error writing local file \"d/abc\": No space left on device")),
        ("step 5", "{tmp}/checkpoints"), ("Free some disk space", "re-run the same command"),
        check=lambda e: e.errno == errno.ENOSPC),
    Bad("too_many_devices", "config.num_devices=64 with 8 devices", "train_and_evaluate",
        ValueError, lambda tmp: experiment.train_and_evaluate(_smoke(num_devices=64), str(tmp / "w")),
        ("`num_devices`", "64"), ("XLA_FLAGS=--xla_force_host_platform_device_count",)),
]


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.id) for c in CATALOGUE],
)
def test_bad_input_gives_the_promised_message(case: Bad, tmp_path, request):
  args = (tmp_path, request.getfixturevalue("trained_run")) if case.uses_run else (tmp_path,)
  with pytest.raises(case.error) as info:
    case.call(*args)
  message = str(info.value)
  for part in case.names + case.fix:
    part = part.replace("{tmp}", str(tmp_path))
    assert part in message, f"{part!r} not in the message:\n{message}"
  if case.check is not None:
    assert case.check(info.value), (type(info.value), message)
  # Nothing is left half-written by a refused config.
  if case.where == "train_and_evaluate" and not case.uses_run:
    assert not (tmp_path / "w").exists()


def test_the_catalogue_is_complete():
  ids = [case.id for case in CATALOGUE]
  assert len(ids) == len(set(ids))
  assert len(CATALOGUE) >= 25
  where = {case.where.split(".")[0] for case in CATALOGUE}
  assert {"vaex", "train_and_evaluate", "experiments/train", "restore_latest"} <= where


# ------------------------------------------------------------------------------------------------
# The non-finite guard.


def test_stop_on_non_finite_names_the_step_and_the_last_good_checkpoint(trained_run, tmp_path):
  # The trained run, continued with a learning rate that makes it diverge in its second epoch (the
  # config check refuses a changed learning rate, so the test rewrites config.json as if it had
  # always been so).
  workdir = _copy_run(trained_run, tmp_path)
  diverging = _smoke(learning_rate=1e30, num_epochs=2)
  config_json = json.dumps(json.loads(diverging.to_json()), indent=2, sort_keys=True) + "\n"
  (workdir / "config.json").write_text(config_json)
  with pytest.raises(FloatingPointError) as info:
    experiment.train_and_evaluate(diverging, str(workdir))
  message = str(info.value)
  bad_step = int(message.split("non-finite at step ")[1].split(".")[0])
  assert 10 < bad_step <= 15, message
  assert f"the last good checkpoint is step 10 in {workdir / 'checkpoints'}" in message
  assert "Lower the learning rate" in message and "on_non_finite='skip'" in message
  # Nothing after step 10 was recorded, and every checkpoint left restores to finite values.
  assert max(r["step"] for r in _metrics(workdir)) == 10
  assert _steps(workdir / "checkpoints") == [5, 10]
  model = experiment.build_model(diverging)
  template = training.create_train_state(
      jax.random.key(0), model, builders.build_optimizer(diverging, 10), 784)
  checkpointer = checkpointing.Checkpointer(workdir / "checkpoints")
  try:
    for step in _steps(workdir / "checkpoints"):
      state, _ = checkpointer.restore(template, step)
      assert int(state.step) == step and _all_finite((state.params, state.opt_state))
  finally:
    checkpointer.close()


def test_skip_on_non_finite_drops_the_update_and_keeps_counting_steps():
  config = _smoke(dataset="mnist5k_grayscale", likelihood="gaussian", input_transform="intensity",
                  on_non_finite="skip", max_consecutive_non_finite=2)
  experiment.validate_config(config)
  optimizer = builders.build_optimizer(config, steps_per_epoch=10)
  model, params = _tiny_vae(vaex.GaussianMLPDecoder)  # The config's model, smaller.
  state = training.TrainState(params=params, opt_state=jax.jit(optimizer.init)(params),
                              step=jnp.zeros((), jnp.int32), key=jax.random.key(1))
  step_fn = training.make_train_step(training.make_loss_fn(model), optimizer,
                                     input_transform="intensity")
  clean = np.random.default_rng(0).uniform(size=(4, 784)).astype(np.float32)
  poisoned = clean.copy()
  poisoned[1, 5] = np.nan
  # "intensity" keeps float data as it is, so the NaN reaches the bound.
  x = training.prepare_inputs(jax.random.key(0), jnp.asarray(poisoned), "intensity")
  np.testing.assert_array_equal(np.asarray(x), poisoned)

  before = jax.device_get(state.params)
  state, metrics = step_fn(state, jnp.asarray(poisoned))
  assert not np.isfinite(float(metrics["loss"]))
  _tree_equal(state.params, before)  # bitwise: the update was dropped
  assert int(state.step) == 1
  assert int(state.opt_state.notfinite_count) == 1

  state, metrics = step_fn(state, jnp.asarray(clean))
  assert np.isfinite(float(metrics["loss"])) and _all_finite(state.params)
  assert int(state.step) == 2 and int(state.opt_state.notfinite_count) == 0
  assert any(np.any(np.asarray(a) != np.asarray(b))
             for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(before)))

  # More than max_consecutive_non_finite in a row: optax applies the update, and the experiment
  # loop's own check (parameters non-finite) is what then stops the run.
  for _ in range(3):
    state, _ = step_fn(state, jnp.asarray(poisoned))
  assert int(state.step) == 5 and not _all_finite(state.params)


# ------------------------------------------------------------------------------------------------
# Numerical edge cases: finite bounds and finite gradients with respect to the parameters.


def _edit(params: Any, module: str, layer: str, update: Callable[[jax.Array], jax.Array]) -> Any:
  params = jax.tree.map(lambda x: x, params)  # A copy with fresh dicts.
  leaf = params["params"][module][layer]
  params["params"][module][layer] = {**leaf, "bias": update(leaf["bias"])}
  return params


_PARAM_CASES = {
    "default": lambda p: p,
    "logits_+1e4": lambda p: _edit(p, "decoder", "logits", lambda b: jnp.full_like(b, 1e4)),
    "logits_-1e4": lambda p: _edit(p, "decoder", "logits", lambda b: jnp.full_like(b, -1e4)),
    "log_var_+80": lambda p: _edit(p, "encoder", "gaussian_head", lambda b: b.at[2:].set(80.0)),
    "log_var_-80": lambda p: _edit(p, "encoder", "gaussian_head", lambda b: b.at[2:].set(-80.0)),
}
_DATA_CASES = {  # Stacked into one batch: the bounds are per example, the gradient is of their mean.
    "random": (np.random.default_rng(0).uniform(size=(2, 784)) > 0.5).astype(np.float32),
    "all_zero": np.zeros((2, 784), np.float32),
    "all_one": np.ones((2, 784), np.float32),
}
_SINGLE_EXAMPLE = (np.arange(784) % 3 == 0).astype(np.float32)[None]  # A batch of one.
# Estimator A is IWAE with k = 1 up to the logsumexp of one term (and is covered in bounds_test).
_ESTIMATORS = {"B": ("B", 2), "iwae_k1": ("iwae", 1), "iwae_k5000": ("iwae", 5000)}


@pytest.fixture(scope="module")
def tiny_bounds():
  """A tiny VAE (784 -> 16 -> 2 -> 16 -> 784) and one compiled function giving, for every estimator
  and for a batch of the data cases and a batch of one, the per-example bounds and the gradient of
  their mean with respect to the parameters."""
  model, params = _tiny_vae()

  def bounds_and_grads(params, batches):
    out = {}
    for batch_name, x in batches.items():
      for name, (estimator, num_samples) in _ESTIMATORS.items():
        def objective(params, x=x, estimator=estimator, num_samples=num_samples):
          values = vaex.bound(params, jax.random.key(1), x, model, estimator=estimator,
                              num_samples=num_samples)
          return jnp.mean(values), values

        (_, values), grads = jax.value_and_grad(objective, has_aux=True)(params)
        out[batch_name, name] = (values, grads)
    return out

  return params, jax.jit(bounds_and_grads)


@pytest.mark.parametrize("param_case", list(_PARAM_CASES))
def test_extreme_values_give_finite_bounds_and_gradients(tiny_bounds, param_case):
  params, bounds_and_grads = tiny_bounds
  batches = {"cases": np.concatenate(list(_DATA_CASES.values())), "single": _SINGLE_EXAMPLE}
  out = bounds_and_grads(_PARAM_CASES[param_case](params), batches)
  for (batch_name, estimator), (values, grads) in out.items():
    values = np.asarray(values)
    assert values.shape == (len(batches[batch_name]),)
    if batch_name == "cases":
      for i, data in enumerate(_DATA_CASES):
        assert np.all(np.isfinite(values[2 * i:2 * i + 2])), (data, estimator, values)
    assert np.all(np.isfinite(values)), (batch_name, estimator, values)
    assert _all_finite(grads), (batch_name, estimator)


# ------------------------------------------------------------------------------------------------
# Reproducibility.


def test_same_config_and_seed_give_bitwise_identical_runs(trained_run, tmp_path):
  experiment.train_and_evaluate(_smoke(), str(tmp_path))
  config = _smoke()
  _, a, _ = experiment.restore_latest(config, str(trained_run), 1000, 784)
  _, b, _ = experiment.restore_latest(config, str(tmp_path), 1000, 784)
  _tree_equal((a.params, a.opt_state, a.step), (b.params, b.opt_state, b.step))
  elbos = [[(r["step"], r["train_elbo"]) for r in _metrics(w) if "train_elbo" in r]
           for w in (trained_run, tmp_path)]
  assert elbos[0] == elbos[1] and [s for s, _ in elbos[0]] == [5, 10]


# ------------------------------------------------------------------------------------------------
# Crash safety: kill -9 at random moments, resume, and compare with an uninterrupted run.

KILL_EPOCHS = 10  # 100 steps, a checkpoint every 5; 10 kills with progress in between use ~50.
NUM_KILLS = 10
KILL_SEED = 8


def _kill_config():
  return _smoke_config(num_epochs=KILL_EPOCHS, num_train_examples=1000, steps_per_call=5,
                       num_sample_images=0)


def _train_command(workdir: Path) -> list[str]:
  return [sys.executable, str(ROOT / "experiments" / "train.py"), f"--config={SMOKE}",
          f"--workdir={workdir}", f"--config.data_dir={DATA_DIR}",
          f"--config.num_epochs={KILL_EPOCHS}", "--config.num_train_examples=1000",
          "--config.steps_per_call=5", "--config.num_sample_images=0"]


def _train_env(cache_dir: Path) -> dict[str, str]:
  env = script_env(JAX_PLATFORMS="cpu")  # One CPU device, as a user's run.
  # A persistent compilation cache makes each restart take ~4 s instead of ~15 s of compiling. The
  # uninterrupted run fills it first, so the killed runs only read it.
  env.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  return env


def _start(workdir: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
  with open(log, "ab") as f:
    return subprocess.Popen(_train_command(workdir), cwd=ROOT, env=env, stdout=f,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _sigkill(proc: subprocess.Popen) -> None:
  """SIGKILLs the process group of a child this test started (by its id) and reaps it."""
  if proc.poll() is None:
    os.killpg(proc.pid, signal.SIGKILL)
  proc.wait(timeout=30)


def _wait(proc: subprocess.Popen, seconds: float) -> None:
  end = time.monotonic() + seconds
  while proc.poll() is None and time.monotonic() < end:
    time.sleep(0.01)


def _train_lines(workdir: Path) -> list[tuple[int, int, float]]:
  return [(r["step"], r["epoch"], r["train_elbo"]) for r in _metrics(workdir) if "train_elbo" in r]


def _eval_lines(workdir: Path) -> list[tuple[int, float, float]]:
  return [(r["step"], r["valid_elbo"], r["test_elbo"]) for r in _metrics(workdir)
          if "test_elbo" in r]


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_is_bitwise_equal(tmp_path):
  env = _train_env(tmp_path / "jax_cache")
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  log = tmp_path / "train.log"
  deadline = time.monotonic() + 280

  # The uninterrupted run, timed: how often a checkpoint appears.
  start = time.monotonic()
  seen: dict[int, float] = {}
  proc = _start(straight, env, log)
  try:
    while proc.poll() is None:
      assert time.monotonic() < start + 150
      for step in _steps(straight / "checkpoints"):
        seen.setdefault(step, time.monotonic() - start)
      time.sleep(0.01)
  finally:
    _sigkill(proc)
  assert proc.returncode == 0, log.read_text()[-3000:]
  straight_seconds = time.monotonic() - start
  times = sorted(seen.values())
  interval = (times[-1] - times[0]) / (len(times) - 1)

  # Each incarnation is killed either at a random time after its start, before its first
  # checkpoint (data loading, compiling, restoring, cutting metrics.jsonl back), or a random time,
  # up to one checkpoint interval, after it has written its first new checkpoint (training steps,
  # metrics appends, checkpoint writes and deletions). The first one is of the second kind, and
  # gives the time a restart takes to its first checkpoint.
  rng = np.random.default_rng(KILL_SEED)
  checkpoints = killed / "checkpoints"
  kills: list[dict[str, Any]] = []
  restart = None
  while len(kills) < NUM_KILLS:
    assert time.monotonic() < deadline, kills
    latest = max(_steps(checkpoints), default=0)
    after_start = restart is not None and rng.random() < 0.3
    if after_start:
      delay = restart * rng.uniform(0.1, 1.0)
    else:
      delay = interval * rng.uniform(0.0, 1.0)
    launched = time.monotonic()
    proc = _start(killed, env, log)
    try:
      if not after_start:
        while proc.poll() is None and max(_steps(checkpoints), default=0) <= latest:
          assert time.monotonic() < deadline, kills
          time.sleep(0.01)
        if restart is None:
          restart = time.monotonic() - launched
      _wait(proc, delay)
      alive = proc.poll() is None
    finally:
      _sigkill(proc)
    if not alive:
      assert proc.returncode != 0, f"the run finished after {len(kills)} kills: raise KILL_EPOCHS"
      pytest.fail(f"a restart failed after {len(kills)} kills {kills}:\n{log.read_text()[-3000:]}")
    assert proc.returncode == -signal.SIGKILL
    names = os.listdir(checkpoints) if checkpoints.is_dir() else []
    partial = sorted(n for n in names if not n.isdigit())
    kills.append({"after": "start" if after_start else "a checkpoint", "delay": round(delay, 2),
                  "steps": _steps(checkpoints), "partial": partial})

  kills_seconds = time.monotonic() - start - straight_seconds
  proc = _start(killed, env, log)
  try:
    proc.wait(timeout=max(10.0, deadline - time.monotonic()))
  finally:
    _sigkill(proc)
  assert proc.returncode == 0, log.read_text()[-3000:]
  final_seconds = time.monotonic() - start - straight_seconds - kills_seconds
  print(f"\nuninterrupted run {straight_seconds:.1f} s (a checkpoint every {interval:.2f} s), "
        f"{len(kills)} kills and restarts {kills_seconds:.1f} s (a restart reaches its first "
        f"checkpoint after {restart:.1f} s), final run {final_seconds:.1f} s:", *kills, sep="\n  ")

  # (i) The final state is bitwise that of the uninterrupted run.
  config = _kill_config()
  _, a, _ = experiment.restore_latest(config, str(straight), 1000, 784)
  _, b, _ = experiment.restore_latest(config, str(killed), 1000, 784)
  assert int(a.step) == int(b.step) == 10 * KILL_EPOCHS
  _tree_equal((a.params, a.opt_state, jax.random.key_data(a.key)),
              (b.params, b.opt_state, jax.random.key_data(b.key)))
  # (ii) metrics.jsonl: every step once, in order, with the same values.
  expected_steps = list(range(5, 10 * KILL_EPOCHS + 1, 5))
  assert [s for s, _, _ in _train_lines(straight)] == expected_steps
  assert _train_lines(killed) == _train_lines(straight)
  assert _eval_lines(killed) == _eval_lines(straight)
  assert [s for s, _, _ in _eval_lines(killed)] == list(range(10, 10 * KILL_EPOCHS + 1, 10))
  # (iii) Nothing half-written is left: no orbax temporary directories, no *.tmp files.
  assert _steps(checkpoints)[-1] == 10 * KILL_EPOCHS
  assert [n for n in os.listdir(checkpoints) if not n.isdigit()] == []
  assert [p.name for p in killed.rglob("*.tmp")] == []
  if any(k["partial"] for k in kills):  # A kill interrupted a save: the next start said so.
    assert "Ignoring the incomplete checkpoint" in log.read_text()


# ------------------------------------------------------------------------------------------------
# One run per workdir: the writer's lock.

_HOLD_LOCK = """import sys, time
from vaex._src.workdir import WorkdirLock
WorkdirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(300)
"""


def _files(workdir: Path) -> dict[str, bytes]:
  return {str(p.relative_to(workdir)): p.read_bytes() for p in workdir.rglob("*") if p.is_file()}


def _in_use(pid: int) -> str:
  """The refusal's message, for a holder on this host."""
  return (rf"is in use by another run \(host {re.escape(socket.gethostname())}, pid {pid}, started "
          rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)\. Wait for it to finish, stop it \(kill {pid}\), "
          r"or choose another --workdir\.")


def test_workdir_lock_has_one_holder_at_a_time(tmp_path):
  workdir = tmp_path / "run"
  with experiment.WorkdirLock(str(workdir)) as lock:  # Creates the workdir.
    assert lock.held and json.loads((workdir / "lock").read_text())["pid"] == os.getpid()
    with pytest.raises(experiment.WorkdirInUseError, match=_in_use(os.getpid())):
      experiment.WorkdirLock(str(workdir)).acquire()  # Another open file, even in this process.
  assert not lock.held and (workdir / "lock").read_text() == ""
  experiment.WorkdirLock(str(workdir)).acquire().release()


def test_a_second_run_on_a_workdir_in_use_is_refused_and_changes_nothing(trained_run, tmp_path):
  run = _copy_run(trained_run, tmp_path)
  with experiment.WorkdirLock(str(run)):
    before = _files(run)
    with pytest.raises(experiment.WorkdirInUseError, match=_in_use(os.getpid())):
      experiment.train_and_evaluate(_smoke(num_epochs=2), str(run))
    assert _files(run) == before


def test_a_lock_left_by_a_killed_run_does_not_block_a_resume(trained_run, tmp_path):
  run = _copy_run(trained_run, tmp_path)
  env = script_env(JAX_PLATFORMS="cpu")
  proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run)], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
  try:
    assert proc.stdout.readline() == "locked\n", proc.stdout.read()
    with pytest.raises(experiment.WorkdirInUseError, match=_in_use(proc.pid)):
      experiment.train_and_evaluate(_smoke(num_epochs=2), str(run))
  finally:
    _sigkill(proc)
    proc.stdout.close()
  assert proc.returncode == -signal.SIGKILL
  assert json.loads((run / "lock").read_text())["pid"] == proc.pid  # The dead run's record stays.
  result = experiment.train_and_evaluate(_smoke(num_epochs=2), str(run))
  assert result["step"] == 20
  assert [r["step"] for r in _metrics(run) if "train_elbo" in r] == [5, 10, 15, 20]
  assert (run / "lock").read_text() == ""


def test_readers_work_while_a_run_holds_the_workdir(trained_run, tmp_path):
  run = _copy_run(trained_run, tmp_path)
  with experiment.WorkdirLock(str(run)):
    _, state, _ = experiment.restore_latest(_smoke(), str(run), 1000, 784)
    assert int(state.step) == 10
    result = experiment.evaluate_checkpoint(_smoke(eval_iwae_samples=2), str(run),
                                            num_test_examples=20)
    assert result["step"] == 10 and np.isfinite(result["test_log_likelihood"])


def test_the_lock_is_released_when_a_run_fails(trained_run, tmp_path, monkeypatch):
  run = _copy_run(trained_run, tmp_path)
  with pytest.raises(experiment.ConfigError, match="different config"):  # Raised with the lock held.
    experiment.train_and_evaluate(_smoke(latent_dim=4), str(run))

  def fail(*args, **kwargs):
    with pytest.raises(experiment.WorkdirInUseError):  # Held while the run trains.
      experiment.WorkdirLock(str(run)).acquire()
    raise RuntimeError("a failure in the middle of the run")

  monkeypatch.setattr("vaex._src.experiment._train", fail)
  with pytest.raises(RuntimeError, match="middle of the run"):
    experiment.train_and_evaluate(_smoke(), str(run))
  experiment.WorkdirLock(str(run)).acquire().release()
  assert (run / "lock").read_text() == ""


def test_processes_other_than_0_of_a_multi_process_run_take_no_lock(trained_run, tmp_path,
                                                                    monkeypatch):
  run = _copy_run(trained_run, tmp_path)
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  monkeypatch.setattr("vaex._src.experiment._train", lambda *args: {"trained": True})
  with experiment.WorkdirLock(str(run)):  # Held by process 0 of the same run.
    assert experiment.train_and_evaluate(_smoke(), str(run)) == {"trained": True}


def test_without_flock_only_a_live_holder_on_this_host_refuses(tmp_path, monkeypatch, caplog):
  def no_flock(fd, operation):
    raise OSError(errno.ENOLCK, "No locks available")

  monkeypatch.setattr(workdir_lib, "fcntl", types.SimpleNamespace(flock=no_flock, LOCK_EX=2, LOCK_NB=4))
  lock_file = tmp_path / "lock"
  record = {"host": socket.gethostname(), "started": "2026-01-01 00:00:00 UTC"}
  lock_file.write_text(json.dumps({**record, "pid": os.getpid()}))
  with pytest.raises(experiment.WorkdirInUseError, match=_in_use(os.getpid())):
    experiment.WorkdirLock(str(tmp_path)).acquire()
  dead = subprocess.Popen([sys.executable, "-c", ""])
  dead.wait()
  lock_file.write_text(json.dumps({**record, "pid": dead.pid}))  # Left by a run that died.
  with caplog.at_level(logging.WARNING), experiment.WorkdirLock(str(tmp_path)):
    assert json.loads(lock_file.read_text())["pid"] == os.getpid()
  assert "cannot lock files" in caplog.text and lock_file.read_text() == ""
