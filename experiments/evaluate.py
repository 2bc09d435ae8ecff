r"""Evaluates the latest checkpoint: test ELBO and the IWAE-k log-likelihood (k from the config).

  python experiments/evaluate.py --config=experiments/configs/mnist_adam.py --workdir=/tmp/run \
      [--config.eval_iwae_samples=5000]

Appends one line to metrics.jsonl in the workdir and prints the numbers with standard errors.
"""

from _cli import FLAGS, setup
from absl import app

from vaex import experiment


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  setup()
  r = experiment.evaluate_checkpoint(FLAGS.config, FLAGS.workdir)
  print(f"step {r['step']} (epoch {r['epoch']}): test ELBO {r['test_elbo']:.2f} "
        f"+- {r['test_elbo_stderr']:.2f} nats; test log-likelihood (IWAE-{r['test_iwae_k']}) "
        f"{r['test_log_likelihood']:.2f} +- {r['test_log_likelihood_stderr']:.2f} nats "
        f"({r['eval_seconds']:.1f} s)")


if __name__ == "__main__":
  app.run(main)
