"""Data parallelism with JAX's own engine: a `jax.sharding.Mesh`, `NamedSharding`s and `jax.distributed`.

The batch axis is sharded along the mesh axis "data"; parameters and optimizer state are replicated;
`jax.jit` with these shardings makes XLA insert the gradient all-reduce. One device is the same code
path with a mesh of one. Across hosts, `jax.distributed.initialize` joins the processes and the mesh
spans every process's devices.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(num_devices: int = 0, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over the first `num_devices` devices (0: all devices of all processes)."""
  devices = list(jax.devices() if devices is None else devices)
  if num_devices < 0 or num_devices > len(devices):
    raise ValueError(
        f"`num_devices` must be between 0 (all) and {len(devices)} (the devices JAX sees); got "
        f"{num_devices}. On CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N gives N devices."
    )
  if num_devices and jax.process_count() > 1 and num_devices != len(devices):
    raise ValueError(
        f"With {jax.process_count()} processes the mesh must use every device; got num_devices="
        f"{num_devices} of {len(devices)}. Use num_devices=0."
    )
  return Mesh(np.asarray(devices[: num_devices or len(devices)]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """The sharding of parameters and optimizer state: a full copy on every device."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """The sharding of a batch: its leading axis split along the mesh's "data" axis."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_divisible(batch_size: int, mesh: Mesh, name: str = "batch_size") -> None:
  """Raises ValueError unless a global batch splits evenly over the mesh's devices."""
  n = mesh.devices.size
  if batch_size % n:
    lower, upper = batch_size // n * n, -(-batch_size // n) * n
    raise ValueError(
        f"`{name}` ({batch_size}) must be divisible by the number of devices ({n}) to shard the "
        f"batch evenly. Use {name}={upper}" + (f" or {lower}" if lower else "")
        + ", or set num_devices to a divisor of the batch size."
    )


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Places a host or single-device pytree on every device of the mesh (any number of processes)."""
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  def put(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      data = put(jax.random.key_data(x))
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(sharding, x, x.shape)

  return jax.tree.map(put, tree)


def put_process_batch(local_rows: np.ndarray, mesh: Mesh, global_batch: int) -> jax.Array:
  """Builds the global batch from this process's rows only (its devices' share of the batch)."""
  return jax.make_array_from_process_local_data(
      batch_sharded(mesh), local_rows, (global_batch, *local_rows.shape[1:])
  )


def process_rows(global_batch: int) -> slice:
  """Which rows of each global batch this process loads: a contiguous slice of equal size."""
  per_process = global_batch // jax.process_count()
  start = jax.process_index() * per_process
  return slice(start, start + per_process)


def to_host(x: jax.Array) -> np.ndarray:
  """A replicated array's value on this host (works when other processes hold other copies)."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return np.asarray(x.addressable_data(0))
  return np.asarray(x)


def initialize_distributed(
    coordinator_address: str | None,
    num_processes: int | None,
    process_id: int | None,
    *,
    timeout_seconds: int = 60,
) -> None:
  """Joins this process to a multi-process JAX job (`jax.distributed.initialize`).

  Arguments left None come from the environment: `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
  `JAX_PROCESS_ID`, or JAX's cluster auto-detection (TPU pods, SLURM, MPI, Kubernetes). Fails within
  about `timeout_seconds` with the coordinator's address when it cannot be reached.
  """
  env = os.environ
  coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
  if num_processes is None and env.get("JAX_NUM_PROCESSES"):
    num_processes = int(env["JAX_NUM_PROCESSES"])
  if process_id is None and env.get("JAX_PROCESS_ID"):
    process_id = int(env["JAX_PROCESS_ID"])
  if num_processes is not None and num_processes < 1:
    raise ValueError(f"`num_processes` must be >= 1; got {num_processes}.")
  if num_processes is not None and process_id is not None and not 0 <= process_id < num_processes:
    raise ValueError(
        f"`process_id` must be in [0, num_processes) = [0, {num_processes}); got {process_id}. "
        "Number the processes 0 .. num_processes - 1, with the same num_processes everywhere."
    )
  # Cross-process collectives on CPU (a no-op setting for GPU and TPU backends).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if coordinator_address and process_id not in (None, 0):
    # JAX aborts the whole process (a native CHECK failure) when the coordinator never answers;
    # probe it first so that the error is a Python exception naming the address.
    _wait_for_coordinator(coordinator_address, timeout_seconds, process_id, num_processes)
  # jax.distributed.initialize may block in native code past its own timeout; run it in a thread
  # so the caller gets a clear error in bounded time.
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  future = pool.submit(
      jax.distributed.initialize,
      coordinator_address=coordinator_address,
      num_processes=num_processes,
      process_id=process_id,
      initialization_timeout=timeout_seconds,
  )
  try:
    future.result(timeout=timeout_seconds + 15)
  except concurrent.futures.TimeoutError as e:
    raise TimeoutError(
        f"Could not reach the JAX coordinator at {coordinator_address!r} within {timeout_seconds} s "
        f"(process {process_id} of {num_processes}). Start process 0 first on that host, check the "
        "address and port, and that every process uses the same --num_processes."
    ) from e
  except Exception as e:  # noqa: BLE001  (re-raised with the address)
    raise RuntimeError(
        f"jax.distributed.initialize failed for coordinator {coordinator_address!r} (process "
        f"{process_id} of {num_processes}): {e}. Check the address, that process 0 is running, and "
        "that every process uses the same --num_processes."
    ) from e
  finally:
    pool.shutdown(wait=False)


def _wait_for_coordinator(address: str, timeout_seconds: float, process_id, num_processes) -> None:
  """Retries a TCP connection to `host:port` until it is accepted or `timeout_seconds` pass."""
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise ValueError(f"`coordinator_address` must look like host:port; got {address!r}.")
  deadline = time.monotonic() + timeout_seconds
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise TimeoutError(
            f"Could not reach the JAX coordinator at {address!r} within {timeout_seconds} s "
            f"(process {process_id} of {num_processes}; last error: {e}). Start process 0 on that "
            "host first, check the address and port, and that every process uses the same "
            "--num_processes."
        ) from e
      time.sleep(0.2)
