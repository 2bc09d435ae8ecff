"""Checkpoints of the train state with orbax: atomic, a few kept, restorable into a template.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a crash
mid-write leaves no checkpoint that looks finished. Leftover temporary directories are reported
and removed when the manager opens the directory.

A checkpoint that cannot be used is reported as a `CheckpointError` naming its directory and the fix,
in two kinds: written by a different model or config (its stored shapes, read from orbax's metadata
before any array is loaded, differ from the model's), or corrupt (anything else, including contents
that no longer match the SHA-256 of the state recorded when it was saved: orbax's array files carry
no checksum, so a flipped bit would otherwise load silently).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from vaex._src.training import TrainState

_TMP_MARKER = ".orbax-checkpoint-tmp"
_DIGEST_KEY = "state_sha256"  # Added to the JSON metadata of each checkpoint.
_MAX_DETAIL = 300  # Characters of an underlying error quoted in a CheckpointError.


class CheckpointError(RuntimeError):
  """A checkpoint could not be read or does not fit the run."""


def _short(error: BaseException) -> str:
  text = " ".join(str(error).split())
  if len(text) > _MAX_DETAIL:
    text = text[:_MAX_DETAIL] + " ..."
  return f"{type(error).__name__}: {text}"


def _path_str(path: tuple) -> str:
  """A pytree path as `a/0/b`, the same for dict keys, tuple indices and named-tuple fields."""
  parts = []
  for key in path:
    for attr in ("key", "idx", "name"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def _digest(tree: Any) -> str | None:
  """SHA-256 of every leaf's dtype, shape and bytes; None if some leaf is not on this process."""
  leaves = jax.tree_util.tree_leaves(tree)
  if not all(getattr(x, "is_fully_addressable", True) for x in leaves):
    return None
  h = hashlib.sha256()
  for x in jax.device_get(leaves):
    x = np.ascontiguousarray(x)
    h.update(f"{x.dtype.str}{x.shape}".encode())
    h.update(x.tobytes())
  return h.hexdigest()


def _is_disk_full(error: BaseException) -> bool:
  if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
    return True
  text = str(error)
  return os.strerror(errno.ENOSPC) in text or os.strerror(errno.EDQUOT) in text


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
    tree = _as_tree(state)
    digest = _digest(tree)
    if digest is not None:
      metadata = {**metadata, _DIGEST_KEY: digest}
    try:
      self._manager.save(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(metadata)
          ),
          force=True,
      )
      self._manager.wait_until_finished()
    except Exception as e:  # tensorstore reports a full disk as a ValueError, not an OSError.
      if not _is_disk_full(e):
        raise
      raise OSError(
          errno.ENOSPC,
          f"No space left to write the checkpoint of step {step} in {self.directory} ({_short(e)}). "
          f"Free some disk space, then re-run the same command: it resumes from the last complete "
          f"checkpoint (step {self.latest_step()}). The incomplete one is ignored and removed.",
      ) from e

  def restore(self, template: TrainState, step: int | None = None) -> tuple[TrainState, dict]:
    """Restores the checkpoint at `step` (default: the latest) into the structure of `template`.

    Raises:
      CheckpointError: if there is no checkpoint, if it was written by a different model or config
        (checked against orbax's metadata before loading), or if it is unreadable or corrupt (its
        contents do not match the SHA-256 recorded at save time). The message names the step's
        directory and what to do.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"No checkpoint found in {self.directory}.")
    step_dir = os.path.join(self.directory, str(step))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _as_tree(template))
    try:
      with ocp.StandardCheckpointer() as reader:
        stored = reader.metadata(os.path.join(step_dir, "state")).item_metadata
    except Exception as e:  # orbax raises many types for unreadable metadata.
      raise self._corrupt(step, step_dir, e) from e
    if not jax.tree_util.tree_leaves(stored):  # orbax reads unparsable metadata as empty.
      raise self._corrupt(step, step_dir, ValueError("its array metadata is missing or unreadable"))
    _check_same_shapes(abstract, stored, step_dir)
    try:
      restored = self._manager.restore(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
          ),
      )
    except Exception as e:  # orbax and tensorstore raise many types for unreadable files.
      raise self._corrupt(step, step_dir, e) from e
    tree = restored["state"]
    _check_same_shapes(abstract, tree, step_dir)
    meta = dict(restored["meta"] or {})
    expected = meta.pop(_DIGEST_KEY, None)
    if expected is not None:
      actual = _digest(tree)
      if actual is not None and actual != expected:
        raise self._corrupt(step, step_dir, ValueError(
            f"the arrays' SHA-256 is {actual[:12]}... but was {expected[:12]}... when saved"))
    key = jax.random.wrap_key_data(
        np.asarray(tree["key_data"]), impl=jax.random.key_impl(template.key)
    )
    if isinstance(template.key, jax.Array) and template.key.is_fully_addressable:
      # Placed like the template's key, as orbax placed the other arrays: a resumed run then
      # compiles the same programs as a fresh one.
      key = jax.device_put(key, template.key.sharding)
    state = TrainState(
        params=tree["params"], opt_state=tree["opt_state"], step=tree["step"], key=key
    )
    return state, meta

  def _corrupt(self, step: int, step_dir: str, error: BaseException) -> CheckpointError:
    earlier = [s for s in self._manager.all_steps() if s < step]
    if earlier:
      fallback = f"to resume from the previous checkpoint (step {max(earlier)})"
    else:
      fallback = "(it is the only checkpoint: the run then starts again from step 0)"
    return CheckpointError(
        f"The checkpoint at step {step}, {step_dir}, is corrupt or incomplete and cannot be "
        f"restored ({_short(error)}). Delete that directory {fallback}, or use a new --workdir."
    )

  def close(self) -> None:
    self._manager.close()


def _check_same_shapes(want: Any, got: Any, step_dir: str) -> None:
  """Raises CheckpointError unless both trees have the same leaf paths and shapes."""
  def shapes(tree):
    return {_path_str(path): tuple(x.shape if hasattr(x, "shape") else np.shape(x))
            for path, x in jax.tree_util.tree_leaves_with_path(tree)}

  want_shapes, got_shapes = shapes(want), shapes(got)
  if want_shapes == got_shapes:
    return
  diffs = []
  for path in sorted(set(want_shapes) | set(got_shapes), key=lambda p: (p.split("/")[0] != "params", p)):
    if path not in want_shapes:
      diffs.append(f"{path} is in the checkpoint but not in this model")
    elif path not in got_shapes:
      diffs.append(f"{path} is missing from the checkpoint")
    elif want_shapes[path] != got_shapes[path]:
      diffs.append(f"{path} has shape {got_shapes[path]} there but {want_shapes[path]} here")
  more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
  raise CheckpointError(
      f"The checkpoint {step_dir} was written by a different model size or config: "
      f"{'; '.join(diffs[:3])}{more}. Use a new --workdir for this config, or the config that "
      "wrote it."
  )
