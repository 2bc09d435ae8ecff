"""Overhead of the data-parallel (sharded) epoch function on forced host CPU devices.

Usage:
  python benchmarks/sharding_overhead.py [--json PATH] [--repeats 5] [--quick] [--batch_size 800]
      [--devices 0,1,2,4,8] [--data_dir DIR]

For every device count N this starts one worker process with
`XLA_FLAGS=--xla_force_host_platform_device_count=N` (set before the worker imports jax). The worker
builds the paper's model (784-500-2x20 / 20-500-784 tanh, estimator B, L = 1, Adam 1e-3), places the
state and the uint8 training set on a `vaex._src.sharding.make_mesh(N)` mesh with `put_replicated`,
compiles `make_train_steps(..., mesh=mesh)` ahead of time and waits. The parent then asks the workers
for one timed call each, in turn, `--repeats` times (interleaved, so that drift of the machine hits
every device count alike). N = 0 stands for the unsharded path (`mesh=None`, one device).

HONEST NOTE: forced CPU devices are not extra hardware. All N "devices" share this machine's cores
(2 here), so this measures the overhead of the sharded code path (partitioned programs, the gradient
all-reduce, per-device launches), never a speed-up. On a GPU/TPU host the same script measures
scaling. The global batch (default 800) must divide by every N; a call is one epoch (62 steps of 800).

Every worker starts from the same parameters and sees the same global batches and keys, so the final
bound of each device count is printed too: they agree to float32 round-off (the all-reduce sums in
a different order), not bitwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DEVICE_FLAG = "--xla_force_host_platform_device_count"
NOTE = (
    "NOTE: forced CPU devices share the same {cores} cores: these numbers measure the overhead of the "
    "sharded path (partitioning, all-reduce, per-device launches), not a speed-up."
)


def xla_flags_for(num_devices: int) -> str:
  """The parent's XLA_FLAGS with the forced device count replaced by `num_devices` (at least 1)."""
  flags = re.sub(rf"{DEVICE_FLAG}=\S+", "", os.environ.get("XLA_FLAGS", "")).split()
  return " ".join([*flags, f"{DEVICE_FLAG}={max(num_devices, 1)}"])


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo (Linux), else `platform.processor()`."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


# ------------------------------------------------------------------------------------------------
# Worker: one device count, in its own process.


def worker(args: argparse.Namespace) -> None:
  """Compiles the sharded epoch function, then times one call per "run" line read from stdin."""
  os.environ["XLA_FLAGS"] = xla_flags_for(args.worker)  # Before jax is imported.
  sys.path.insert(0, str(HERE))
  import jax  # Imported here, after XLA_FLAGS is set.
  import numpy as np
  import throughput  # benchmarks/throughput.py: the model and its initial state.

  import vaex.data
  from vaex._src import sharding, training

  num_devices = args.worker
  mesh = sharding.make_mesh(num_devices) if num_devices else None
  data = vaex.data.load_binarized_mnist("train", args.data_dir)[: args.num_train or None]
  model = throughput.paper_model()
  optimizer = training.make_optimizer("adam", 1e-3)
  loss_fn = training.make_loss_fn(model, estimator="B", num_samples=1)
  state = throughput.new_state(0, model, optimizer)
  if mesh is None:
    data = jax.device_put(data)
  else:
    state, data = sharding.put_replicated(state, mesh), sharding.put_replicated(data, mesh)
  train_steps = training.make_train_steps(
      loss_fn, optimizer, batch_size=args.batch_size, mesh=mesh)
  steps = data.shape[0] // args.batch_size  # One epoch per call.
  start = time.perf_counter()
  compiled = train_steps.lower(state, data, steps).compile()
  compile_seconds = time.perf_counter() - start
  box = {"state": state}

  def run() -> float:
    start = time.perf_counter()
    box["state"], box["metrics"] = jax.block_until_ready(compiled(box["state"], data))
    return time.perf_counter() - start

  run()  # Warm-up.
  print(json.dumps({
      "ready": True, "num_devices": num_devices, "devices": len(jax.devices()),
      "mesh_devices": [str(d) for d in mesh.devices.flat] if mesh is not None else [],
      "compile_seconds": compile_seconds, "steps_per_call": steps,
      "images_per_call": steps * args.batch_size,
  }), flush=True)
  for line in sys.stdin:
    command = line.strip()
    if command == "run":
      print(json.dumps({"seconds": run()}), flush=True)
    elif command == "quit":
      bound = np.asarray(box["metrics"]["bound"])
      params = jax.tree.leaves(box["state"].params)
      print(json.dumps({
          "final_bound": float(bound[-1]),
          "param_checksum": float(sum(float(np.abs(np.asarray(p)).sum()) for p in params)),
      }), flush=True)
      return


