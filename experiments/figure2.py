r"""Kingma & Welling (2013) Figure 2: AEVB vs wake-sleep, lower bound against training samples seen.

  python experiments/figure2.py --workdir=runs/figure2 --data_dir=../shared/data [--epochs=10] [--full]

For each Nz in {3, 5, 10, 20, 200} and each algorithm it trains the `mnist_aevb` config (500 hidden
units, Adagrad, N(0, 0.01) init, weight-decay prior) in <workdir>/<algorithm>_nz<Nz> (resumable), then
draws figure2.png from the runs' metrics.jsonl: train and test ELBO per datapoint against the number
of training samples seen (log axis). `--full` is the paper's budget (10^8 samples = 2,000 epochs per
run); the default is a CPU-sized budget. Dashed lines: the paper's final test bounds.
"""

import importlib.util
import json
import os
from pathlib import Path

from absl import app, flags, logging

from vaex import experiment
from vaex._src import reporting

flags.DEFINE_string("workdir", None, "Root directory of the runs and the figure.", required=True)
flags.DEFINE_string("data_dir", None, "Directory with binarized_mnist_*.amat[.gz].")
flags.DEFINE_integer("epochs", 10, "Epochs per run (CPU budget).")
flags.DEFINE_bool("full", False, "The paper's budget: 2,000 epochs (10^8 samples) per run.")
flags.DEFINE_list("latent_dims", ["3", "5", "10", "20", "200"], "Values of Nz.")
FLAGS = flags.FLAGS

# The paper's test lower bounds after its full budget (minus the -ELBO values quoted in issue 5).
PAPER_FINAL = {"aevb": {3: -141.3, 5: -124.4, 10: -107.6, 20: -100.6, 200: -99.2},
               "wake_sleep": {3: -146.8, 5: -128.0, 10: -113.0, 20: -106.4, 200: -108.0}}
ALGORITHMS = ("aevb", "wake_sleep")


def _config(latent_dim, algorithm, epochs):
  path = Path(__file__).parent / "configs" / "mnist_aevb.py"
  spec = importlib.util.spec_from_file_location("mnist_aevb", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.latent_dim, config.algorithm, config.num_epochs = latent_dim, algorithm, epochs
  config.data_dir = FLAGS.data_dir
  config.num_devices = 1
  config.num_sample_images = 0
  return config


def plot(rows_by_run, path):
  from vaex._src.plots import _import_matplotlib

  figure_cls = _import_matplotlib()
  dims = sorted({nz for _, nz in rows_by_run})
  fig = figure_cls(figsize=(4 * len(dims), 3.6))
  for i, nz in enumerate(dims):
    ax = fig.add_subplot(1, len(dims), i + 1)
    for algorithm, color in zip(ALGORITHMS, ("tab:blue", "tab:red")):
      rows = rows_by_run.get((algorithm, nz), [])
      seen = [r["step"] * 100 for r in rows]
      ax.plot(seen, [r["test_elbo"] for r in rows], "-", color=color, label=f"{algorithm} test")
      ax.plot(seen, [r["train_elbo"] for r in rows], ":", color=color, label=f"{algorithm} train")
      ax.axhline(PAPER_FINAL[algorithm][nz], ls="--", lw=0.8, color=color)
    ax.set_xscale("log")
    ax.set_title(f"MNIST, Nz = {nz}")
    ax.set_xlabel("training samples evaluated")
    ax.set_ylim(-200, -90)
    ax.grid(alpha=0.3)
    if i == 0:
      ax.set_ylabel("lower bound per datapoint (nats)")
      ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  epochs = 2000 if FLAGS.full else FLAGS.epochs
  rows_by_run, summary = {}, {}
  for nz in [int(v) for v in FLAGS.latent_dims]:
    for algorithm in ALGORITHMS:
      workdir = os.path.join(FLAGS.workdir, f"{algorithm}_nz{nz}")
      result = experiment.train_and_evaluate(_config(nz, algorithm, epochs), workdir)
      rows_by_run[(algorithm, nz)] = reporting.learning_curve(experiment.MetricsLog(workdir).read())
      summary[f"{algorithm}_nz{nz}"] = {"epochs": result["epoch"], "test_elbo": result["test_elbo"],
                                        "paper_final_test": PAPER_FINAL[algorithm][nz]}
      print(f"{algorithm:10s} Nz={nz:3d}: test ELBO {result['test_elbo']:.2f} after "
            f"{result['epoch']} epochs (paper, full budget: {PAPER_FINAL[algorithm][nz]})", flush=True)
  path = os.path.join(FLAGS.workdir, "figure2.png")
  plot(rows_by_run, path)
  with open(os.path.join(FLAGS.workdir, "figure2.json"), "w") as f:
    json.dump(summary, f, indent=2)
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
