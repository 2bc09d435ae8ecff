"""Training and evaluation throughput of vaex on this machine, measured side by side in one process.

Usage:
  python benchmarks/throughput.py [--json PATH] [--repeats 5] [--quick] [--torch] [--data_dir DIR]

Everything runs in one process and the repeats are interleaved round-robin (repeat r times every
variant once, then repeat r + 1), so a slow drift of the machine (other jobs, thermal limits) hits all
variants alike and the ratios between them stay fair. Each variant is compiled and run once before the
timed repeats. Variants:

  * matmul peak at the model's shapes: the dense layers of the paper's model on a batch of 100, forward
    and backward shaped (the weight and input gradients), chained in one `fori_loop` inside one jit so
    that dispatch costs nothing. Its GFLOP/s is `matmul_peak_gflops`, the number every "% of peak" in
    the table divides by: XLA's own matmuls at exactly the shapes training needs. The same at large
    square shapes (2048 x 2048) is reported too (`matmul_square_gflops`), for reference only.
  * our epoch function: `make_train_steps` (uint8 data on the device, `lax.scan`, donated state) on
    the paper's model (784-500-2x20 / 20-500-784 tanh, estimator B, L = 1, M = 100, Adam 1e-3) over
    binarized MNIST, compiled ahead of time; one timed call is a whole epoch (500 steps).
  * the same epoch function run as 5 calls of 100 steps (the experiment's `config.steps_per_call`).
  * our per-step path: `make_train_step` (jitted, donated) fed batches gathered on the device.
  * a naive reference: a plain jitted step (no donation) fed float32 batches cut on the host with
    numpy every step, a host-side `random.split` per step: what a typical script does.
  * the Flax linen VAE example's step: `train_step(state, batch, key)` on a
    `flax.training.train_state.TrainState`, its loss written as in that example, host batches.
  * NumPyro SVI on the same model (vaex's Flax modules in `flax_module`, `TraceMeanField_ELBO`,
    Adam 1e-3), two ways: `jax.jit(svi.update)` per step on host batches, and `svi.update` inside a
    jitted `lax.scan` over the epoch with the uint8 data on the device (see `numpyro_svi`). Skipped
    with a printed note when numpyro is not importable (`pip install -e '.[benchmarks]'`).
  * the IWAE-k evaluator (`make_dataset_bound(estimator="iwae")`) on a subset of the test set.
  * compile time of a freshly built epoch function (lower + compile), and a check that a second
    epoch does not recompile (a trace counter in the loss and JAX's compile events).
  * after all of the above, the same compile with JAX's persistent compilation cache warm (what a
    rerun, a resume, or evaluate after train costs with the experiment scripts' default cache).
  * 8 small models trained at once with `jax.vmap` over seeds vs the same 8 one after another.
  * `config.num_seeds` = 4 on the paper's model: the training loop's program (`make_train_steps`
    vmapped by `vaex/_src/seeds.py`) vs the same 4 replicas one after another (not with --quick).
  * with `--torch`, a plain PyTorch loop of the same model (skipped with a note if torch is missing).

FLOPs count only the dense layers (elementwise work is not counted): a training image costs
`6 F - 2 M1` FLOPs, where F is the multiply-accumulates of one forward pass through all dense layers
and M1 those of the first encoder layer (forward 2 F, backward 2 x 2 F less the input gradient of the
first layer, which is not needed): 4.10 MFLOP for the paper's model.

Reported figures are medians over the repeats; "% of peak" is a variant's median GFLOP/s over the
median model-shape matmul GFLOP/s, and each "ratio_vs_*" is the median of the per-repeat ratios. Each
call's CPU time (`time.process_time`, all threads of this process) is recorded too, and
"cpu_ratio_vs_*" is the same paired ratio from images per CPU-second: on a shared machine it measures
the work a call does, where the wall time also measures the cores the scheduler granted. Every
model starts from parameters drawn on the host (see `new_state`); the IWAE batch holds about 5,000
decoder rows unless `--iwae_batch` says otherwise.

`--quick` is a tiny run for tests (1000 training images, 10 steps per call, 2 repeats, IWAE-100 on 50
test images, the vmap comparison on the paper's model so that it reuses the epoch function's
executable); its numbers are not meaningful.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax
from flax.training import train_state as flax_train_state

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # Run from a checkout without installing.

import vaex  # noqa: E402
import vaex.data  # noqa: E402
from vaex._src import evaluation, training  # noqa: E402

DIM_X = 784
BATCH_SIZE = 100
NUM_MODELS = 8  # Models trained at once in the vmap-over-seeds comparison.
NUM_SEEDS = 4  # Replicas of the paper's model in the config.num_seeds comparison.


@dataclasses.dataclass(frozen=True)
class Settings:
  """Sizes of one benchmark run (`--quick` shrinks them)."""

  repeats: int
  num_train: int  # Training images used (0: all 50,000).
  steps_per_call: int  # Updates per timed call of every training variant.
  matmul_iterations: int  # fwd + bwd chains per timed call of the model-shape matmul peak.
  square_size: int
  square_iterations: int
  iwae_images: int
  iwae_samples: int
  iwae_batch: int  # 0: `iwae_batch_size(iwae_images, iwae_samples)`.
  small_hidden: int
  small_latent: int


def make_settings(args: argparse.Namespace) -> Settings:
  if args.quick:
    return Settings(
        repeats=args.repeats or 2, num_train=1000, steps_per_call=10, matmul_iterations=5,
        square_size=256, square_iterations=2, iwae_images=50, iwae_samples=100,
        iwae_batch=args.iwae_batch,
        small_hidden=500, small_latent=20,  # The paper's model: reuses the epoch fn's compilation.
    )
  return Settings(
      repeats=args.repeats or 5, num_train=0, steps_per_call=500, matmul_iterations=100,
      square_size=2048, square_iterations=4, iwae_images=args.iwae_images, iwae_samples=args.iwae_k,
      iwae_batch=args.iwae_batch,
      small_hidden=64, small_latent=8,
  )


# ------------------------------------------------------------------------------------------------
# FLOP counts.


def dense_shapes(latent_dim: int, hidden: int, dim_x: int = DIM_X) -> list[tuple[int, int]]:
  """(fan_in, fan_out) of every dense layer: encoder hidden, encoder head, decoder hidden, output."""
  return [(dim_x, hidden), (hidden, 2 * latent_dim), (latent_dim, hidden), (hidden, dim_x)]


def train_flops_per_image(shapes: list[tuple[int, int]]) -> tuple[float, str]:
  """FLOPs of one training image through the dense layers, and the formula with its numbers.

  Forward: 2 F (F = multiply-accumulates of all layers). Backward: every layer needs its weight
  gradient (F_i MACs) and its input gradient (F_i MACs), except the first layer, whose input (the data)
  needs no gradient: 2 (2 F - M1). Total 6 F - 2 M1.
  """
  macs = [a * b for a, b in shapes]
  forward, first = sum(macs), macs[0]
  flops = 6 * forward - 2 * first
  terms = " + ".join(f"{a}*{b}" for a, b in shapes)
  formula = (
      f"6 F - 2 M1 with F = {terms} = {forward:,} forward MACs and M1 = {first:,} (first layer, "
      f"no input gradient): forward 2 F + backward 2 (2 F - M1) = {flops / 1e6:.3f} MFLOP per image"
  )
  return float(flops), formula


def iwae_flops_per_image(shapes: list[tuple[int, int]], num_samples: int) -> float:
  """FLOPs of the IWAE-k bound of one image: one encoder pass and k decoder passes."""
  encoder = sum(a * b for a, b in shapes[:2])
  decoder = sum(a * b for a, b in shapes[2:])
  return float(2 * encoder + num_samples * 2 * decoder)


# ------------------------------------------------------------------------------------------------
# Timing.


@dataclasses.dataclass
class Variant:
  """One thing to time. `run()` does one timed unit of work and returns when it has finished."""

  key: str
  label: str
  run: Callable[[], None]
  images: int = 0  # Images processed by one call (0: not an image throughput).
  flops: float = 0.0  # Dense-layer FLOPs of one call (0: not counted).
  warmup: bool = True  # Run once untimed before the timed repeats.
  seconds: list[float] = dataclasses.field(default_factory=list)
  cpu_seconds: list[float] = dataclasses.field(default_factory=list)  # This process's CPU time.

  def images_per_sec(self) -> list[float]:
    return [self.images / s for s in self.seconds]

  def gflops(self) -> list[float]:
    return [self.flops / s / 1e9 for s in self.seconds]


def time_round_robin(variants: list[Variant], repeats: int) -> None:
  """Times `repeats` calls of every variant, interleaved: for r in repeats, for v in variants."""
  for r in range(repeats):
    for variant in variants:
      start, cpu_start = time.perf_counter(), time.process_time()
      variant.run()
      variant.seconds.append(time.perf_counter() - start)
      variant.cpu_seconds.append(time.process_time() - cpu_start)
    print(f"  repeat {r + 1}/{repeats}: " + ", ".join(
        f"{v.key} {v.seconds[-1]:.3g}s" for v in variants), flush=True)


def median(values: list[float]) -> float:
  return float(statistics.median(values))


def paired_ratio(a: Variant, b: Variant) -> float:
  """Median over repeats of (a's throughput / b's) within the same repeat: drift cancels."""
  return median([(a.images / sa) / (b.images / sb) for sa, sb in zip(a.seconds, b.seconds)])


def paired_cpu_ratio(a: Variant, b: Variant) -> float:
  """The same ratio from CPU seconds (images per CPU-second of this process).

  On a loaded machine the wall time of a call mostly measures how much of the cores the scheduler
  granted (it moved 2-4x between repeats here at load 20+), while the CPU time measures the work the
  call did; the two ratios agree on an idle machine, up to how well each variant uses both cores.
  """
  return median([(a.images / sa) / (b.images / sb) for sa, sb in zip(a.cpu_seconds, b.cpu_seconds)])


# ------------------------------------------------------------------------------------------------
# Variants.


def matmul_model_shapes(settings: Settings) -> Variant:
  """The paper model's forward and backward matmuls on a batch of 100, chained in one jit."""
  shapes = dense_shapes(20, 500)
  latent = shapes[2][0]

  def normalize(a):
    return a * jax.lax.rsqrt(jnp.mean(jnp.square(a)) + 1e-12)

  def body(_, carry):
    x, w1, w2, w3, w4 = carry
    # Forward: x -> h -> (mean, log_var) -> z -> h2 -> logits.
    h = x @ w1
    e = h @ w2
    z = e[:, :latent]
    h2 = z @ w3
    out = h2 @ w4
    # Backward with `out` standing in for d loss / d logits: input and weight gradients.
    d_h2 = out @ w4.T
    d_w4 = h2.T @ out
    d_z = d_h2 @ w3.T
    d_w3 = z.T @ d_h2
    d_e = jnp.concatenate([d_z, d_z], axis=1)
    d_h = d_e @ w2.T
    d_w2 = h.T @ d_e
    d_w1 = x.T @ d_h  # No input gradient for the first layer.
    # Feed everything back so no matmul is loop-invariant or dead; the rescaling is < 1% of the work.
    return tuple(normalize(a) for a in (out, d_w1, d_w2, d_w3, d_w4))

  @jax.jit
  def chain(carry):
    return jax.lax.fori_loop(0, settings.matmul_iterations, body, carry)

  rng = np.random.default_rng(0)
  carry = tuple(jnp.asarray(rng.standard_normal(s, np.float32) / math.sqrt(s[0]))
                for s in [(BATCH_SIZE, DIM_X), *shapes])
  compiled = chain.lower(carry).compile()
  box = [carry]

  def run():
    box[0] = jax.block_until_ready(compiled(box[0]))

  flops_per_image, _ = train_flops_per_image(shapes)
  return Variant(
      "matmul_model", "matmul peak, model shapes (fwd+bwd, batch 100)", run,
      flops=settings.matmul_iterations * BATCH_SIZE * flops_per_image,
  )


