r"""Kingma & Welling (2013) Figure 3: AEVB vs wake-sleep vs Monte Carlo EM, marginal likelihood.

  python experiments/figure3.py --workdir=/work/runs/figure3 --data_dir=../shared/data \
      [--max_samples=300000] [--full] [--replot]

The paper's setting: statically binarized MNIST, Nz = 3, one tanh hidden layer of 100 units in
each network, Bernoulli decoder, N(0, 0.01) initialization, Adagrad (step 0.02 here) with an N(0, I)
weight-decay prior, minibatches of 100, and training sets of Ntrain = 1,000 and 50,000 examples (two
panels). AEVB and wake-sleep train the same `vaex.VAE` (`vaex.experiment.build_model`) with the
library's compiled epoch path (`training.make_train_steps`); MCEM trains the same decoder with
`vaex.make_mcem_step` (HMC with 10 leapfrog steps, per-datapoint step sizes tuned toward 90%
acceptance and persistent chains, then 5 Adagrad steps per minibatch).

At log-spaced numbers of training samples seen (2 per decade, multiples of 1,000), the marginal
likelihood log p(x) of the generative model is estimated with the paper's Appendix-D HMC estimator
(`vaex.hmc_log_likelihood`) on a fixed subset: `--eval_points` training examples (drawn once from the
first 1,000, so both panels use the same ones) and `--eval_points` test examples (drawn once from the
10,000). Every point is a line of <workdir>/figure3.jsonl; figure3.png is drawn from that file
(`--replot` redraws it without training). A run whose points are all in the file is skipped, so an
interrupted command can be re-run (unfinished runs restart from scratch).

Budgets: the default is 3 x 10^5 samples seen per run (0.3% of the paper's 10^8), 100 + 100
evaluation points, HMC estimator with 100 warmup + 100 + 100 samples per point. It took 699 s on 2
CPU cores shared with a long training run (MCEM ~40 ms per minibatch, AEVB ~5 ms, one evaluation
~7-12 s). `--full` is the paper's x-axis (10^8 samples per run: ~11 h per MCEM run at that
speed) with 500 warmup + 1,000 + 1,000 samples in the estimator.

Measured with the default budget (test / train log p(x), nats, at 3 x 10^5 samples; the standard
error over the 100 points is about 4 nats, shared across methods since the points are the same):
  Ntrain = 1,000:  AEVB -182.2 / -172.0, wake-sleep -190.5 / -180.1, MCEM -157.1 / -139.8
  Ntrain = 50,000: AEVB -179.0 / -171.5, wake-sleep -203.0 / -196.7, MCEM -176.0 / -168.0
At this budget AEVB is ahead of wake-sleep in both panels, but MCEM (5 parameter updates per
minibatch) is ahead of AEVB. The paper's comparison (AEVB best) is at 10^6-10^8 samples, which this
budget does not reach; with Ntrain = 50,000 each MCEM chain has moved only 6 times here (acceptance
0.99, step sizes still near their start of 0.1), with 1,000 its step sizes have adapted (acceptance
0.90).
"""

import functools
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from _entry import run
from absl import flags

import vaex
from vaex import experiment
from vaex._src import training, wake_sleep
from vaex._src.builders import build_optimizer

flags.DEFINE_string("workdir", None, "Directory for figure3.jsonl and figure3.png.", required=True)
flags.DEFINE_string("data_dir", None, "Directory with binarized_mnist_*.amat[.gz].")
flags.DEFINE_float("max_samples", 3e5, "Training samples seen per run (CPU budget).")
flags.DEFINE_bool("full", False, "The paper's budget: 10^8 samples per run, larger HMC estimator.")
flags.DEFINE_list("train_sizes", ["1000", "50000"], "Values of Ntrain (one panel each).")
flags.DEFINE_list("methods", ["aevb", "wake_sleep", "mcem"], "Methods to train.")
flags.DEFINE_integer("eval_points", 100, "Train and test examples the marginal likelihood is averaged "
                     "over (each).")
