"""Summaries and curves of a run, read back from its `metrics.jsonl` (no retraining needed)."""

from __future__ import annotations

import os
from typing import Any


def learning_curve(records: list[dict[str, Any]]) -> list[dict[str, float]]:
  """One row per evaluation: `epoch`, `step`, `wall_s` (training seconds so far), `valid_elbo`,
  `test_elbo`, `train_elbo` (mean over the epoch's minibatches)."""
  train = {r["step"]: r for r in records if "train_elbo" in r}
  rows = []
  for r in records:
    if "valid_elbo" in r and r.get("source") != "evaluate" and r["step"] in train:
      t = train[r["step"]]
      rows.append({"epoch": r["epoch"], "step": r["step"], "wall_s": t["wall_s"],
                   "train_elbo": t["train_elbo"], "valid_elbo": r["valid_elbo"],
                   "test_elbo": r["test_elbo"]})
  return rows


def summarize(records: list[dict[str, Any]], *, target: float = -100.0,
              at_epochs: tuple[int, ...] = (1, 10, 100)) -> dict[str, Any]:
  """Test ELBO at given epochs, seconds per epoch, and the training time to reach `target`."""
  rows = learning_curve(records)
  train = [r for r in records if "train_elbo" in r]
  out: dict[str, Any] = {"epochs": rows[-1]["epoch"] if rows else 0}
  by_epoch = {r["epoch"]: r for r in rows}
  for e in at_epochs:
    if e in by_epoch:
      out[f"test_elbo_epoch_{e}"] = by_epoch[e]["test_elbo"]
  if len(train) > 1:
    # The first call includes no compilation (it is compiled ahead of time), but skip it anyway.
    seconds = [b["wall_s"] - a["wall_s"] for a, b in zip(train, train[1:])]
    steps = [b["step"] - a["step"] for a, b in zip(train, train[1:])]
    out["seconds_per_step"] = sum(seconds) / sum(steps)
    out["median_images_per_sec"] = sorted(r["images_per_sec"] for r in train)[len(train) // 2]
  reached = [r for r in rows if r["test_elbo"] >= target]
  if reached:
    out[f"first_epoch_test_elbo_ge_{target:g}"] = reached[0]["epoch"]
    out[f"train_seconds_to_test_elbo_ge_{target:g}"] = reached[0]["wall_s"]
  if rows:
    out["final_test_elbo"] = rows[-1]["test_elbo"]
    out["best_test_elbo"] = max(r["test_elbo"] for r in rows)
  return out


def plot_learning_curve(rows: list[dict[str, float]], path: str | os.PathLike, *, title: str = "",
                        target: float | None = -100.0) -> None:
  """Test/valid/train ELBO against training time and epochs, as a PNG."""
  from vaex._src.plots import _import_matplotlib

  figure_cls = _import_matplotlib()
  fig = figure_cls(figsize=(10, 4))
  for i, x_key in enumerate(("wall_s", "epoch")):
    ax = fig.add_subplot(1, 2, i + 1)
    for key, style in (("train_elbo", ":"), ("valid_elbo", "--"), ("test_elbo", "-")):
      ax.plot([r[x_key] for r in rows], [r[key] for r in rows], style, label=key)
    if target is not None:
      ax.axhline(target, color="gray", lw=0.8)
    ax.set_xlabel("training seconds" if x_key == "wall_s" else "epoch")
    ax.set_ylabel("ELBO per example (nats)")
    lows = [r["test_elbo"] for r in rows]
    if lows:
      ax.set_ylim(max(min(lows), lows[-1] - 30), max(r["train_elbo"] for r in rows) + 2)
    ax.grid(alpha=0.3)
    ax.legend()
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  tmp = f"{os.fspath(path)}.tmp.png"
  fig.savefig(tmp, dpi=110)
  os.replace(tmp, path)


def log_likelihood_points(records: list[dict[str, Any]]) -> list[dict[str, float]]:
  """The run's IWAE-k test log-likelihood evaluations (`evaluate.py` lines), each with the training
  seconds of its step: `step`, `wall_s`, `test_log_likelihood`, `test_log_likelihood_stderr`."""
  wall = {r["step"]: r["wall_s"] for r in records if "train_elbo" in r}
  return [{"step": r["step"], "wall_s": wall[r["step"]],
           "test_log_likelihood": r["test_log_likelihood"],
           "test_log_likelihood_stderr": r.get("test_log_likelihood_stderr", float("nan"))}
          for r in records
          if r.get("source") == "evaluate" and "test_log_likelihood" in r and r["step"] in wall]


def time_to_target(rows: list[dict[str, float]], target: float, key: str = "test_elbo") -> float | None:
  """Training seconds at the first evaluation with `rows[i][key] >= target` (None: never)."""
  return next((r["wall_s"] for r in rows if r[key] >= target), None)


def plot_time_to_quality(curves: dict[str, list[dict[str, float]]], path: str | os.PathLike, *,
                         points: dict[str, list[dict[str, float]]] | None = None,
                         target: float | None = None, title: str = "",
                         references: dict[str, tuple[float, float]] | None = None) -> None:
  """Test ELBO against training seconds (log scale), one line per run; IWAE-k log-likelihood
  evaluations as markers with their standard errors. `curves` maps a label to `learning_curve` rows;
  `references` maps a label to a recorded `(training seconds, test log p(x))` drawn as a star (a
  run whose metrics are not at hand, e.g. a protocol run from an earlier machine, or a paper)."""
  from vaex._src.plots import _import_matplotlib, _save_atomically

  figure_cls = _import_matplotlib()
  fig = figure_cls(figsize=(7, 4.5))
  ax = fig.add_subplot(1, 1, 1)
  for i, (label, rows) in enumerate(curves.items()):
    color = f"C{i}"
    ax.plot([r["wall_s"] for r in rows], [r["test_elbo"] for r in rows], "-", color=color,
            label=f"{label}: test ELBO")
    for p in (points or {}).get(label, []):
      ax.errorbar(p["wall_s"], p["test_log_likelihood"], yerr=p["test_log_likelihood_stderr"],
                  fmt="o", color=color, ms=5, capsize=2)
  for j, (label, (seconds, value)) in enumerate((references or {}).items()):
    ax.plot([seconds], [value], "*", color=f"C{len(curves) + j}", ms=11,
            label=f"{label}: test log p(x)")
  if points and any(points.values()):
    ax.plot([], [], "o", color="gray", label="test log p(x), IWAE-k")
  if target is not None:
    ax.axhline(target, color="gray", lw=0.8, ls="--")
  ax.set_xscale("log")
  ax.set_xlabel("training seconds")
  ax.set_ylabel("nats per test image")
  lows = [r["test_elbo"] for rows in curves.values() for r in rows[len(rows) // 10:]]
  highs = [r["test_elbo"] for rows in curves.values() for r in rows] + [
      p["test_log_likelihood"] for ps in (points or {}).values() for p in ps] + [
      value for _, value in (references or {}).values()]
  if lows and highs:
    ax.set_ylim(min(lows) - 1, max(highs) + 1)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8)
  if title:
    ax.set_title(title)
  fig.tight_layout()
  _save_atomically(fig, path, dpi=120)