def matmul_square(settings: Settings) -> Variant:
  """Large square float32 matmuls, chained in one jit."""
  n = settings.square_size

  def body(_, carry):
    a, b = carry
    c = a @ b
    return b, c * jax.lax.rsqrt(jnp.mean(jnp.square(c)) + 1e-12)

  @jax.jit
  def chain(carry):
    return jax.lax.fori_loop(0, settings.square_iterations, body, carry)

  rng = np.random.default_rng(1)
  carry = tuple(jnp.asarray(rng.standard_normal((n, n), np.float32) / math.sqrt(n)) for _ in "ab")
  compiled = chain.lower(carry).compile()
  box = [carry]

  def run():
    box[0] = jax.block_until_ready(compiled(box[0]))

  return Variant(
      "matmul_square", f"matmul, square {n}x{n} float32", run,
      flops=settings.square_iterations * 2.0 * n**3,
  )


def new_state(seed: int, model: vaex.VAE, optimizer: optax.GradientTransformation) -> Any:
  """A fresh `TrainState` of `model`, its parameters drawn on the host with numpy.

  Kernels are N(0, 1 / fan_in) (the scale of Flax's LeCun-normal default), biases 0, and the optimizer
  state is all zeros (Adam's initial state). Built on the host because compiling Flax's
  truncated-normal initializers costs seconds per model here, which `--quick` cannot afford; the
  values do not change the speed of anything timed.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, DIM_X), jnp.float32))
  rng = np.random.default_rng(seed)

  def draw(shape: jax.ShapeDtypeStruct) -> jax.Array:
    if len(shape.shape) < 2:
      return jnp.asarray(np.zeros(shape.shape, shape.dtype))
    scale = 1.0 / math.sqrt(shape.shape[0])
    return jnp.asarray((rng.standard_normal(shape.shape) * scale).astype(shape.dtype))

  params = jax.tree.map(draw, shapes)
  opt_state = jax.tree.map(lambda s: jnp.asarray(np.zeros(s.shape, s.dtype)),
                           jax.eval_shape(optimizer.init, params))
  return training.TrainState(params=params, opt_state=opt_state,
                             step=jnp.asarray(np.int32(0)), key=jax.random.key(seed))


def stack_on_host(trees: list[Any]) -> Any:
  """Stacks pytrees along a new leading axis, through numpy (no compiled concatenation)."""

  def stack(*leaves):
    if jax.dtypes.issubdtype(leaves[0].dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(np.stack([np.asarray(jax.random.key_data(k)) for k in leaves]))
    return jnp.asarray(np.stack([np.asarray(leaf) for leaf in leaves]))

  return jax.tree.map(stack, *trees)


def paper_model() -> vaex.VAE:
  return vaex.VAE(vaex.MLPEncoder(latent_dim=20, hidden_sizes=(500,)),
                  vaex.BernoulliMLPDecoder(hidden_sizes=(500,)))


@dataclasses.dataclass
class Setup:
  """What the variants share: the model, optimizer, objective and data."""

  model: vaex.VAE
  optimizer: optax.GradientTransformation
  loss_fn: Callable
  train_host: np.ndarray  # uint8 [n, 784]
  train_device: jax.Array  # uint8 [n, 784]
  test_host: np.ndarray  # uint8 [m, 784]
  steps: int
  flops_per_image: float

  @property
  def images_per_call(self) -> int:
    return self.steps * BATCH_SIZE


@dataclasses.dataclass
class EpochFunction:
  """Our epoch function, compiled ahead of time, with a trace counter in its loss."""

  train_steps: Callable
  compiled: Any
  state: training.TrainState
  metrics: Any = None
  traces: int = 0  # Times the loss was traced.
  timing: dict[str, float] = dataclasses.field(default_factory=dict)



def epoch_function(setup: Setup) -> tuple[Variant, EpochFunction]:
  """Our epoch function, compiled ahead of time (`.lower().compile()`), timed cold."""
  epoch: EpochFunction

  def counting_loss(params, key, x):
    epoch.traces += 1  # A Python side effect: runs once per trace, never per step.
    return setup.loss_fn(params, key, x)

  train_steps = training.make_train_steps(counting_loss, setup.optimizer, batch_size=BATCH_SIZE)
  state = new_state(0, setup.model, setup.optimizer)
  epoch = EpochFunction(train_steps, None, jax.block_until_ready(state))
  start = time.perf_counter()
  lowered = train_steps.lower(state, setup.train_device, setup.steps)
  lowered_at = time.perf_counter()
  epoch.compiled = lowered.compile()
  compiled_at = time.perf_counter()
  epoch.timing = {
      "compile_seconds": compiled_at - start,
      "lower_seconds": lowered_at - start,
      "xla_compile_seconds": compiled_at - lowered_at,
  }

  def run():
    epoch.state, epoch.metrics = jax.block_until_ready(
        epoch.compiled(epoch.state, setup.train_device))

  variant = Variant(
      "epoch", f"vaex epoch fn (make_train_steps, {setup.steps} steps/call)", run,
      images=setup.images_per_call, flops=setup.images_per_call * setup.flops_per_image,
  )
  return variant, epoch


def epoch_in_calls(setup: Setup, num_calls: int = 5) -> Variant:
  """The same epoch function run as `num_calls` calls of `steps / num_calls` steps each (what the
  experiment's `config.steps_per_call` does), one timed unit being all of them: the scan-length
  question. Every call draws the epoch's permutation again (a sort of all training indices)."""
  steps = setup.steps // num_calls
  train_steps = training.make_train_steps(setup.loss_fn, setup.optimizer, batch_size=BATCH_SIZE)
  state = new_state(0, setup.model, setup.optimizer)
  compiled = train_steps.lower(state, setup.train_device, steps).compile()
  box = {"state": state}

  def run():
    state = box["state"]
    for _ in range(num_calls):
      state, metrics = compiled(state, setup.train_device)
    box["state"], box["metrics"] = jax.block_until_ready((state, metrics))

  images = num_calls * steps * BATCH_SIZE
  return Variant(
      "epoch_calls", f"vaex epoch fn, {num_calls} calls of {steps} steps", run,
      images=images, flops=images * setup.flops_per_image,
  )


def fresh_compile(setup: Setup) -> Variant:
  """lower + compile of a newly built epoch function (no tracing or compilation cache applies)."""
  state = new_state(0, setup.model, setup.optimizer)

  def run():
    train_steps = training.make_train_steps(setup.loss_fn, setup.optimizer, batch_size=BATCH_SIZE)
    train_steps.lower(state, setup.train_device, setup.steps).compile()

  return Variant("compile", "compile a fresh epoch fn (lower + compile)", run, warmup=False)


def warm_cache_compile(setup: Setup, repeats: int) -> list[float]:
  """Seconds to lower + compile a freshly built epoch function when JAX's persistent compilation
  cache already holds it (a rerun, a resume, or evaluate after train, with the experiment scripts'
  default `--compilation_cache_dir`). Runs after all other timing: it turns the cache on for the
  rest of the process, in a new temporary directory that the first (untimed) compile fills.
  """
  jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="vaex_bench_jax_cache_"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  state = new_state(0, setup.model, setup.optimizer)
  seconds = []
  for _ in range(repeats + 1):
    train_steps = training.make_train_steps(setup.loss_fn, setup.optimizer, batch_size=BATCH_SIZE)
    start = time.perf_counter()
    train_steps.lower(state, setup.train_device, setup.steps).compile()
    seconds.append(time.perf_counter() - start)
  return seconds[1:]


def recompilation_check(setup: Setup, epoch: EpochFunction, num_calls: int = 3) -> dict[str, Any]:
  """Calls the epoch function through `jax.jit` (not the AOT executable) `num_calls` times, crossing
  epoch boundaries, and counts traces of the loss and XLA compilations during those calls.

  jit reuses the executable that `.lower().compile()` built, so the expected counts are 1 trace in
  all (the AOT lowering) and 0 compilations.
  """
  compiles = [0]
  counting = [False]

  def on_event(event: str, duration: float, **kwargs) -> None:
    if counting[0] and event.endswith("backend_compile_duration"):
      compiles[0] += 1

  jax.monitoring.register_event_duration_secs_listener(on_event)
  traces_before = epoch.traces
  counting[0] = True
  state = epoch.state
  for _ in range(num_calls):
    state, _ = jax.block_until_ready(epoch.train_steps(state, setup.train_device, setup.steps))
  counting[0] = False
  epoch.state = state
  steps_per_epoch = setup.train_device.shape[0] // BATCH_SIZE
  return {
      "recompiled_across_epochs": bool(epoch.traces != traces_before or compiles[0]),
      "loss_traces": epoch.traces,
      "loss_traces_during_calls": epoch.traces - traces_before,
      "xla_compiles_during_calls": compiles[0],
      "epochs_crossed": num_calls * setup.steps // steps_per_epoch,
  }


def per_step_path(setup: Setup) -> tuple[Variant, Callable[[], Any]]:
  """`make_train_step` fed minibatches gathered from device-resident uint8 data."""
  step = training.make_train_step(setup.loss_fn, setup.optimizer)
  gather = jax.jit(lambda data, order, i: jnp.take(
      data, jax.lax.dynamic_slice_in_dim(order, i * BATCH_SIZE, BATCH_SIZE), axis=0))
  permutation = jax.jit(training.epoch_permutation, static_argnums=2)
  state = new_state(0, setup.model, setup.optimizer)
  num_examples = setup.train_device.shape[0]
  steps_per_epoch = num_examples // BATCH_SIZE
  box = {"state": state, "t": 0}  # t: a host-side step counter (reading state.step would block).

  def run():
    state, t = box["state"], box["t"]
    for _ in range(setup.steps):
      if t % steps_per_epoch == 0 or "order" not in box:
        box["order"] = permutation(state.key, t // steps_per_epoch, num_examples)
      state, metrics = step(state, gather(setup.train_device, box["order"], t % steps_per_epoch))
      t += 1
    box["state"], box["metrics"], box["t"] = *jax.block_until_ready((state, metrics)), t

  variant = Variant(
      "per_step", "vaex per-step path (make_train_step, device batches)", run,
      images=setup.images_per_call, flops=setup.images_per_call * setup.flops_per_image,
  )
  return variant, lambda: box


def naive_reference(setup: Setup) -> tuple[Variant, Callable[[], Any]]:
  """A plain jitted step, no donation, float32 batches cut on the host with numpy every step."""
  model, optimizer = setup.model, setup.optimizer
  x_float = setup.train_host.astype(np.float32)
  state = new_state(0, model, optimizer)
  box = {"params": state.params, "opt_state": state.opt_state, "key": jax.random.key(1)}
  rng = np.random.default_rng(0)

  @jax.jit
  def naive_step(params, opt_state, x, key):
    loss, grads = jax.value_and_grad(lambda p: vaex.loss(p, key, x, model))(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  def run():
    params, opt_state, key = box["params"], box["opt_state"], box["key"]
    order = rng.permutation(x_float.shape[0])
    for i in range(setup.steps):
      batch = x_float[order[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]]
      key, step_key = jax.random.split(key)
      params, opt_state, loss = naive_step(params, opt_state, batch, step_key)
    box.update(jax.block_until_ready(
        {"params": params, "opt_state": opt_state, "key": key, "loss": loss}))

  variant = Variant(
      "naive", "naive: jit step, no donation, host float32 batches", run,
      images=setup.images_per_call, flops=setup.images_per_call * setup.flops_per_image,
  )
  return variant, lambda: box


def flax_example(setup: Setup) -> tuple[Variant, Callable[[], Any]]:
  """The Flax linen VAE example's jitted `train_step(state, batch, z_rng)`, with the paper's model."""
  model = setup.model
  params = new_state(0, model, setup.optimizer).params
  state = jax.jit(lambda params: flax_train_state.TrainState.create(
      apply_fn=model.apply, params=params, tx=optax.adam(1e-3)))(params)
  rng = np.random.default_rng(0)
  x_float = setup.train_host.astype(np.float32)

  # The example's loss terms, as it writes them.
  @jax.vmap
  def binary_cross_entropy_with_logits(logits, labels):
    logits = flax.linen.log_sigmoid(logits)
    return -jnp.sum(labels * logits + (1.0 - labels) * jnp.log(-jnp.expm1(logits)))

  @jax.vmap
  def kl_divergence(mean, logvar):
    return -0.5 * jnp.sum(1 + logvar - jnp.square(mean) - jnp.exp(logvar))

  @jax.jit
  def train_step(state, batch, z_rng):
    def loss_fn(params):
      mean, logvar = model.apply(params, batch, method=vaex.VAE.encode)
      z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(z_rng, logvar.shape)
      recon_x = model.apply(params, z, method=vaex.VAE.decode)
      bce_loss = binary_cross_entropy_with_logits(recon_x, batch).mean()
      kld_loss = kl_divergence(mean, logvar).mean()
      return bce_loss + kld_loss

    grads = jax.grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads)

  box = {"state": state, "rng": jax.random.key(1)}

  def run():
    state, key = box["state"], box["rng"]
    order = rng.permutation(x_float.shape[0])
    for i in range(setup.steps):
      batch = x_float[order[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]]
      key, z_key = jax.random.split(key)
      state = train_step(state, batch, z_key)
    box["state"], box["rng"] = jax.block_until_ready((state, key))

  variant = Variant(
      "flax_example", "Flax linen example step (TrainState, host batches)", run,
      images=setup.images_per_call, flops=setup.images_per_call * setup.flops_per_image,
  )
  return variant, lambda: box


def numpyro_svi(setup: Setup) -> list[Variant]:
  """NumPyro SVI on the same model and data, two ways, or [] (with a note) without numpyro.

  The model and guide wrap vaex's own Flax modules (`flax_module`), so the networks are identical:
  p(z) = N(0, I), p(x|z) = Bernoulli(logits = decoder(z)), q(z|x) = N(mean, exp(log_var / 2)) from the
  encoder's split head; `TraceMeanField_ELBO` takes the KL in closed form (vaex's estimator B, L = 1);
  `numpyro.handlers.scale(1 / batch)` makes the loss the batch mean, as vaex's; the optimizer is
  `numpyro.optim.Adam(1e-3)`.

  * `numpyro_step`: `jax.jit(svi.update)` called once per step from Python on float32 batches cut on
    the host with numpy (as NumPyro's examples feed numpy arrays).
  * `numpyro_scan`: the whole call's steps in one jitted `lax.scan` over `svi.update`, the uint8 data
    on the device, the epoch's permutation drawn on the device, each minibatch gathered and cast to
    float32 inside the scan, the SVI state donated and the per-step losses returned: the same work
    as vaex's epoch function.
  """
  try:
    import numpyro  # Optional: the `benchmarks` extra.
    from numpyro import distributions as dist
    from numpyro.contrib.module import flax_module
    from numpyro.infer import SVI, TraceMeanField_ELBO
  except ImportError as e:
    print(f"NOTE: numpyro is not importable ({e}); skipping the NumPyro SVI rows "
          "(pip install -e '.[benchmarks]').")
    return []
  encoder, decoder = setup.model.encoder, setup.model.decoder
  latent = encoder.latent_dim

  def model(x):
    decode = flax_module("decoder", decoder, input_shape=(1, latent))
    with numpyro.plate("batch", x.shape[0]), numpyro.handlers.scale(scale=1.0 / x.shape[0]):
      z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent]).to_event(1))
      numpyro.sample("x", dist.Bernoulli(logits=decode(z)).to_event(1), obs=x)

  def guide(x):
    encode = flax_module("encoder", encoder, input_shape=(1, DIM_X))
    mean, log_var = encode(x)
    with numpyro.plate("batch", x.shape[0]), numpyro.handlers.scale(scale=1.0 / x.shape[0]):
      numpyro.sample("z", dist.Normal(mean, jnp.exp(0.5 * log_var)).to_event(1))

  svi = SVI(model, guide, numpyro.optim.Adam(1e-3), TraceMeanField_ELBO())
  # The parameters drawn on the host as for every other variant (`new_state`), so that svi.init
  # does not compile Flax's initializers.
  params = new_state(0, setup.model, setup.optimizer).params["params"]
  init_state = svi.init(jax.random.PRNGKey(0), jnp.zeros((BATCH_SIZE, DIM_X), jnp.float32),
                        init_params={"encoder$params": params["encoder"],
                                     "decoder$params": params["decoder"]})
  num_examples = setup.train_device.shape[0]
  x_float = setup.train_host.astype(np.float32)
  rng = np.random.default_rng(0)
  update = jax.jit(svi.update)
  step_box = {"state": init_state}

  def run_step():
    state = step_box["state"]
    order = rng.permutation(num_examples)
    for i in range(setup.steps):
      state, loss = update(state, x_float[order[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]])
    step_box["state"], step_box["loss"] = jax.block_until_ready((state, loss))

  @functools.partial(jax.jit, donate_argnums=0)
  def scan_steps(state, data, epoch):
    order = jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(1), epoch), num_examples)

    def body(state, i):
      batch = jnp.take(data, jax.lax.dynamic_slice_in_dim(order, i * BATCH_SIZE, BATCH_SIZE), axis=0)
      return svi.update(state, batch.astype(jnp.float32))

    return jax.lax.scan(body, state, jnp.arange(setup.steps))

  scan_state = jax.tree.map(jnp.copy, init_state)
  compiled = scan_steps.lower(scan_state, setup.train_device, 0).compile()
  scan_box = {"state": scan_state, "epoch": 0}

  def run_scan():
    scan_box["state"], scan_box["losses"] = jax.block_until_ready(
        compiled(scan_box["state"], setup.train_device, scan_box["epoch"]))
    scan_box["epoch"] += 1

  images, flops = setup.images_per_call, setup.images_per_call * setup.flops_per_image
  print(f"  numpyro {numpyro.__version__}")
  return [
      Variant("numpyro_step", "NumPyro SVI, jit(svi.update) per step, host batches", run_step,
              images, flops),
      Variant("numpyro_scan", "NumPyro SVI, svi.update in lax.scan, device data", run_scan, images,
              flops),
  ]


