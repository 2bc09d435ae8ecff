"""experiments/benchmark_table.py at a tiny budget: runs per seed, resume without re-evaluation,
the table's numbers, and overrides typed like the config's defaults."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

from vaex import experiment

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))
_spec = importlib.util.spec_from_file_location("benchmark_table",
                                               ROOT / "experiments" / "benchmark_table.py")
table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table)


def test_overrides_are_split_from_flags_and_typed_like_the_defaults():
  overrides, rest = table.parse_overrides(
      ["prog", "--seeds=2", "--config.num_epochs=3", "--config.learning_rate=1",
       "--config.hidden_sizes=(32, 16)", "--config.lr_schedule=cosine"])
  assert rest == ["prog", "--seeds=2"]
  config = table.apply_overrides(table.load_config("smoke"), overrides)
  assert config.num_epochs == 3 and config.learning_rate == 1.0
  assert isinstance(config.learning_rate, float)
  assert tuple(config.hidden_sizes) == (32, 16) and config.lr_schedule == "cosine"
  with pytest.raises(experiment.ConfigError, match="config.num_epoch: unknown key"):
    table.apply_overrides(table.load_config("smoke"), {"num_epoch": "3"})
  with pytest.raises(Exception, match="no config named 'smok'"):
    table.load_config("smok")


def test_two_seeds_train_evaluate_and_resume_without_evaluating_again(tmp_path):
  config = table.apply_overrides(table.load_config("smoke"),
                                 {"num_epochs": "1", "eval_iwae_samples": "4"})
  config.data_dir = str(DATA_DIR)
  test_size = len(experiment.load_datasets(config)["test"])
  lines = [table.run_config("smoke", config.copy_and_resolve_references(), s, str(tmp_path),
                            test_size) for s in range(2)]
  assert [line["seed"] for line in lines] == [0, 1]
  assert lines[0]["test_log_likelihood"] != lines[1]["test_log_likelihood"]  # Different seeds.
  for line in lines:
    assert line["test_elbo"] <= line["test_log_likelihood"] < 0
    assert line["train_seconds"] > 0 and line["test_iwae_k"] == 4
  metrics = tmp_path / "smoke" / "seed_1" / "metrics.jsonl"
  before = metrics.read_text()
  again = table.run_config("smoke", config.copy_and_resolve_references(), 1, str(tmp_path), test_size)
  assert again["test_log_likelihood"] == lines[1]["test_log_likelihood"]
  assert sum(json.loads(x).get("source") == "evaluate" for x in metrics.read_text().splitlines()) \
      == sum(json.loads(x).get("source") == "evaluate" for x in before.splitlines()) == 1
  text = table.results_table(lines)
  mean = (lines[0]["test_log_likelihood"] + lines[1]["test_log_likelihood"]) / 2
  assert f"| smoke | 2 | {mean:.2f} +- " in text and "10,000 test images" in text
