"""XLA flags for the test suite, in-process (conftest.py) and in the scripts tests run as subprocesses.

Most of the suite's time is XLA compiling small programs, and most of that is LLVM optimizing the
generated code. `--xla_backend_optimization_level=0` compiles about 40% faster (backend compile
8.7 -> 5.4 s for one tiny IWAE-5 training of the benchmark networks), which the suite's many short
runs gain and barely pay for in slower execution (BUILD_NOTES, "Tests"). Results keep IEEE
semantics (XLA's CPU fast-math is off at every level), and runs compared bitwise in a test are
compiled with the same flags. Benchmarks, experiments, the docs' executed guides and users' runs keep
XLA's defaults.
"""

from __future__ import annotations

import os

FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"


def xla_flags(devices: int = 1) -> str:
  """XLA_FLAGS for `devices` host CPU devices (1: a user's machine), compiled fast."""
  if devices == 1:
    return FAST_COMPILE_FLAG
  return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE_FLAG}"


def script_env(devices: int = 1, **extra: str) -> dict[str, str]:
  """This process's environment for a subprocess, with `xla_flags(devices)` and `extra` set."""
  return dict(os.environ, XLA_FLAGS=xla_flags(devices), **extra)
