"""A run's workdir: its lock, its `config.json`, compared on resume, and its metrics log `metrics.jsonl`.

What lands in a workdir:
  * `lock`: held (`fcntl.flock`) by the one process that writes the run, for the run's lifetime; it
    names that process (host, pid, start time) while it runs, and is empty otherwise. See `WorkdirLock`.
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
import logging
import math
import os
import socket
import time
from typing import Any

import ml_collections

from vaex._src.config import RESUMABLE_CHANGES, ConfigError, default_config

try:
  import fcntl
except ImportError:  # Windows: no flock; WorkdirLock falls back to the recorded holder.
  fcntl = None


def _config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json())


def _write_atomically(path: str, text: str) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _make_writable(workdir: str) -> None:
  """Creates `workdir` and checks that a file can be written in it; the errors say what to do."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_probe")
    _write_atomically(probe, "ok")
    os.remove(probe)
  except OSError as e:
    raise _unwritable(workdir, e) from e


def _unwritable(workdir: str, e: OSError) -> OSError:
  if e.errno in (errno.ENOSPC, errno.EDQUOT):
    return OSError(e.errno, f"--workdir {workdir!r}: {e.strerror}. Free some disk space, or choose a "
                   "--workdir on another disk.")
  return PermissionError(f"--workdir {workdir!r} is not writable ({e.strerror or e}). Choose a "
                         "directory you can write to, e.g. --workdir=/tmp/vaex_run.")


LOCK_FILE = "lock"


class WorkdirInUseError(RuntimeError):
  """Another run is writing the workdir; the message names it (host, pid, start time) and the fix."""


class WorkdirLock:
  """The one-writer lock of a workdir, held for a training run's lifetime.

  An exclusive `fcntl.flock` on `<workdir>/lock`, taken without waiting and held on the open file
  until `release()` (or the end of a `with` block). The kernel drops the lock when its process ends,
  however it ends (`kill -9` included), so a lock left by a dead run cannot block a resume: there is
  no stale state to detect. While held, the file names the holder (host, pid, start time in UTC), only
  to say who it is when a second run is refused; release empties it. The file is never deleted:
  unlinking a lock file lets two runs lock two different files of the same name.

  On a file system without flock (`ENOLCK`, `EOPNOTSUPP`, ...), the recorded holder decides instead:
  a holder on this host whose pid is alive refuses the run; any other record is stale and is taken
  over, with a warning. Only the writing process of a run takes the lock: the processes of one
  `jax.distributed` run share its workdir by design, and readers (`evaluate_checkpoint`,
  `restore_latest`) never take it, so a live run can be inspected.

  Usage: `with WorkdirLock(workdir): ...`, or `lock = WorkdirLock(workdir).acquire(); ...;
  lock.release()`. `acquire` creates `workdir` and raises `WorkdirInUseError` if it is in use.
  """

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd: int | None = None

  @property
  def held(self) -> bool:
    return self._fd is not None

  def acquire(self) -> WorkdirLock:
    if self._fd is not None:
      raise RuntimeError(f"{self.path} is already held by this WorkdirLock.")
    try:  # No write probe here: the run holding the lock may be probing the workdir right now.
      os.makedirs(self.workdir, exist_ok=True)
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise _unwritable(self.workdir, e) from e
    try:
      if fcntl is None:
        raise OSError(errno.ENOSYS, "no fcntl module")
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd, wait_s=1.0)  # The holder may be between its flock and its write.
      os.close(fd)
      raise WorkdirInUseError(_in_use_message(self.workdir, holder)) from None
    except OSError as e:
      holder = _read_holder(fd)
      if holder.get("host") == socket.gethostname() and _pid_alive(holder.get("pid")):
        os.close(fd)
        raise WorkdirInUseError(_in_use_message(self.workdir, holder)) from None
      logging.warning("%s: the file system cannot lock files (%s); only a run on this host that is "
                      "alive would have been refused.", self.path, e.strerror or e)
    except BaseException:
      os.close(fd)
      raise
    holder = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
      os.ftruncate(fd, 0)
      os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
      os.fsync(fd)  # Other hosts of a shared file system read it.
    except OSError:
      pass  # The record only names the holder; a full disk is reported by `prepare_workdir`.
    self._fd = fd
    return self

  def release(self) -> None:
    """Empties the file and closes it, which drops the lock. A no-op if not held."""
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    try:
      os.ftruncate(fd, 0)
    except OSError:
      pass  # Closing still releases the lock; the next holder overwrites the record.
    finally:
      os.close(fd)

  def __enter__(self) -> WorkdirLock:
    return self.acquire()

  def __exit__(self, *exc_info: Any) -> None:
    self.release()


def _read_holder(fd: int, wait_s: float = 0.0) -> dict[str, Any]:
  """The holder recorded in the lock file, `{}` if none (yet); polls up to `wait_s` for one."""
  deadline = time.monotonic() + wait_s
  while True:
    try:
      holder = json.loads(os.pread(fd, 4096, 0).decode())
      if isinstance(holder, dict):
        return holder
    except (OSError, ValueError):
      pass
    if time.monotonic() >= deadline:
      return {}
    time.sleep(0.05)


def _pid_alive(pid: Any) -> bool:
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Alive, run by another user.
  return True


def _in_use_message(workdir: str, holder: dict[str, Any]) -> str:
  if not holder:
    return (f"--workdir {workdir!r} is in use by another run (its lock file {LOCK_FILE!r} does not "
            "name it yet). Wait for it to finish, stop it, or choose another --workdir.")
  host, pid = holder.get("host", "?"), holder.get("pid", "?")
  where = "" if host == socket.gethostname() else f" on host {host}"
  return (f"--workdir {workdir!r} is in use by another run (host {host}, pid {pid}, started "
          f"{holder.get('started', '?')}). Wait for it to finish, stop it (kill {pid}{where}), or "
          "choose another --workdir.")


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str, *, write: bool = True) -> None:
  """Creates `workdir`, checks it is writable, and records or compares `config.json`.

  With `write=False` (processes other than 0), only compares an existing `config.json`.
  """
  if not write:
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
      _compare_config(path, _config_dict(config), workdir)
    return
  _make_writable(workdir)
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
      if k not in RESUMABLE_CHANGES + ("lr_decay_epochs",)
      and previous.get(k, defaults.get(k)) != current.get(k)
  )
  horizons = [_cosine_horizon({**defaults, **previous}), _cosine_horizon(current)]
  if not diffs and horizons[0] != horizons[1]:
    raise ConfigError(
        f"--workdir {workdir!r} holds a run whose cosine learning-rate decay spans {horizons[0]} "
        f"epochs; this config's spans {horizons[1]} (lr_decay_epochs, or num_epochs when it is 0), "
        f"which would change the learning rates of the steps already taken. To train longer, keep "
        f"the schedule: set --config.lr_decay_epochs={horizons[0]}."
    )
  if diffs:
    details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in diffs)
    raise ConfigError(
        f"--workdir {workdir!r} holds a run of a different config ({details}). Use a new "
        f"--workdir for a new experiment; only {RESUMABLE_CHANGES} may change on resume."
    )


def _cosine_horizon(config: dict[str, Any]) -> int | None:
  """The epochs a "cosine" learning-rate schedule decays over (None for other schedules)."""
  if config.get("lr_schedule") != "cosine":
    return None
  return config.get("lr_decay_epochs") or config.get("num_epochs")


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