# ------------------------------------------------------------------------------------------------
# Parent: start the workers, interleave their timed calls, report.


class Worker:
  """A worker process for one device count, spoken to with one line per request."""

  def __init__(self, num_devices: int, args: argparse.Namespace):
    self.num_devices = num_devices
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", str(num_devices),
        "--batch_size", str(args.batch_size), "--data_dir", args.data_dir,
        "--num_train", str(args.num_train),
    ]
    env = dict(os.environ, XLA_FLAGS=xla_flags_for(num_devices))
    self.process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    self.info: dict[str, Any] = {}
    self.seconds: list[float] = []

  def read(self) -> dict[str, Any]:
    line = self.process.stdout.readline()
    if not line:
      code = self.process.wait()
      raise RuntimeError(f"worker for {self.num_devices} devices exited with code {code}")
    return json.loads(line)

  def wait_ready(self) -> None:
    self.info = self.read()

  def run(self) -> None:
    self.process.stdin.write("run\n")
    self.process.stdin.flush()
    self.seconds.append(self.read()["seconds"])

  def finish(self) -> None:
    self.process.stdin.write("quit\n")
    self.process.stdin.flush()
    self.info.update(self.read())
    self.process.wait(timeout=60)

  def kill(self) -> None:
    if self.process.poll() is None:
      self.process.kill()
      self.process.wait()

  def images_per_sec(self) -> list[float]:
    return [self.info["images_per_call"] / s for s in self.seconds]

  @property
  def name(self) -> str:
    return "no mesh (1 device)" if self.num_devices == 0 else f"mesh of {self.num_devices}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--json", help="write the results to this JSON file")
  parser.add_argument("--repeats", type=int, default=0,
                      help="timed calls per device count (default 5; 2 with --quick)")
  parser.add_argument("--quick", action="store_true",
                      help="a tiny run for tests: 1 and 2 devices, 1600 images (2 steps of 800 per "
                      "call), workers compile concurrently")
  parser.add_argument("--batch_size", type=int, default=800,
                      help="global batch, divisible by every device count")
  parser.add_argument("--devices", default=None,
                      help="comma-separated device counts; 0 is the unsharded path (mesh=None) "
                      "(default 0,1,2,4,8; 1,2 with --quick)")
  parser.add_argument("--data_dir", default=os.environ.get("VAEX_DATA_DIR")
                      or str(ROOT.parent / "shared" / "data"),
                      help="directory with binarized_mnist_train.amat[.gz] (default: "
                      "$VAEX_DATA_DIR, else ../shared/data from the repository root)")
  parser.add_argument("--num_train", type=int, default=0, help="training images used (0: all)")
  parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.quick:
    args.repeats = args.repeats or 2
    args.num_train = args.num_train or 2 * args.batch_size
    args.devices = args.devices or "1,2"
  args.repeats = args.repeats or 5
  args.devices = args.devices or "0,1,2,4,8"
  return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
  args = parse_args(argv)
  if args.worker is not None:
    worker(args)
    return None
  counts = [int(n) for n in args.devices.split(",")]
  for n in counts:
    if n and args.batch_size % n:
      raise ValueError(
          f"--batch_size ({args.batch_size}) must be divisible by every device count; {n} does not "
          "divide it. Use a multiple of the largest count, e.g. 800 for 1, 2, 4, 8.")
  cores = os.cpu_count()
  print(f"Machine: {cpu_model()}; {' '.join(platform.uname())}; {cores} CPUs; load average "
        f"{list(os.getloadavg())}")
  print(NOTE.format(cores=cores))
  workers: list[Worker] = []
  try:
    print("Starting workers and compiling ...", flush=True)
    if args.quick:  # Compile concurrently: the numbers of a quick run mean nothing anyway.
      workers = [Worker(n, args) for n in counts]
      for w in workers:
        w.wait_ready()
    else:  # One at a time, so that compile times are not contended.
      for n in counts:
        workers.append(Worker(n, args))
        workers[-1].wait_ready()
    for r in range(args.repeats):
      for w in workers:
        w.run()
      print(f"  repeat {r + 1}/{args.repeats}: "
            + ", ".join(f"{w.num_devices}: {w.seconds[-1]:.3g}s" for w in workers), flush=True)
    for w in workers:
      w.finish()
  finally:
    for w in workers:
      w.kill()

  import jax  # Only for its version: the parent never initializes a backend.

  median = statistics.median
  reference = next((w for w in workers if w.num_devices == 1), workers[0])
  results: dict[str, Any] = {
      "note": NOTE.format(cores=cores),
      "batch_size": args.batch_size,
      "steps_per_call": workers[0].info["steps_per_call"],
      "reference": reference.name,
      "machine": {
          "processor": cpu_model(), "uname": " ".join(platform.uname()),
          "cpu_count": cores, "jax": jax.__version__, "load_average_end": list(os.getloadavg()),
      },
      "device_counts": {},
  }
  print()
  header = (f"{'path':<20} {'devices':>7} {'per device':>10} {'compile s':>9}  "
            f"{'images/s min / median / max':>28}  {'slowdown vs ' + reference.name:>26}  "
            f"{'final bound':>11}")
  print(header)
  print("-" * len(header))
  for w in workers:
    ratio = median([a / b for a, b in zip(reference.seconds, w.seconds)])  # Paired, per repeat.
    rates = w.images_per_sec()
    results["device_counts"][str(w.num_devices)] = {
        "images_per_sec": median(rates),
        "images_per_sec_min": min(rates),
        "images_per_sec_max": max(rates),
        "overhead_ratio": 1.0 / ratio,
        "compile_seconds": w.info["compile_seconds"],
        "seconds": w.seconds,
        "final_bound": w.info["final_bound"],
        "param_checksum": w.info["param_checksum"],
    }
    per_device = args.batch_size // max(w.num_devices, 1)
    span = " / ".join(f"{v:,.0f}" for v in (min(rates), median(rates), max(rates)))
    print(f"{w.name:<20} {max(w.num_devices, 1):>7} {per_device:>10} {w.info['compile_seconds']:>9.2f}"
          f"  {span:>28}  {1.0 / ratio:>25.2f}x  {w.info['final_bound']:>11.4f}")
  bounds = [w.info["final_bound"] for w in workers]
  results["final_bound_spread"] = max(bounds) - min(bounds)
  print(f"slowdown = time per epoch / time on the {reference.name} path, median over interleaved "
        "repeats (1.00x: no overhead).")
  checksums = [w.info["param_checksum"] for w in workers]
  results["param_checksum_spread"] = max(checksums) - min(checksums)
  print(f"across device counts: final bound spread {results['final_bound_spread']:.2e} nats, "
        f"sum|params| spread {results['param_checksum_spread']:.2e} (nonzero only from float32 "
        "reduction order).")
  print(NOTE.format(cores=cores))
  if args.json:
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
  return results


if __name__ == "__main__":
  main()
