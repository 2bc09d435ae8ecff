"""Test-wide settings: 8 host CPU devices for sharding tests, fast compilation, and no silent rank
promotion."""

import os

from subprocess_env import xla_flags

# Must be set before jax initializes its backends.
os.environ.setdefault("XLA_FLAGS", xla_flags(devices=8))

import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

# Experiment scripts run as subprocesses use a persistent compilation cache (default
# ~/.cache/vaex/jax); tests keep theirs in a temporary directory. Set after jax is imported, so this
# process itself does not cache (jax reads the variable at import).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="vaex_test_jax_cache_"))

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(params=["nojit", "jit"])
def variant(request):
  """Runs a function as written or under `jax.jit`: `variant(fn)(*args)`."""
  if request.param == "jit":
    return jax.jit
  return lambda fn: fn


@pytest.fixture
def key():
  return jax.random.key(0)


@pytest.fixture
def allow_rank_promotion():
  """distrax broadcasts implicitly (sample shapes against parameters); its tests allow it."""
  with jax.numpy_rank_promotion("allow"):
    yield