flags.DEFINE_integer("hmc_samples", 100, "HMC samples per set in the marginal-likelihood estimator.")
flags.DEFINE_integer("hmc_warmup", 100, "HMC warmup transitions in the marginal-likelihood estimator.")
flags.DEFINE_integer("evals_per_decade", 2, "Evaluation points per decade of samples seen.")
flags.DEFINE_integer("seed", 0, "Seed of the parameters, chains, data order and evaluation subset.")
flags.DEFINE_bool("replot", False, "Only redraw figure3.png from figure3.jsonl.")
FLAGS = flags.FLAGS

METHODS = ("aevb", "wake_sleep", "mcem")
LATENT_DIM, HIDDEN, BATCH = 3, 100, 100
CHUNK_STEPS = 10  # Steps per compiled call: divides the steps per epoch of both training sets.
_MCEM_STREAM, _EVAL_STREAM = 7, 99


def model_config(num_train: int, algorithm: str = "aevb"):
  """The shared configuration of all three methods (MCEM reads the model and optimizer from it)."""
  config = experiment.default_config()
  config.latent_dim = LATENT_DIM
  config.hidden_sizes = (HIDDEN,)
  config.activation = "tanh"
  config.paper_init = True
  config.optimizer = "adagrad"
  config.learning_rate = 0.02
  config.adagrad_initial_accumulator = 0.1
  config.prior_precision = 1.0
  config.batch_size = BATCH
  config.num_train_examples = num_train
  config.algorithm = "wake_sleep" if algorithm == "wake_sleep" else "aevb"
  config.data_dir = FLAGS.data_dir
  experiment.validate_config(config)
  return config


