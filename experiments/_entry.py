"""How every entry point in experiments/ starts and ends: `run(main)` instead of `app.run(main)`.

- Errors a user fixes from the command line or the file system (`ConfigError`, `DataNotFoundError`,
  `DataFormatError`, `WorkdirInUseError`, `CheckpointError`, a `--config.<key>` override the config
  does not have) are printed as one message on stderr, without a traceback, and exit with status 1.
  Any other exception keeps its traceback: it is a bug to report, not a mistake to correct.
- JAX's probe for a TPU logs "Unable to initialize backend 'tpu': ... Failed to open libtpu.so" on
  every machine without libtpu; that line is dropped (importing this module installs the filter,
  before any backend starts). A TPU that is installed but fails to start is still reported.

This module defines no flags, so the figure scripts (which define their own `--workdir`) can use it
as well as the scripts built on `_cli`.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from absl import app

from vaex._src.checkpointing import CheckpointError
from vaex._src.config import ConfigError
from vaex._src.data import DataFormatError, DataNotFoundError
from vaex._src.workdir import WorkdirInUseError

USER_ERRORS = (ConfigError, DataNotFoundError, DataFormatError, WorkdirInUseError, CheckpointError)


class _NoTpuProbe(logging.Filter):
  """Drops JAX's INFO line about a missing libtpu (the TPU probe of a machine without a TPU)."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not (message.startswith("Unable to initialize backend 'tpu'") and "libtpu.so" in message
                and ("cannot open shared object file" in message or "No such file" in message))


def install_tpu_probe_filter() -> None:
  """Installs `_NoTpuProbe` on JAX's backend logger (idempotent). Must run before the first
  `jax.devices()` (or any computation), which is when JAX probes the backends."""
  logger = logging.getLogger("jax._src.xla_bridge")
  if not any(isinstance(f, _NoTpuProbe) for f in logger.filters):
    logger.addFilter(_NoTpuProbe())


install_tpu_probe_filter()


def _fail(message: str) -> NoReturn:
  print(f"{_program()}: error: {message}", file=sys.stderr, flush=True)
  _join_background_threads()
  sys.exit(1)


def _join_background_threads(timeout_s: float = 60.0) -> None:
  """Lets background work finish before the interpreter starts shutting down. An error can come
  right after orbax's `CheckpointManager` started its clean-up of temporary checkpoint directories
  in a (non-daemon) thread, which its `close()` does not wait for; at exit Python shuts the thread
  pools down before it joins such threads, and the clean-up then dies with a logged traceback."""
  for thread in threading.enumerate():
    if thread is not threading.current_thread() and not thread.daemon:
      thread.join(timeout_s)


def _program() -> str:
  return sys.argv[0].rsplit("/", 1)[-1] if sys.argv else "vaex"


def _load_config_file(argv: list[str]) -> tuple[str, Any] | None:
  """The `--config=<file>` of `argv` and its `get_config()`, or None if there is none to load."""
  paths = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
  paths += [value for flag, value in zip(argv, argv[1:]) if flag == "--config"]
  if not paths:
    return None
  path = paths[-1].split(":", 1)[0]  # ml_collections allows `file.py:argument`.
  spec = importlib.util.spec_from_file_location("_entry_config", path)
  if spec is None or spec.loader is None:
    return None
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  argument = paths[-1].split(":", 1)[1:]
  return path, module.get_config(*argument)


def unknown_override_message(argv: list[str]) -> str | None:
  """What is wrong with the first `--config.<path>=value` of `argv` whose path the config lacks:
  "--config.num_epoch=1: config in experiments/configs/smoke.py has no key 'num_epoch' (did you
  mean 'num_epochs'?). Check the spelling; ...". None if every override names an existing key (or
  the config cannot be loaded).
  """
  try:
    loaded = _load_config_file(argv)
  except Exception:  # The config file itself is broken: the original error says more.
    return None
  if loaded is None:
    return None
  path, config = loaded
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    keys = arg[len("--config."):].split("=", 1)[0].split(".")
    node, walked = config, "config"
    for key in keys:
      fields = list(node.keys()) if hasattr(node, "keys") else None
      if fields is not None and key in fields:
        node, walked = node[key], f"{walked}.{key}"
        continue
      if fields is None:
        problem = (f"{walked} is a {type(node).__name__}, not a config with fields, so it has no "
                   f"key {key!r}")
      else:
        problem = f"{walked} in {path} has no key {key!r}"
        close = difflib.get_close_matches(key, [str(f) for f in fields], 1, 0.6)
        if close:
          problem += f" (did you mean {close[0]!r}?)"
      return (f"{arg}: {problem}. Check the spelling; the keys, their defaults and meanings are in "
              "vaex.experiment.default_config() (vaex/_src/config.py).")
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing; a `--config.<path>` override of a key the config lacks becomes one message
  (ml_collections raises AttributeError/KeyError/TypeError from deep inside the parser)."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError, TypeError, IndexError):
    message = unknown_override_message(argv)
    if message is None:
      raise
    _fail(message)


def run(main: Callable[[list[str]], Any]) -> None:
  """`absl.app.run(main)`, with the errors in `USER_ERRORS` (and unknown `--config.` keys) printed
  as one message on stderr and exit status 1, without a traceback."""
  try:
    app.run(main, flags_parser=_parse_flags)
  except USER_ERRORS as e:
    _fail(f"{type(e).__name__}: {e}")
