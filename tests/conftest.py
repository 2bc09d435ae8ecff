"""Test-wide settings: 8 host CPU devices for sharding tests, fast compilation, a per-worker
compilation cache, and no silent rank promotion."""

import os

from subprocess_env import xla_flags

# Must be set before jax initializes its backends.
os.environ.setdefault("XLA_FLAGS", xla_flags(devices=8))

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402


def _temporary_dir(prefix: str) -> str:
  """A new temporary directory, removed when this process exits."""
  path = tempfile.mkdtemp(prefix=prefix)
  atexit.register(shutil.rmtree, path, ignore_errors=True)
  return path


# Experiment scripts run as subprocesses use a persistent compilation cache (default
# ~/.cache/vaex/jax); tests keep theirs in a temporary directory. Set after jax is imported, so this
# process does not read it (jax reads the variable at import).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _temporary_dir("vaex_test_jax_cache_")

# This process (one per xdist worker) has a persistent compilation cache of its own, in another
# directory. Many tests train the same small configs (smoke.py, the conv and latent-model configs)
# through new closures, which jax.jit's in-memory cache cannot share; the persistent cache is keyed
# on the program, its devices and flags, so each such program compiles once per worker and later
# tests load the executable (BUILD_NOTES, "Tests": 25% less CPU for experiment_test.py and
# latent_model_configs_test.py). Programs that compile in under 0.3 s (most of the op-by-op and
# unit-test programs) are not written: they would cost a file each and are rarely repeated.
jax.config.update("jax_compilation_cache_dir", _temporary_dir("vaex_test_inprocess_jax_cache_"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)

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