def iwae_batch_size(num_images: int, num_samples: int) -> int:
  """Images per compiled IWAE batch: about 5,000 decoder rows (k x batch), dividing `num_images`.

  Measured here: batches of 1-5 images at k = 5000 run about 1.4x faster than 25-40 (the
  `[k * batch, 784]` logits no longer fit in cache), so the default keeps the rows near 5,000.
  """
  target = max(1, 5_000 // num_samples)
  return max(b for b in range(1, min(target, num_images) + 1) if num_images % b == 0)


def iwae_evaluator(setup: Setup, settings: Settings, params: Any) -> tuple[Variant, Callable]:
  """`make_dataset_bound(estimator="iwae")` on the first `iwae_images` test images."""
  k, n = settings.iwae_samples, settings.iwae_images
  batch = settings.iwae_batch or iwae_batch_size(n, k)
  dataset_bound = evaluation.make_dataset_bound(
      setup.model, estimator="iwae", num_samples=k, batch_size=batch)
  data = jax.device_put(setup.test_host[:n])
  key = jax.random.key(3)
  compiled = dataset_bound.lower(params, key, data).compile()
  box = [None]

  def run():
    box[0] = jax.block_until_ready(compiled(params, key, data))

  shapes = dense_shapes(20, 500)
  variant = Variant(
      "iwae", f"IWAE-{k} evaluator ({n} test images, batch {batch})", run,
      images=n, flops=n * iwae_flops_per_image(shapes, k),
  )
  return variant, lambda: box[0]


def vmap_over_seeds(
    setup: Setup, settings: Settings, epoch: EpochFunction
) -> tuple[Variant, Variant]:
  """`NUM_MODELS` small models trained together with `jax.vmap`, and the same one after another.

  With the paper's sizes, the one-after-another run reuses the epoch function's executable.
  """
  hidden, latent = settings.small_hidden, settings.small_latent
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=latent, hidden_sizes=(hidden,)),
                   vaex.BernoulliMLPDecoder(hidden_sizes=(hidden,)))
  reuse = model == setup.model
  if reuse:
    train_steps = epoch.train_steps
  else:
    loss_fn = training.make_loss_fn(model)
    train_steps = training.make_train_steps(loss_fn, setup.optimizer, batch_size=BATCH_SIZE)
  data = setup.train_device

  together = jax.jit(
      jax.vmap(lambda state, data: train_steps(state, data, setup.steps), in_axes=(0, None)),
      donate_argnums=0,
  )
  states = stack_on_host([new_state(10 + j, model, setup.optimizer) for j in range(NUM_MODELS)])
  together = together.lower(states, data).compile()
  separate_states = [new_state(10 + j, model, setup.optimizer) for j in range(NUM_MODELS)]
  one = epoch.compiled if reuse else train_steps.lower(separate_states[0], data, setup.steps).compile()
  box = {"together": states, "separate": separate_states}

  def run_together():
    box["together"], _ = jax.block_until_ready(together(box["together"], data))

  def run_separate():
    for j in range(NUM_MODELS):
      box["separate"][j], _ = jax.block_until_ready(one(box["separate"][j], data))

  flops, _ = train_flops_per_image(dense_shapes(latent, hidden))
  images = NUM_MODELS * setup.images_per_call
  name = f"{NUM_MODELS} models {DIM_X}-{hidden}-2x{latent}"
  return (
      Variant("vmap_seeds", f"{name}, vmapped over seeds", run_together, images, images * flops),
      Variant("sequential_seeds", f"{name}, one after another", run_separate, images,
              images * flops),
  )


