"""A change to the bounds or the step, measured before and after in one run: this checkout vs a git ref.

Usage:
  python benchmarks/revisions.py [--baseline HEAD] [--repeats 7] [--json PATH] [--quick] [--data_dir DIR]

The baseline revision is checked out into a temporary `git worktree`. One worker process per source
tree imports vaex from that tree only and compiles the same workloads; the parent then asks the workers
for one timed call at a time, round-robin over (workload, tree), so that both trees meet the same
machine at the same moments (only one worker computes at any time). Reported: median seconds per
call, images/s, and the median of the per-repeat ratios after/before (> 1: this checkout is faster).

Workloads, on the paper's MNIST model (784-500-2x20 / 20-500-784 tanh, Bernoulli, Adam 1e-3, M = 100):
  * `elbo_B`: the epoch function (`make_train_steps`) with estimator B, L = 1: the fast path.
  * `elbo_A`: the same with estimator A, L = 1.
  * `iwae_5`: the same training with the IWAE bound, k = 5.
  * `iwae_eval`: IWAE-k evaluation (`make_dataset_bound(estimator="log_likelihood")`) of test images.
The workers only use names that both trees have (`vaex.VAE`, `vaex.MLPEncoder`,
`vaex.BernoulliMLPDecoder`, `vaex._src.training`, `vaex._src.evaluation`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("elbo_B", "elbo_A", "iwae_5", "iwae_eval")


# ----- the worker: runs in a process whose sys.path starts with one source tree -----

def _worker(data_path: str, steps: int, iwae_images: int, iwae_k: int) -> None:
  import jax
  import jax.numpy as jnp
  import numpy as np

  import vaex
  from vaex._src import evaluation, training

  train_and_test = np.load(data_path)
  train = jax.device_put(train_and_test["train"])
  test = jax.device_put(train_and_test["test"][:iwae_images])
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=20, hidden_sizes=(500,)),
                   vaex.BernoulliMLPDecoder(hidden_sizes=(500,)))
  optimizer = training.make_optimizer("adam", 1e-3)
  params = model.init(jax.random.key(0), jnp.zeros((1, 784), jnp.float32))

  def new_state():  # A fresh copy each time: the epoch functions donate their state.
    copy = jax.tree.map(jnp.copy, params)
    return training.TrainState(params=copy, opt_state=optimizer.init(copy),
                               step=jnp.zeros((), jnp.int32), key=jax.random.key(1))

  runners = {}
  for name, estimator, k in (("elbo_B", "B", 1), ("elbo_A", "A", 1), ("iwae_5", "iwae", 5)):
    loss_fn = training.make_loss_fn(model, estimator=estimator, num_samples=k)
    train_steps = training.make_train_steps(loss_fn, optimizer, batch_size=100)
    box = {"state": new_state()}
    compiled = train_steps.lower(box["state"], train, steps).compile()

    def run(compiled=compiled, box=box):
      box["state"], metrics = jax.block_until_ready(compiled(box["state"], train))
      return float(metrics["bound"][-1])

    runners[name] = (run, steps * 100)
  batch = max(1, min(iwae_images, 5000 // iwae_k))
  dataset_bound = evaluation.make_dataset_bound(
      model, estimator="log_likelihood", num_samples=iwae_k, batch_size=batch,
      chunk_size=min(iwae_k, 500))

  def run_eval():
    return float(jnp.mean(jax.block_until_ready(dataset_bound(params, jax.random.key(2), test))))

  runners["iwae_eval"] = (run_eval, iwae_images)
  for run, _ in runners.values():  # Warm-up: first calls are not timed.
    run()
  print(json.dumps({"ready": True}), flush=True)
  for line in sys.stdin:
    name = line.strip()
    run, images = runners[name]
    start = time.perf_counter()
    value = run()
    print(json.dumps({"seconds": time.perf_counter() - start, "images": images, "value": value}),
          flush=True)


# ----- the parent -----

def _start_worker(tree: Path, args: argparse.Namespace, data_path: str) -> subprocess.Popen:
  env = dict(os.environ, PYTHONPATH=str(tree))
  benchmarks = str(ROOT / "benchmarks")
  code = (f"import sys; sys.path.insert(0, {str(tree)!r}); sys.path.insert(1, {benchmarks!r}); "
          f"import revisions; revisions._worker({data_path!r}, {args.steps}, {args.iwae_images}, "
          f"{args.iwae_k})")
  return subprocess.Popen([sys.executable, "-c", code], cwd=tree, env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)


def _read(worker: subprocess.Popen) -> dict[str, Any]:
  line = worker.stdout.readline()
  if not line:
    raise RuntimeError(f"A worker exited early (status {worker.wait()}); see its stderr above.")
  return json.loads(line)


def _load_data(data_dir: str, num_train: int) -> dict[str, Any]:
  sys.path.insert(0, str(ROOT))
  import vaex.data

  train = vaex.data.load_binarized_mnist("train", data_dir)
  test = vaex.data.load_binarized_mnist("test", data_dir)
  return {"train": train[:num_train] if num_train else train, "test": test}


def main(argv: list[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--baseline", default="HEAD", help="git ref to compare against (default HEAD)")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--steps", type=int, default=500, help="training steps per timed call")
  parser.add_argument("--iwae_images", type=int, default=200)
  parser.add_argument("--iwae_k", type=int, default=5000)
  parser.add_argument("--data_dir",
                      default=os.environ.get("VAEX_DATA_DIR", str(ROOT.parent / "shared" / "data")))
  parser.add_argument("--json", help="write the results to this JSON file")
  parser.add_argument("--quick", action="store_true", help="a tiny run for tests")
  args = parser.parse_args(argv)
  if args.quick:
    args.repeats, args.steps, args.iwae_images, args.iwae_k = 2, 5, 8, 50

  import numpy as np

  with tempfile.TemporaryDirectory(prefix="vaex_revisions_") as tmp:
    data_path = os.path.join(tmp, "data.npz")
    np.savez(data_path, **_load_data(args.data_dir, 1000 if args.quick else 0))
    baseline_tree = Path(tmp) / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(baseline_tree), args.baseline],
                   cwd=ROOT, check=True, capture_output=True)
    commit = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
      trees = {"before": baseline_tree, "after": ROOT}
      workers = {label: _start_worker(tree, args, data_path) for label, tree in trees.items()}
      for worker in workers.values():
        _read(worker)  # "ready"
      times: dict[tuple[str, str], list[float]] = {}
      images: dict[str, int] = {}
      for _ in range(args.repeats):
        for workload in WORKLOADS:
          for label, worker in workers.items():
            worker.stdin.write(workload + "\n")
            worker.stdin.flush()
            result = _read(worker)
            times.setdefault((workload, label), []).append(result["seconds"])
            images[workload] = result["images"]
      for worker in workers.values():
        worker.stdin.close()
        worker.wait()
    finally:
      subprocess.run(["git", "worktree", "remove", "--force", str(baseline_tree)], cwd=ROOT,
                     capture_output=True)

  dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "vaex"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip())
  print(f"before: {args.baseline} ({commit}); after: this checkout"
        f"{' (with uncommitted changes to vaex/)' if dirty else ''}; {args.repeats} interleaved "
        f"repeats; load average {os.getloadavg()[0]:.2f}")
  print(f"{'workload':<10} {'before img/s':>13} {'after img/s':>12} {'after/before':>13}  "
        "(per-repeat range)")
  results: dict[str, Any] = {"baseline": args.baseline, "baseline_commit": commit,
                             "repeats": args.repeats, "workloads": {}}
  for workload in WORKLOADS:
    before, after = times[(workload, "before")], times[(workload, "after")]
    ratios = [b / a for b, a in zip(before, after)]
    row = {
        "before_images_per_sec": images[workload] / statistics.median(before),
        "after_images_per_sec": images[workload] / statistics.median(after),
        "speed_ratio_after_over_before": statistics.median(ratios),
        "ratio_min": min(ratios), "ratio_max": max(ratios),
    }
    results["workloads"][workload] = row
    print(f"{workload:<10} {row['before_images_per_sec']:>13,.0f} "
          f"{row['after_images_per_sec']:>12,.0f} {row['speed_ratio_after_over_before']:>13.3f}  "
          f"({row['ratio_min']:.3f}-{row['ratio_max']:.3f})")
  if args.json:
    Path(args.json).write_text(json.dumps(results, indent=2))
  return results


if __name__ == "__main__":
  main()
