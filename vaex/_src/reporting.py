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