def num_seeds_program(setup: Setup, epoch: EpochFunction) -> tuple[Variant, Variant]:
  """`config.num_seeds` = `NUM_SEEDS` on the paper's model, as the training loop runs it (the epoch
  function vmapped by `seeds.vmap_train_steps`, one scalar step), against the same replicas one after
  another with the epoch function's own executable."""
  from vaex._src import seeds

  data = setup.train_device
  states = [new_state(20 + s, setup.model, setup.optimizer) for s in range(NUM_SEEDS)]
  together = seeds.vmap_train_steps(epoch.train_steps)
  stacked = stack_on_host(states).replace(step=jnp.asarray(np.int32(0)))  # One step for all.
  compiled = together.lower(stacked, data, setup.steps).compile()
  box = {"together": stacked, "separate": states}

  def run_together():
    box["together"], _ = jax.block_until_ready(compiled(box["together"], data))

  def run_separate():
    for s in range(NUM_SEEDS):
      box["separate"][s], _ = jax.block_until_ready(epoch.compiled(box["separate"][s], data))

  images = NUM_SEEDS * setup.images_per_call
  flops = images * setup.flops_per_image
  name = f"config.num_seeds={NUM_SEEDS}, the paper's model"
  return (Variant("num_seeds", f"{name}, one program", run_together, images, flops),
          Variant("num_seeds_sequential", f"{name}, one after another", run_separate, images, flops))


