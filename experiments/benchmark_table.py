r"""One command for the results table: trains (or resumes) each listed config for N seeds, evaluates
each run with the IWAE-k log-likelihood (k = config.eval_iwae_samples, 5,000 in the benchmark
configs) on the whole test set, and writes the table.

  python experiments/benchmark_table.py --configs=iwae_benchmark_k1,iwae_benchmark_k5 --seeds=3 \
      --workdir=runs/table --data_dir=../shared/data [--config.num_epochs=100 ...]

`--configs` are names of files in experiments/configs/ (without `.py`); every `--config.KEY=VALUE`
override applies to all of them. Run s of a config uses `seed = config.seed + s` and lives in
`<workdir>/<name>/seed_<s>`: rerunning the command resumes unfinished runs and skips finished
evaluations, so an interrupted table is completed, not restarted.

Writes `<workdir>/results.jsonl` (one line per config and seed: `config`, `seed`,
`test_log_likelihood`, `test_log_likelihood_stderr`, `test_examples`, `test_elbo`, `train_seconds`,
`images_per_sec`, `device`, `epochs`, `workdir`) and `<workdir>/results.md` (per config: mean +- std
over seeds, the mean per-example standard error, training seconds, images/s and device).

The whole static-MNIST table on one GPU (the protocol's 3,280 passes; each run is independent, so
several GPUs can take one config each):
  python experiments/benchmark_table.py --configs=iwae_benchmark_k1,iwae_benchmark_k5,\
iwae_benchmark_k50 --seeds=3 --workdir=runs/table --data_dir=DATA
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import statistics
import sys
import time

import jax
from absl import app, flags, logging

from vaex import experiment

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

flags.DEFINE_list("configs", None, "Config names in experiments/configs/.", required=True)
flags.DEFINE_integer("seeds", 1, "Runs (seeds) per config.")
flags.DEFINE_string("workdir", None, "Directory of the runs and the table.", required=True)
flags.DEFINE_string("data_dir", None, "Data directory for every config (else each config's own).")
flags.DEFINE_integer("num_test_examples", 0, "Evaluate on a fixed random subset of n test images (the "
                     "same for every run; the table says so); 0, the protocol: the whole test split.")
FLAGS = flags.FLAGS


def load_config(name: str):
  """The `get_config()` of experiments/configs/<name>.py."""
  path = os.path.join(CONFIG_DIR, f"{name}.py")
  if not os.path.exists(path):
    names = sorted(f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py"))
    raise app.UsageError(f"--configs: no config named {name!r} in {CONFIG_DIR}; known: {names}.")
  spec = importlib.util.spec_from_file_location(f"vaex_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def parse_overrides(args: list[str]) -> tuple[dict[str, str], list[str]]:
  """Splits `--config.KEY=VALUE` arguments from the rest (which go to absl)."""
  overrides, rest = {}, []
  for arg in args:
    if arg.startswith("--config."):
      key, sep, value = arg[len("--config."):].partition("=")
      if not sep:
        raise app.UsageError(f"{arg}: write overrides as --config.KEY=VALUE.")
      overrides[key] = value
    else:
      rest.append(arg)
  return overrides, rest


def apply_overrides(config, overrides: dict[str, str]):
  """Sets each override, converted to the type of the key's default (literals for tuples/bools)."""
  for key, text in overrides.items():
    if key not in config:
      raise experiment.ConfigError(f"config.{key}: unknown key in --config.{key}={text}; the known "
                                   "keys are those of vaex.experiment.default_config().")
    current = config[key]
    if isinstance(current, str) or (current is None and not text[:1].isdigit()):
      value = text
    else:
      try:
        value = ast.literal_eval(text)
      except (ValueError, SyntaxError):
        value = text
      if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    config[key] = value
  return config


