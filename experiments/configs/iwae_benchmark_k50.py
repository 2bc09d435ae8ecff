"""The field's static-MNIST benchmark, Burda et al. (2015) protocol: IWAE (k = 50).

Model: 784-200-200-50 (two tanh hidden layers) encoder and 50-200-200-784 Bernoulli decoder; Adam with
beta2 = 0.999 and eps = 1e-4; 3^i passes at learning rate 1e-3 * 10^(-i/7) for i = 0..7 (3,280 passes
in all); minibatch 20; test log-likelihood by importance sampling with k = 5000
(experiments/evaluate.py). The settings live in vaex.experiment.iwae_protocol_config.

Command:
  python experiments/train.py --workdir=runs/iwae_k50 \
      --config=experiments/configs/iwae_benchmark_k50.py \
      --config.data_dir=../shared/data
  python experiments/evaluate.py --workdir=runs/iwae_k50 \
      --config=experiments/configs/iwae_benchmark_k50.py \
      --config.data_dir=../shared/data
Runtime on 2 CPU cores (AMD EPYC): about 300-600 images/s while sharing the cores (days for the 3,280
passes: a GPU job); measured so far: -96.01 +- 0.83 on a 1,000-example subset after 10 passes
(BUILD_NOTES.md). Ready to run unchanged
on a GPU (all devices are used by default: set a batch size divisible by the device count).
Expected: published test NLL 87.10 (pythae: 86.82) nats, i.e. test_log_likelihood about -87.10.
"""

from vaex import experiment


def get_config():
  return experiment.iwae_protocol_config(num_samples=50)