def torch_loop(setup: Setup) -> Variant | None:
  """A plain PyTorch training loop of the same model, or None (with a note) without torch."""
  try:
    import torch  # Optional: only for --torch.
  except ImportError as e:
    print(f"NOTE: --torch given but torch is not importable ({e}); skipping the PyTorch loop.")
    return None
  torch.manual_seed(0)
  nn = torch.nn

  class TorchVAE(nn.Module):
    def __init__(self):
      super().__init__()
      self.enc_hidden, self.enc_head = nn.Linear(DIM_X, 500), nn.Linear(500, 40)
      self.dec_hidden, self.dec_out = nn.Linear(20, 500), nn.Linear(500, DIM_X)

    def forward(self, x):
      mean, log_var = self.enc_head(torch.tanh(self.enc_hidden(x))).chunk(2, dim=-1)
      z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
      logits = self.dec_out(torch.tanh(self.dec_hidden(z)))
      reconstruction = nn.functional.binary_cross_entropy_with_logits(
          logits, x, reduction="none").sum(-1)
      kl = 0.5 * (torch.exp(log_var) + mean**2 - 1.0 - log_var).sum(-1)
      return (reconstruction + kl).mean()

  model = TorchVAE()
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  data = torch.from_numpy(setup.train_host.astype(np.float32))
  box = {}

  def run():
    order = torch.randperm(data.shape[0])
    for i in range(setup.steps):
      batch = data[order[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]]
      optimizer.zero_grad(set_to_none=True)
      loss = model(batch)
      loss.backward()
      optimizer.step()
    box["loss"] = float(loss.detach())

  print(f"  torch {torch.__version__}, {torch.get_num_threads()} threads")
  return Variant(
      "torch", f"PyTorch {torch.__version__} loop (host batches)", run,
      images=setup.images_per_call, flops=setup.images_per_call * setup.flops_per_image,
  )