def run_config(name: str, config, seed_offset: int, root: str, test_size: int,
               num_test_examples: int = 0) -> dict:
  """Trains (or resumes) one run, evaluates it unless that evaluation (the config's k, on the whole
  test split of `test_size` examples or on the fixed subset of `num_test_examples`) is on record,
  and returns its line."""
  config.seed = config.seed + seed_offset
  workdir = os.path.join(root, name, f"seed_{seed_offset}")
  start = time.perf_counter()
  trained = experiment.train_and_evaluate(config, workdir)
  records = experiment.MetricsLog(workdir).read()
  k = config.eval_iwae_samples
  done = [r for r in records if r.get("source") == "evaluate" and r["step"] == trained["step"]
          and r.get("test_iwae_k") == k
          and r.get("test_examples") == (min(num_test_examples, test_size) or test_size)]
  evaluation = done[-1] if done else experiment.evaluate_checkpoint(
      config, workdir, num_test_examples=num_test_examples)
  train = [r for r in experiment.MetricsLog(workdir).read() if "train_elbo" in r]
  rates = [r["images_per_sec"] for r in train[1:]] or [r["images_per_sec"] for r in train]
  logging.info("%s seed %d: %.1f s in all", name, seed_offset, time.perf_counter() - start)
  return {
      "config": name, "seed": config.seed,
      "test_log_likelihood": evaluation["test_log_likelihood"],
      "test_log_likelihood_stderr": evaluation["test_log_likelihood_stderr"],
      "test_iwae_k": k, "test_examples": evaluation["test_examples"],
      "test_elbo": evaluation["test_elbo"],
      "train_seconds": trained["wall_s"], "images_per_sec": statistics.median(rates),
      "epochs": trained["epoch"], "device": jax.devices()[0].device_kind, "workdir": workdir,
  }


def _mean_std(values: list[float]) -> str:
  if len(values) == 1:
    return f"{values[0]:.2f}"
  return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def results_table(lines: list[dict]) -> str:
  """The markdown table: one row per config, mean +- std over its seeds."""
  out = ["| config | seeds | test log p(x) (IWAE-k) | per-example s.e. | test ELBO | epochs | "
         "training s | images/s | device |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for name in dict.fromkeys(line["config"] for line in lines):
    rows = [line for line in lines if line["config"] == name]
    out.append(
        f"| {name} | {len(rows)} | {_mean_std([r['test_log_likelihood'] for r in rows])} "
        f"(k = {rows[0]['test_iwae_k']}, {rows[0]['test_examples']:,} test images) | "
        f"{statistics.mean(r['test_log_likelihood_stderr'] for r in rows):.2f} | "
        f"{_mean_std([r['test_elbo'] for r in rows])} | {rows[0]['epochs']} | "
        f"{statistics.mean(r['train_seconds'] for r in rows):,.0f} | "
        f"{statistics.mean(r['images_per_sec'] for r in rows):,.0f} | {rows[0]['device']} |")
  return "\n".join(out) + "\n"


def main(argv, overrides: dict[str, str]):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.seeds < 1:
    raise app.UsageError(f"--seeds must be >= 1; got {FLAGS.seeds}.")
  configs = {}
  for name in FLAGS.configs:
    config = apply_overrides(load_config(name), overrides)
    if FLAGS.data_dir:
      config.data_dir = FLAGS.data_dir
    experiment.validate_config(config)  # Every config is checked before the first run starts.
    configs[name] = config
  os.makedirs(FLAGS.workdir, exist_ok=True)
  lines = []
  for name, config in configs.items():
    test_size = len(experiment.load_datasets(config)["test"])
    for s in range(FLAGS.seeds):
      lines.append(run_config(name, config.copy_and_resolve_references(), s, FLAGS.workdir,
                              test_size, FLAGS.num_test_examples))
      with open(os.path.join(FLAGS.workdir, "results.jsonl"), "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
  table = results_table(lines)
  with open(os.path.join(FLAGS.workdir, "results.md"), "w") as f:
    f.write(table)
  print(table)


if __name__ == "__main__":
  from _entry import run

  _overrides, sys.argv = parse_overrides(sys.argv)
  run(lambda argv: main(argv, _overrides))