def eval_schedule(max_samples: float, per_decade: int) -> list[int]:
  """Log-spaced sample counts from 1,000 to `max_samples`, rounded to whole compiled calls."""
  unit = CHUNK_STEPS * BATCH
  decades = math.log10(max_samples / unit)
  points = {unit * max(1, round(10 ** (i / per_decade)))
            for i in range(int(math.floor(decades * per_decade)) + 1)}
  points.add(int(max_samples) // unit * unit)
  return sorted(points)


def decoder_params(params):
  """The decoder's parameters alone: the form every method is evaluated in (one compilation)."""
  return {"params": {"decoder": params["params"]["decoder"]}}


def make_evaluator(model, num_samples: int, num_warmup: int):
  """`evaluate(params, key, x) -> [batch]` HMC log-likelihood estimates, compiled once.

  The decoder goes to `vaex.hmc_log_likelihood` as `jax.tree_util.Partial(apply_decode, params)`
  with one `apply_decode` object, so the parameters are traced arguments and every evaluation along
  training reuses one compiled program (a fresh closure per evaluation would compile again, about
  20 s each on a busy CPU). The public function checks that every estimate is finite.
  """
  apply_decode = functools.partial(model.apply, method=vaex.VAE.decode)

  def evaluate(params, key, x):
    decode = jax.tree_util.Partial(apply_decode, params)
    return np.asarray(vaex.hmc_log_likelihood(
        key, x, decode, latent_dim=LATENT_DIM, log_likelihood=model.log_likelihood,
        num_samples=num_samples, num_warmup=num_warmup))

  return evaluate


def train_aevb_or_wake_sleep(method, num_train, data, schedule, evaluate_point):
  """Trains with the library's compiled epoch path; calls `evaluate_point(step, params, seconds)`."""
  config = model_config(num_train, method)
  steps_per_epoch = num_train // BATCH
  model = experiment.build_model(config)
  optimizer = build_optimizer(config, steps_per_epoch)
  if method == "wake_sleep":
    loss_fn = wake_sleep.make_wake_sleep_loss(model, prior_precision=config.prior_precision,
                                              num_train=num_train)
  else:
    loss_fn = training.make_loss_fn(model, prior_precision=config.prior_precision,
                                    num_train=num_train)
  train_steps = training.make_train_steps(loss_fn, optimizer, batch_size=BATCH)
  state = training.create_train_state(jax.random.key(FLAGS.seed), model, optimizer, data.shape[1])
  seconds = 0.0
  for target in schedule:
    start = time.perf_counter()
    while int(state.step) * BATCH < target:
      state, metrics = train_steps(state, data, CHUNK_STEPS)
    jax.block_until_ready(state.params)
    seconds += time.perf_counter() - start
    if not np.all(np.isfinite(np.asarray(metrics["bound"]))):
      raise FloatingPointError(f"{method}, Ntrain={num_train}: the bound became non-finite.")
    evaluate_point(int(state.step), decoder_params(state.params), seconds,
                   {"train_elbo": float(jnp.mean(metrics["bound"]))})


def train_mcem(num_train, data, schedule, evaluate_point):
  """Trains MCEM with `vaex.make_mcem_step` on the same model and optimizer as AEVB."""
  config = model_config(num_train)
  steps_per_epoch = num_train // BATCH
  model = experiment.build_model(config)
  optimizer = build_optimizer(config, steps_per_epoch)
  key = jax.random.key(FLAGS.seed)
  state = vaex.init_mcem_state(key, model, optimizer, num_train=num_train, data_dim=data.shape[1])
  step = vaex.make_mcem_step(model, optimizer, prior_precision=config.prior_precision)
  permutation = jax.jit(training.epoch_permutation, static_argnums=2)
  step_key = jax.random.fold_in(key, _MCEM_STREAM)
  seconds, order, accept = 0.0, None, []
  for target in schedule:
    start = time.perf_counter()
    while (i := int(state.step)) * BATCH < target:
      epoch, j = divmod(i, steps_per_epoch)
      if j == 0 or order is None:
        order = permutation(key, epoch, num_train)
      indices = order[j * BATCH:(j + 1) * BATCH]
      state, metrics = step(state, data, indices, jax.random.fold_in(step_key, i))
      accept.append(metrics["acceptance"])
    jax.block_until_ready(state.params)
    seconds += time.perf_counter() - start
    recent = np.asarray(jnp.stack(accept[-100:]))
    accept = accept[-100:]
    evaluate_point(int(state.step), state.params, seconds, {
        "mcem_acceptance": float(recent.mean()),
        "mcem_step_size_median": float(jnp.median(state.step_sizes)),
        "train_log_likelihood_at_samples": float(metrics["log_likelihood"]),
    })


def read_jsonl(path):
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def plot(records, path):
  """figure3.png from the JSONL lines. The y-axis spans 100 nats below the best point, as the
  paper's does (early points of the first ~10^4 samples fall below it and are marked as clipped)."""
  from vaex import plots

  points = [r for r in records if "test_log_likelihood" in r]
  best = max(max(r["train_log_likelihood"], r["test_log_likelihood"]) for r in points)
  top = best + 5
  bottom = top - 100
  clipped = sum(min(r["train_log_likelihood"], r["test_log_likelihood"]) < bottom for r in points)
  title = f"Nz = {LATENT_DIM}, marginal log-likelihood by the HMC estimator (Appendix D)"
  if clipped:
    title += f"; {clipped} early points below the axis"
  plots.save_marginal_likelihood_curves(points, path, title=title, ylim=(bottom, top))


def main(argv):
  del argv
  os.makedirs(FLAGS.workdir, exist_ok=True)
  jsonl = os.path.join(FLAGS.workdir, "figure3.jsonl")
  png = os.path.join(FLAGS.workdir, "figure3.png")
  if FLAGS.replot:
    plot(read_jsonl(jsonl), png)
    print(f"wrote {png}")
    return
  for method in FLAGS.methods:
    if method not in METHODS:
      raise ValueError(f"--methods: unknown method {method!r}; choose from {METHODS}.")
  max_samples = 1e8 if FLAGS.full else FLAGS.max_samples
  hmc_samples, hmc_warmup = (1000, 500) if FLAGS.full else (FLAGS.hmc_samples, FLAGS.hmc_warmup)
  schedule = eval_schedule(max_samples, FLAGS.evals_per_decade)
  train_sizes = [int(n) for n in FLAGS.train_sizes]
  unit = CHUNK_STEPS * BATCH
  for n in train_sizes:
    if n < unit or n % unit:
      raise ValueError(f"--train_sizes: {n} is not a positive multiple of {unit} (the steps of an "
                       f"epoch must split into calls of {CHUNK_STEPS}); use e.g. 1000 or 50000.")
  if max_samples < unit:
    raise ValueError(f"--max_samples must be >= {unit}; got {max_samples:g}.")

  splits = experiment.load_datasets(model_config(0))
  rng = np.random.default_rng(FLAGS.seed)
  n_eval = FLAGS.eval_points
  train_pool = min(1000, min(train_sizes))
  train_rows = np.sort(rng.choice(train_pool, size=min(n_eval, train_pool), replace=False))
  test_rows = np.sort(rng.choice(len(splits["test"]), size=n_eval, replace=False))
  eval_x = {"train": jnp.asarray(splits["train"][train_rows], jnp.float32),
            "test": jnp.asarray(splits["test"][test_rows], jnp.float32)}
  evaluate = make_evaluator(experiment.build_model(model_config(0)), hmc_samples, hmc_warmup)
  eval_key = jax.random.fold_in(jax.random.key(FLAGS.seed), _EVAL_STREAM)

  records = read_jsonl(jsonl)
  done = {(r["method"], r["num_train"]) for r in records if r.get("done")}
  # Points of unfinished runs are dropped: those runs restart from scratch.
  records = [r for r in records if (r["method"], r["num_train"]) in done]
  with open(jsonl, "w") as f:
    f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)

  def write(record):
    records.append(record)
    with open(jsonl, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")

  command_start = time.perf_counter()
  for num_train in train_sizes:
    data = jnp.asarray(splits["train"][:num_train])
    for method in FLAGS.methods:
      if (method, num_train) in done:
        print(f"{method} Ntrain={num_train}: done, skipped", flush=True)
        continue

      def evaluate_point(step, params, seconds, extra, method=method, num_train=num_train):
        start = time.perf_counter()
        record = {"method": method, "num_train": num_train, "step": step,
                  "samples_seen": step * BATCH, "train_seconds": seconds, **extra}
        for split, x in eval_x.items():
          values = np.asarray(evaluate(params, eval_key, x))
          record[f"{split}_log_likelihood"] = float(values.mean())
          record[f"{split}_log_likelihood_stderr"] = float(values.std(ddof=1) / math.sqrt(len(values)))
          record[f"{split}_log_likelihood_median"] = float(np.median(values))
          record[f"{split}_eval_points"] = len(values)
        record["eval_seconds"] = time.perf_counter() - start
        record["hmc_samples"], record["hmc_warmup"] = hmc_samples, hmc_warmup
        write(record)
        print(f"{method:10s} Ntrain={num_train:5d} samples={step * BATCH:>10,d}: log p(x) train "
              f"{record['train_log_likelihood']:8.2f} test {record['test_log_likelihood']:8.2f} "
              f"(train {seconds:6.1f}s, eval {record['eval_seconds']:5.1f}s)", flush=True)

      if method == "mcem":
        train_mcem(num_train, data, schedule, evaluate_point)
      else:
        train_aevb_or_wake_sleep(method, num_train, data, schedule, evaluate_point)
      write({"method": method, "num_train": num_train, "done": True})
  plot(records, png)
  print(f"wrote {png} and {jsonl} in {time.perf_counter() - command_start:.0f} s")


if __name__ == "__main__":
  run(main)
