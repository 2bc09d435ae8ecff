"""The benchmark scripts run end to end (`--quick`) and write the JSON they promise.

Both scripts run as subprocesses, at the same time (each is mostly single-threaded compilation), on one
CPU device (`script_env()`: conftest.py forces 8 host devices for the in-process tests), the benchmarks
choosing their own devices. Their numbers are not checked against targets; a quick run measures nothing.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from subprocess_env import script_env

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))
TIMEOUT_SECONDS = 240

THROUGHPUT_KEYS = (
    "train_images_per_sec", "matmul_peak_gflops", "matmul_square_gflops", "train_fraction_of_peak",
    "compile_seconds", "iwae_eval_fraction_of_peak", "per_step_images_per_sec",
    "naive_images_per_sec", "flax_example_images_per_sec", "ratio_vs_naive",
    "ratio_vs_flax_example", "vmap_seeds_ratio", "compile_seconds_warm_cache_median",
    "epoch_calls_images_per_sec", "ratio_vs_epoch_calls", "cpu_ratio_vs_flax_example",
    "cpu_ratio_vs_epoch_calls",
)
NUMPYRO_KEYS = (
    "numpyro_step_images_per_sec", "numpyro_scan_images_per_sec", "ratio_vs_numpyro_step",
    "ratio_vs_numpyro_scan", "cpu_ratio_vs_numpyro_step", "cpu_ratio_vs_numpyro_scan",
)


def _start(script: str, json_path: Path) -> subprocess.Popen:
  env = script_env()
  command = [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--json", str(json_path),
             "--data_dir", str(DATA_DIR)]
  return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, json_path: Path) -> dict:
  try:
    output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
  except subprocess.TimeoutExpired:
    process.kill()
    output, _ = process.communicate()
    pytest.fail(f"{process.args[1]} --quick took over {TIMEOUT_SECONDS} s:\n{output[-3000:]}")
  assert process.returncode == 0, output[-3000:]
  return json.loads(json_path.read_text())


def _positive_finite(value) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """Runs both scripts concurrently once; returns (throughput JSON, sharding JSON)."""
  tmp = tmp_path_factory.mktemp("benchmarks")
  paths = {"throughput.py": tmp / "throughput.json", "sharding_overhead.py": tmp / "sharding.json"}
  processes = {script: _start(script, path) for script, path in paths.items()}
  try:
    return {script: _finish(processes[script], paths[script]) for script in paths}
  finally:
    for process in processes.values():
      if process.poll() is None:
        process.kill()
        process.wait()


def test_throughput_quick_writes_every_key(results):
  out = results["throughput.py"]
  for key in THROUGHPUT_KEYS:
    assert _positive_finite(out.get(key)), (key, out.get(key))
  assert out["recompiled_across_epochs"] is False
  assert out["loss_traces"] == 1
  assert abs(out["train_flops_per_image"] - 4.10e6) < 5e3
  machine = out["machine"]
  assert machine["cpu_count"] >= 1 and machine["jax"] and machine["devices"]
  assert len(machine["devices"]) == 1  # script_env(): one CPU device.
  assert math.isfinite(out["train_bound_last_step"]) and out["train_bound_last_step"] < 0
  assert math.isfinite(out["iwae_mean_bound"]) and out["iwae_mean_bound"] < 0
  for variant in out["variants"].values():
    assert len(variant["seconds"]) == 2 and all(s > 0 for s in variant["seconds"])
    assert len(variant["cpu_seconds"]) == 2 and all(s >= 0 for s in variant["cpu_seconds"])


def test_throughput_quick_numpyro_peers_or_a_reason(results):
  out = results["throughput.py"]
  if importlib.util.find_spec("numpyro") is None:
    assert out["numpyro_skipped"] == "numpyro is not importable"
    assert not any(key in out for key in NUMPYRO_KEYS)
    return
  for key in NUMPYRO_KEYS:
    assert _positive_finite(out.get(key)), (key, out.get(key))
  assert out["machine"]["numpyro"]


def test_sharding_overhead_quick_writes_every_device_count(results):
  out = results["sharding_overhead.py"]
  assert "not a speed-up" in out["note"]
  assert set(out["device_counts"]) == {"1", "2"}
  for count, row in out["device_counts"].items():
    for key in ("images_per_sec", "overhead_ratio", "compile_seconds"):
      assert _positive_finite(row[key]), (count, key, row[key])
    assert math.isfinite(row["final_bound"])
  assert out["device_counts"]["1"]["overhead_ratio"] == pytest.approx(1.0)
  # Same data, keys and global batch on 1 and 2 devices: the same training to float32 round-off.
  assert out["final_bound_spread"] < 1e-2
