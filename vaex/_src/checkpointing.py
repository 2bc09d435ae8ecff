"""Checkpoints of the train state with orbax: atomic, a few kept, restorable into a template.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a crash
mid-write leaves no checkpoint that looks finished. Leftover temporary directories are reported
and removed when the manager opens the directory.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from vaex._src.training import TrainState

_TMP_MARKER = ".orbax-checkpoint-tmp"


class CheckpointError(RuntimeError):
  """A checkpoint could not be read or does not fit the run."""


def _as_tree(state: TrainState) -> dict[str, Any]:
  # Typed PRNG keys are stored as their raw uint32 data.
  return {
      "params": state.params,
      "opt_state": state.opt_state,
      "step": state.step,
      "key_data": jax.random.key_data(state.key),
  }


class Checkpointer:
  """Saves and restores `TrainState`s (plus a small JSON metadata dict) under `directory`."""

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3):
    self.directory = os.path.abspath(os.fspath(directory))
    if os.path.isdir(self.directory):
      partial = sorted(n for n in os.listdir(self.directory) if _TMP_MARKER in n)
      for name in partial:
        logging.warning(
            "Ignoring the incomplete checkpoint %s (left by an interrupted save); the latest "
            "complete checkpoint is used instead.", os.path.join(self.directory, name)
        )
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=True,
        enable_async_checkpointing=False,
        cleanup_tmp_directories=True,
    )
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=("state", "meta")
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: TrainState, metadata: dict[str, Any]) -> None:
    """Writes the state at `state.step` (blocking until it is complete on disk)."""
    step = int(state.step)
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(_as_tree(state)), meta=ocp.args.JsonSave(metadata)
        ),
        force=True,
    )
    self._manager.wait_until_finished()

  def restore(self, template: TrainState, step: int | None = None) -> tuple[TrainState, dict]:
    """Restores the checkpoint at `step` (default: the latest) into the structure of `template`."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"No checkpoint found in {self.directory}.")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _as_tree(template))
    try:
      restored = self._manager.restore(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
          ),
      )
    except Exception as e:  # orbax raises many types for unreadable or mismatched trees.
      if "shape" in str(e).lower():
        raise CheckpointError(
            f"The checkpoint at step {step} in {self.directory} holds arrays of other shapes than "
            f"this model (it was written by a different model size or config): {e} Use a new "
            "--workdir for this config."
        ) from e
      raise CheckpointError(
          f"Could not restore the checkpoint at step {step} in {self.directory}: "
          f"{type(e).__name__}: {e}. If it was written by another model or config, use a new "
          "--workdir; if it is corrupt, delete that step's directory to fall back to an earlier one."
      ) from e
    tree = restored["state"]
    _check_same_shapes(abstract, tree, self.directory, step)
    state = TrainState(
        params=tree["params"],
        opt_state=tree["opt_state"],
        step=tree["step"],
        key=jax.random.wrap_key_data(
            np.asarray(tree["key_data"]), impl=jax.random.key_impl(template.key)
        ),
    )
    return state, dict(restored["meta"])

  def close(self) -> None:
    self._manager.close()


def _check_same_shapes(want: Any, got: Any, directory: str, step: int) -> None:
  want_shapes = [tuple(x.shape) for x in jax.tree_util.tree_leaves(want)]
  got_shapes = [tuple(np.shape(x)) for x in jax.tree_util.tree_leaves(got)]
  if want_shapes != got_shapes:
    raise CheckpointError(
        f"The checkpoint at step {step} in {directory} holds arrays of other shapes than this "
        "model (it was written by a different model size or config). Use a new --workdir."
    )
