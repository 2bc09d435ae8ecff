r"""Summarizes a run from its metrics.jsonl and draws learning_curve.png next to it.

  python experiments/report.py --workdir=runs/mnist_adam [--target=-100]
"""

import json

from _entry import run
from absl import flags

from vaex import experiment
from vaex._src import reporting

flags.DEFINE_string("workdir", None, "The run's directory.", required=True)
flags.DEFINE_float("target", -100.0, "Report the training time until the test ELBO reaches this.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  records = experiment.MetricsLog(FLAGS.workdir).read()
  rows = reporting.learning_curve(records)
  summary = reporting.summarize(records, target=FLAGS.target)
  print(json.dumps(summary, indent=2))
  if rows:
    path = f"{FLAGS.workdir}/learning_curve.png"
    reporting.plot_learning_curve(rows, path, title=FLAGS.workdir, target=FLAGS.target)
    print(f"wrote {path}")


if __name__ == "__main__":
  run(main)