# ------------------------------------------------------------------------------------------------
# Reporting.


def machine_info() -> dict[str, Any]:
  cpu_model = ""
  try:
    with open("/proc/cpuinfo") as f:
      cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                       "")
  except OSError:
    pass
  return {
      "processor": platform.processor() or cpu_model,
      "cpu_model": cpu_model,
      "uname": " ".join(platform.uname()),
      "cpu_count": os.cpu_count(),
      "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "python": platform.python_version(),
      "jax": jax.__version__,
      "jaxlib": jaxlib.__version__,
      "flax": flax.__version__,
      "optax": optax.__version__,
      "numpyro": _version("numpyro"),
      "devices": [str(d) for d in jax.devices()],
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "load_average_start": list(os.getloadavg()),
  }


def _version(distribution: str) -> str | None:
  try:
    return importlib.metadata.version(distribution)
  except importlib.metadata.PackageNotFoundError:
    return None


def _range(values: list[float], fmt: str) -> str:
  return " / ".join(format(v, fmt) for v in (min(values), median(values), max(values)))


def print_table(variants: list[Variant], peak: float) -> None:
  header = (f"{'variant':<58} {'s/call':>7} {'CPU s':>6}  {'images/s min / median / max':>30}  "
            f"{'GFLOP/s min / median / max':>26}  {'% peak':>6}")
  print(header)
  print("-" * len(header))
  for v in variants:
    images = _range(v.images_per_sec(), ",.0f") if v.images else "-"
    gflops = _range(v.gflops(), ".1f") if v.flops else "-"
    percent = f"{100 * median(v.gflops()) / peak:.0f}%" if v.flops else "-"
    print(f"{v.label:<58} {median(v.seconds):>7.3f} {median(v.cpu_seconds):>6.2f}  {images:>30}  "
          f"{gflops:>26}  {percent:>6}")


