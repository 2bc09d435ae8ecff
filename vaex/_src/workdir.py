"""A run's workdir: its `config.json`, compared on resume, and its metrics log `metrics.jsonl`.

What lands in a workdir:
  * `config.json`: the config of the run; a workdir holding another config is refused.
  * `metrics.jsonl`: one JSON object per line. Training lines carry `step`, `epoch`, `train_elbo`,
    `images_per_sec`, `wall_s`; evaluation lines `step`, `epoch`, `valid_elbo`, `test_elbo` (per-example
    means in nats).
  * `checkpoints/`: orbax checkpoints of the train state, one per epoch, the last few kept.
  * `samples.png`, `reconstructions.png`.
"""

from __future__ import annotations

import errno
import json
import math
import os
from typing import Any

import ml_collections

from vaex._src.config import RESUMABLE_CHANGES, ConfigError, default_config


def _config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json())


def _write_atomically(path: str, text: str) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str, *, write: bool = True) -> None:
  """Creates `workdir`, checks it is writable, and records or compares `config.json`.

  With `write=False` (processes other than 0), only compares an existing `config.json`.
  """
  if not write:
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
      _compare_config(path, _config_dict(config), workdir)
    return
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_probe")
    _write_atomically(probe, "ok")
    os.remove(probe)
  except OSError as e:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
      raise OSError(
          e.errno, f"--workdir {workdir!r}: {e.strerror}. Free some disk space, or choose a "
          "--workdir on another disk."
      ) from e
    raise PermissionError(
        f"--workdir {workdir!r} is not writable ({e.strerror or e}). Choose a directory you can "
        "write to, e.g. --workdir=/tmp/vaex_run."
    ) from e
  path = os.path.join(workdir, "config.json")
  current = _config_dict(config)
  if os.path.exists(path):
    _compare_config(path, current, workdir)
  _write_atomically(path, json.dumps(current, indent=2, sort_keys=True) + "\n")


def _compare_config(path: str, current: dict[str, Any], workdir: str) -> None:
  with open(path) as f:
    previous = json.load(f)
  # A key the stored config lacks was added to vaex after that run started: it ran with the default.
  defaults = _config_dict(default_config())
  diffs = sorted(
      k for k in set(previous) | set(current)
      if k not in RESUMABLE_CHANGES and previous.get(k, defaults.get(k)) != current.get(k)
  )
  if diffs:
    details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in diffs)
    raise ConfigError(
        f"--workdir {workdir!r} holds a run of a different config ({details}). Use a new "
        f"--workdir for a new experiment; only {RESUMABLE_CHANGES} may change on resume."
    )


class MetricsLog:
  """Appends JSON lines to `metrics.jsonl`; on resume, drops lines newer than the checkpoint."""

  def __init__(self, workdir: str, *, write: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = write  # Only one process of a multi-process run writes.

  def truncate_after(self, step: int) -> None:
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]
    kept = []
    for line in lines:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue  # A line cut by a crash.
      if record.get("step", 0) <= step:
        kept.append(line if line.endswith("\n") else line + "\n")
    _write_atomically(self.path, "".join(kept))

  def write(self, records: list[dict[str, Any]]) -> None:
    """Appends `records` (non-finite floats become null, keeping the file strict JSON)."""
    if not self.enabled:
      return
    try:
      with open(self.path, "a") as f:
        for record in records:
          clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                   for k, v in record.items()}
          f.write(json.dumps(clean, sort_keys=True, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:
      if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise OSError(e.errno, f"Could not append to {self.path}: {e.strerror}. Free some disk "
                      "space and re-run the same command: training resumes from the last "
                      "checkpoint.") from e
      raise

  def read(self) -> list[dict[str, Any]]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]
