r"""Time to quality: test ELBO (lines) and IWAE-k test log-likelihood (markers) against training
seconds, for several runs side by side, from their `metrics.jsonl` (no retraining).

  python experiments/time_to_quality.py --runs=protocol:runs/vae_k1,recipe:runs/fast_vae \
      --target=-100 --out=runs/time_to_quality.png [--reference=paper:18412:-88.65]

`--runs` is a comma-separated list of LABEL:WORKDIR (or WORKDIR, labelled by its name). Training
seconds are the runs' own `wall_s` (time inside the training calls; evaluation, checkpoints and
compilation excluded). Prints, per run, the seconds to the first test ELBO >= --target and to the
first IWAE-k log-likelihood >= --ll_target, the best values and the training seconds in total, and
writes the figure plus a JSON line per run next to it (`<out>.jsonl`).
"""

import json
import os

from absl import app, flags

from vaex import experiment
from vaex._src import reporting

flags.DEFINE_list("runs", None, "LABEL:WORKDIR pairs (or WORKDIRs).", required=True)
flags.DEFINE_float("target", -100.0, "Test ELBO target (nats).")
flags.DEFINE_float("ll_target", -88.7, "Test log-likelihood (IWAE-k) target (nats).")
flags.DEFINE_string("out", "time_to_quality.png", "Output PNG path.")
flags.DEFINE_string("title", "", "Figure title.")
flags.DEFINE_list("reference", [], "Recorded results drawn as stars, LABEL:SECONDS:LOG_LIKELIHOOD "
                  "(e.g. 'protocol:18412:-88.65' for a run whose metrics are not at hand).")
FLAGS = flags.FLAGS


def parse_runs(specs: list[str]) -> dict[str, str]:
  """`["label:dir", "dir"]` -> `{label: dir}`; a bare directory is labelled by its basename."""
  runs = {}
  for spec in specs:
    label, _, path = spec.rpartition(":") if ":" in spec else ("", "", spec)
    path = path or label
    runs[label or os.path.basename(os.path.normpath(path))] = path
  return runs


def parse_references(specs: list[str]) -> dict[str, tuple[float, float]]:
  """`["label:seconds:value"]` -> `{label: (seconds, value)}`; the label may contain colons."""
  references = {}
  for spec in specs:
    parts = spec.rsplit(":", 2)
    try:
      label, seconds, value = parts[0], float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
      raise app.UsageError(
          f"--reference: {spec!r} is not LABEL:SECONDS:LOG_LIKELIHOOD (e.g. protocol:18412:-88.65)."
      ) from None
    if not label or seconds <= 0:
      raise app.UsageError(f"--reference: {spec!r} needs a label and seconds > 0.")
    references[label] = (seconds, value)
  return references


def summarize_run(records: list[dict], target: float, ll_target: float) -> dict:
  rows = reporting.learning_curve(records)
  points = reporting.log_likelihood_points(records)
  train = [r for r in records if "train_elbo" in r]
  return {
      "train_seconds": train[-1]["wall_s"] if train else 0.0,
      "epochs": rows[-1]["epoch"] if rows else 0,
      "best_test_elbo": max((r["test_elbo"] for r in rows), default=None),
      "seconds_to_test_elbo_target": reporting.time_to_target(rows, target),
      "best_test_log_likelihood": max((p["test_log_likelihood"] for p in points), default=None),
      "seconds_to_log_likelihood_target": reporting.time_to_target(
          points, ll_target, key="test_log_likelihood"),
  }


def main(argv):
  del argv
  runs = parse_runs(FLAGS.runs)
  references = parse_references(FLAGS.reference)
  curves, points, lines = {}, {}, []
  for label, workdir in runs.items():
    if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
      raise app.UsageError(f"--runs: {workdir} has no metrics.jsonl (train it first).")
    records = experiment.MetricsLog(workdir).read()
    curves[label] = reporting.learning_curve(records)
    points[label] = reporting.log_likelihood_points(records)
    lines.append({"label": label, "workdir": workdir, "target": FLAGS.target,
                  "ll_target": FLAGS.ll_target,
                  **summarize_run(records, FLAGS.target, FLAGS.ll_target)})
  for line in lines:
    print(json.dumps(line))
  reporting.plot_time_to_quality(curves, FLAGS.out, points=points, target=FLAGS.target,
                                 title=FLAGS.title, references=references)
  with open(f"{FLAGS.out}.jsonl", "w") as f:
    f.writelines(json.dumps(line) + "\n" for line in lines)
  print(f"wrote {FLAGS.out} and {FLAGS.out}.jsonl")


if __name__ == "__main__":
  from _entry import run

  run(main)