def default_data_dir() -> str:
  return os.environ.get("VAEX_DATA_DIR") or str(ROOT.parent / "shared" / "data")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--json", help="write the results to this JSON file")
  parser.add_argument("--repeats", type=int, default=0, help="timed calls per variant (default 5; "
                      "2 with --quick)")
  parser.add_argument("--quick", action="store_true", help="a tiny run for tests")
  parser.add_argument("--torch", action="store_true", help="add a PyTorch loop if torch is importable")
  parser.add_argument("--data_dir", default=default_data_dir(),
                      help="directory with binarized_mnist_{train,test}.amat[.gz] (default: "
                      "$VAEX_DATA_DIR, else ../shared/data from the repository root)")
  parser.add_argument("--iwae_images", type=int, default=500, help="test images for the IWAE bound")
  parser.add_argument("--iwae_k", type=int, default=5000, help="importance samples k")
  parser.add_argument("--iwae_batch", type=int, default=0,
                      help="test images per compiled IWAE batch (0: about 5,000 decoder rows; "
                      "vaex.experiment's evaluate uses 40 at k = 5000)")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  settings = make_settings(args)
  machine = machine_info()
  print(f"Machine: {machine['cpu_model'] or machine['processor']}; {machine['uname']}")
  print(f"  {machine['cpu_count']} CPUs ({machine['cpus_usable']} usable), load average "
        f"{machine['load_average_start']}; python {machine['python']}, jax {machine['jax']}, "
        f"flax {machine['flax']}, optax {machine['optax']}; devices {machine['devices']}")
  if len(jax.devices()) > 1:
    print(f"  NOTE: {len(jax.devices())} devices (XLA_FLAGS={machine['xla_flags']!r}); everything "
          "here runs on the first one.")

  train = vaex.data.load_binarized_mnist("train", args.data_dir)
  test = vaex.data.load_binarized_mnist("test", args.data_dir)
  if settings.num_train:
    train = train[: settings.num_train]
  shapes = dense_shapes(20, 500)
  flops_per_image, formula = train_flops_per_image(shapes)
  assert abs(flops_per_image - 4.10e6) < 5e3, flops_per_image
  print(f"FLOPs per training image: {formula}")
  optimizer = training.make_optimizer("adam", 1e-3)
  model = paper_model()
  setup = Setup(
      model=model, optimizer=optimizer,
      loss_fn=training.make_loss_fn(model, estimator="B", num_samples=1),
      train_host=train, train_device=jax.device_put(train), test_host=test,
      steps=settings.steps_per_call, flops_per_image=flops_per_image,
  )
  print(f"Data: {train.shape[0]} training images (uint8 on the device), {settings.steps_per_call} "
        f"steps of {BATCH_SIZE} per timed call; {settings.repeats} interleaved repeats.")

  # The epoch function first, so that its compile time is measured cold (as a user's first run).
  print("Compiling and warming up ...", flush=True)
  epoch, epoch_fn = epoch_function(setup)
  recompilation = recompilation_check(setup, epoch_fn)  # Also the epoch function's warm-up.
  trained_params = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)), epoch_fn.state.params)
  variants = [matmul_model_shapes(settings), matmul_square(settings), epoch]
  per_step, per_step_box = per_step_path(setup)
  naive, naive_box = naive_reference(setup)
  flax_ex, flax_box = flax_example(setup)
  iwae, iwae_box = iwae_evaluator(setup, settings, trained_params)
  vmapped, sequential = vmap_over_seeds(setup, settings, epoch_fn)
  epoch_calls = epoch_in_calls(setup)
  numpyro_variants = numpyro_svi(setup)
  variants += [epoch_calls, per_step, naive, flax_ex, *numpyro_variants, iwae, vmapped, sequential]
  if not args.quick:  # Compiling costs seconds; --quick has the cold compile only.
    variants.append(fresh_compile(setup))
  if not args.quick:  # config.num_seeds: four epochs per call and variant, a full run only.
    variants += num_seeds_program(setup, epoch_fn)
  torch_variant = torch_loop(setup) if args.torch else None
  if torch_variant is not None:
    variants.append(torch_variant)
  for variant in variants:  # Warm-up: first calls (and allocations) are not timed.
    if variant.warmup:
      variant.run()
  print("Timing ...", flush=True)
  time_round_robin(variants, settings.repeats)

  warm_compile = warm_cache_compile(setup, settings.repeats)
  by_key = {v.key: v for v in variants}
  peak = median(by_key["matmul_model"].gflops())
  square = median(by_key["matmul_square"].gflops())
  print()
  print_table(variants, peak)
  print(f"% of peak divides by the model-shape matmul peak, {peak:.1f} GFLOP/s (the square "
        f"{settings.square_size}^2 matmul reaches {square:.1f}).")

  iwae_values = np.asarray(iwae_box())
  last_bound = float(np.asarray(epoch_fn.metrics["bound"])[-1])
  results: dict[str, Any] = {
      "train_images_per_sec": median(epoch.images_per_sec()),
      "train_gflops": median(epoch.gflops()),
      "matmul_peak_gflops": peak,
      "matmul_square_gflops": square,
      "train_fraction_of_peak": median(epoch.gflops()) / peak,
      "train_flops_per_image": flops_per_image,
      "train_flops_formula": formula,
      "compile_seconds": epoch_fn.timing["compile_seconds"],
      "compile_lower_seconds": epoch_fn.timing["lower_seconds"],
      "compile_xla_seconds": epoch_fn.timing["xla_compile_seconds"],
      "compile_seconds_fresh_median": (
          median(by_key["compile"].seconds) if "compile" in by_key else None),
      "compile_seconds_warm_cache_median": median(warm_compile),
      "compile_seconds_warm_cache": warm_compile,
      "iwae_eval_images_per_sec": median(iwae.images_per_sec()),
      "iwae_eval_gflops": median(iwae.gflops()),
      "iwae_eval_fraction_of_peak": median(iwae.gflops()) / peak,
      "iwae_num_samples": settings.iwae_samples,
      "iwae_num_images": settings.iwae_images,
      "iwae_batch_size": settings.iwae_batch or iwae_batch_size(settings.iwae_images,
                                                                 settings.iwae_samples),
      "iwae_mean_bound": float(iwae_values.mean()),
      "per_step_images_per_sec": median(per_step.images_per_sec()),
      "per_step_fraction_of_peak": median(per_step.gflops()) / peak,
      "naive_images_per_sec": median(naive.images_per_sec()),
      "naive_fraction_of_peak": median(naive.gflops()) / peak,
      "flax_example_images_per_sec": median(flax_ex.images_per_sec()),
      "flax_example_fraction_of_peak": median(flax_ex.gflops()) / peak,
      "ratio_vs_per_step": paired_ratio(epoch, per_step),
      "ratio_vs_naive": paired_ratio(epoch, naive),
      "ratio_vs_flax_example": paired_ratio(epoch, flax_ex),
      "vmap_seeds_images_per_sec": median(vmapped.images_per_sec()),
      "sequential_seeds_images_per_sec": median(sequential.images_per_sec()),
      "vmap_seeds_ratio": paired_ratio(vmapped, sequential),
      "vmap_seeds_models": NUM_MODELS,
      **({"num_seeds_ratio": paired_ratio(by_key["num_seeds"], by_key["num_seeds_sequential"]),
          "num_seeds": NUM_SEEDS} if "num_seeds" in by_key else {}),
      "train_bound_last_step": last_bound,
      **recompilation,
  }
  if torch_variant is not None:
    results["torch_images_per_sec"] = median(torch_variant.images_per_sec())
    results["torch_fraction_of_peak"] = median(torch_variant.gflops()) / peak
    results["ratio_vs_torch"] = paired_ratio(epoch, torch_variant)
  for peer in [epoch_calls, *numpyro_variants]:
    results[f"{peer.key}_images_per_sec"] = median(peer.images_per_sec())
    results[f"ratio_vs_{peer.key}"] = paired_ratio(epoch, peer)
  peers = [by_key[k] for k in ("epoch_calls", "per_step", "naive", "flax_example", "numpyro_step",
                                "numpyro_scan", "torch") if k in by_key]
  for peer in peers:  # The same ratios from CPU time (robust on a loaded machine).
    results[f"cpu_ratio_vs_{peer.key}"] = paired_cpu_ratio(epoch, peer)
  if not numpyro_variants:
    results["numpyro_skipped"] = "numpyro is not importable"
  machine["load_average_end"] = list(os.getloadavg())
  results["machine"] = machine
  results["settings"] = dataclasses.asdict(settings)
  results["variants"] = {
      v.key: {"label": v.label, "seconds": v.seconds, "cpu_seconds": v.cpu_seconds,
              "images_per_call": v.images, "flops_per_call": v.flops}
      for v in variants
  }

  print()
  fresh = results["compile_seconds_fresh_median"]
  print(f"compile (cold, the first epoch fn in the process): {results['compile_seconds']:.2f} s (trace "
        f"+ lower {results['compile_lower_seconds']:.2f} s, XLA {results['compile_xla_seconds']:.2f} s)"
        + (f"; a freshly built one, median: {fresh:.2f} s" if fresh is not None else ""))
  print(f"compile with JAX's persistent compilation cache warm (a rerun or resume): "
        f"{results['compile_seconds_warm_cache_median']:.2f} s median of {len(warm_compile)}")
  print(f"recompiled_across_epochs: {str(results['recompiled_across_epochs']).lower()} (over "
        f"{recompilation['epochs_crossed']} epochs through jax.jit: the loss was traced "
        f"{results['loss_traces_during_calls']} more times, {results['xla_compiles_during_calls']} "
        f"XLA compilations; {results['loss_traces']} trace in all)")
  print("epoch fn vs: " + ", ".join(f"{p.key} {results['ratio_vs_' + p.key]:.2f}x" for p in peers)
        + " (median of per-repeat ratios of images/s)")
  print("  the same from CPU time: " + ", ".join(
      f"{p.key} {results['cpu_ratio_vs_' + p.key]:.2f}x" for p in peers)
        + " (images per CPU-second of this process; robust to other load)")
  print(f"vmap over {NUM_MODELS} seeds vs one after another: {results['vmap_seeds_ratio']:.2f}x "
        "total images/s")
  if "num_seeds_ratio" in results:
    print(f"config.num_seeds={NUM_SEEDS} (paper's model, one program) vs one after another: "
          f"{results['num_seeds_ratio']:.2f}x total images/s")
  print(f"train bound at the last timed step: {last_bound:.2f} nats; IWAE-{settings.iwae_samples} "
        f"mean on {settings.iwae_images} test images after the warm-up epoch: "
        f"{results['iwae_mean_bound']:.2f}")
  print(f"load average at the end: {machine['load_average_end']}")
  if args.json:
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
  return results


if __name__ == "__main__":
  main()
