r"""Evaluates the latest checkpoint: test ELBO and the IWAE-k log-likelihood (k from the config).

  python experiments/evaluate.py --config=experiments/configs/mnist_adam.py --workdir=/tmp/run \
      [--config.eval_iwae_samples=5000] [--num_test_examples=1000]

Appends one line to metrics.jsonl in the workdir (one per seed for a run of config.num_seeds > 1) and
prints the numbers with standard errors.
"""

from _cli import FLAGS, setup
from _entry import run
from absl import app, flags

from vaex import experiment

flags.DEFINE_integer("num_test_examples", 0, "Evaluate a fixed random subset of n test examples "
                     "(a quick look at a run in progress); 0, the protocol: the whole test split.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  setup()
  records = experiment.evaluate_checkpoint(FLAGS.config, FLAGS.workdir,
                                          num_test_examples=FLAGS.num_test_examples)
  for r in records if isinstance(records, list) else [records]:  # A list: one per seed.
    seed = f"seed {r['seed']}, " if "seed" in r else ""
    print(f"{seed}step {r['step']} (epoch {r['epoch']}), {r['test_examples']} test examples: test "
          f"ELBO {r['test_elbo']:.2f} +- {r['test_elbo_stderr']:.2f} nats; test log-likelihood "
          f"(IWAE-{r['test_iwae_k']}) "
          f"{r['test_log_likelihood']:.2f} +- {r['test_log_likelihood_stderr']:.2f} nats "
          f"({r['eval_seconds']:.1f} s)")


if __name__ == "__main__":
  run(main)
