"""The gradient SNR (Rainforth et al. 2018) and `experiments/snr.py` end to end on a tiny budget."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from subprocess_env import script_env

import vaex
from vaex._src import gradient_snr

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))


def test_snr_of_a_known_noisy_gradient():
  """g = a + b * eps, eps ~ N(0, 1): SNR = |a| / |b|, within the sampling error of the std."""
  a = jnp.array([1.0, -2.0, 0.5, 0.0])
  b = jnp.array([0.5, 1.0, 2.0, 1.0])
  grad_fn = lambda params, key: {"w": params + b * jax.random.normal(key, ())}  # noqa: E731
  n = 4000
  snr = vaex.gradient_snr(grad_fn, a, jax.random.key(0), num_keys=n)["w"]
  expected = np.abs(np.asarray(a)) / np.asarray(b)
  # |mean| / std has standard error about sqrt((1 + snr^2 / 2) / n).
  assert np.all(np.abs(np.asarray(snr) - expected) < 4 * np.sqrt((1 + expected**2 / 2) / n))
  constant = vaex.gradient_snr(lambda p, k: p, a, jax.random.key(0), num_keys=3)
  assert np.all(np.isnan(np.asarray(constant)))  # No variation: undefined, and mean_snr skips it.
  assert gradient_snr.mean_snr({"a": jnp.array([1.0, jnp.nan]), "b": jnp.array([3.0])}) == 2.0


def test_snr_needs_two_keys():
  with pytest.raises(ValueError, match="`num_keys` must be >= 2"):
    vaex.gradient_snr(lambda p, k: p, jnp.zeros(2), jax.random.key(0), num_keys=1)


@pytest.mark.slow
def test_snr_script_writes_jsonl_and_png(tmp_path):
  env = script_env()
  command = [sys.executable, str(ROOT / "experiments" / "snr.py"), f"--workdir={tmp_path}",
             f"--data_dir={DATA_DIR}", "--train_epochs=1", "--num_train_examples=200",
             "--ks=1,8", "--num_keys=6", "--batch_size=4", "--latent_dim=3",
             "--hidden_sizes=16"]
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  records = [json.loads(line) for line in (tmp_path / "snr.jsonl").read_text().splitlines()]
  assert [(r["estimator"], r["k"]) for r in records] == [
      (e, k) for e in ("reparameterization", "dreg") for k in (1, 8)]
  assert all(np.isfinite(r["encoder_snr"]) and r["encoder_snr"] > 0 for r in records)
  # With k = 1, DReG is STL: a different encoder gradient; the decoder gradient is the same.
  by = {(r["estimator"], r["k"]): r for r in records}
  assert by[("dreg", 1)]["decoder_snr"] == pytest.approx(by[("reparameterization", 1)]["decoder_snr"],
                                                         rel=1e-3)
  assert (tmp_path / "snr.png").stat().st_size > 10_000
