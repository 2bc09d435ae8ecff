"""Runs read back from metrics.jsonl: learning curves, time to a target, the time-to-quality figure."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vaex import experiment
from vaex._src import reporting

ROOT = Path(__file__).resolve().parents[1]


def _write_run(workdir: Path, elbos, seconds_per_epoch: float, log_lik=None):
  log = experiment.MetricsLog(str(workdir))
  workdir.mkdir(parents=True, exist_ok=True)
  for epoch, elbo in enumerate(elbos, start=1):
    step = 10 * epoch
    log.write([
        {"step": step, "epoch": epoch, "train_elbo": elbo + 2, "images_per_sec": 1.0,
         "wall_s": seconds_per_epoch * epoch},
        {"step": step, "epoch": epoch, "valid_elbo": elbo - 1, "test_elbo": elbo},
    ])
  if log_lik is not None:
    log.write([{"step": 10 * len(elbos), "epoch": len(elbos), "source": "evaluate",
                "test_elbo": elbos[-1], "test_log_likelihood": log_lik,
                "test_log_likelihood_stderr": 0.2}])


def test_time_to_target_is_the_training_time_of_the_first_evaluation_at_the_target(tmp_path):
  _write_run(tmp_path, [-120.0, -105.0, -99.5, -99.9], seconds_per_epoch=7.0, log_lik=-91.0)
  records = experiment.MetricsLog(str(tmp_path)).read()
  rows = reporting.learning_curve(records)
  assert reporting.time_to_target(rows, -100.0) == 21.0
  assert reporting.time_to_target(rows, -90.0) is None
  (point,) = reporting.log_likelihood_points(records)
  assert point == {"step": 40, "wall_s": 28.0, "test_log_likelihood": -91.0,
                   "test_log_likelihood_stderr": 0.2}


def test_time_to_quality_script_writes_the_figure_and_one_line_per_run(tmp_path):
  _write_run(tmp_path / "slow", [-130.0, -110.0, -101.0, -100.0], seconds_per_epoch=50.0)
  _write_run(tmp_path / "fast", [-110.0, -99.0], seconds_per_epoch=20.0, log_lik=-90.5)
  out = tmp_path / "ttq.png"
  result = subprocess.run(
      [sys.executable, str(ROOT / "experiments" / "time_to_quality.py"),
       f"--runs=protocol:{tmp_path / 'slow'},{tmp_path / 'fast'}", "--target=-100",
       "--ll_target=-91", f"--out={out}", "--reference=paper (recorded):400:-89.5"],
      capture_output=True, text=True, check=True, cwd=tmp_path)
  assert out.stat().st_size > 10_000
  lines = [json.loads(line) for line in (tmp_path / "ttq.png.jsonl").read_text().splitlines()]
  by_label = {line["label"]: line for line in lines}
  assert set(by_label) == {"protocol", "fast"}
  assert by_label["protocol"]["seconds_to_test_elbo_target"] == 200.0
  assert by_label["fast"]["seconds_to_test_elbo_target"] == 40.0
  assert by_label["fast"]["seconds_to_log_likelihood_target"] == 40.0
  assert by_label["protocol"]["seconds_to_log_likelihood_target"] is None
  assert "wrote" in result.stdout


def test_references_are_parsed_and_bad_ones_refused():
  sys.path.insert(0, str(ROOT / "experiments"))
  try:
    import time_to_quality
  finally:
    sys.path.pop(0)
  from absl import app

  assert time_to_quality.parse_references(["protocol:18412:-88.65", "a:b:1:-2"]) == {
      "protocol": (18412.0, -88.65), "a:b": (1.0, -2.0)}
  for bad in ("protocol:-88.65", "protocol:soon:-88.65", ":10:-88", "p:0:-88"):
    with pytest.raises(app.UsageError, match="--reference"):
      time_to_quality.parse_references([bad])
