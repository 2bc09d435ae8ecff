"""The field's static-MNIST benchmark, Burda et al. (2015) protocol: VAE (k = 1).

Model: 784-200-200-50 (two tanh hidden layers) encoder and 50-200-200-784 Bernoulli decoder; Adam with
beta2 = 0.999 and eps = 1e-4; 3^i passes at learning rate 1e-3 * 10^(-i/7) for i = 0..7 (3,280 passes
in all); minibatch 20; test log-likelihood by importance sampling with k = 5000
(experiments/evaluate.py). The settings live in vaex.experiment.iwae_protocol_config.

Command:
  python experiments/train.py --workdir=runs/iwae_k1 \
      --config=experiments/configs/iwae_benchmark_k1.py \
      --config.data_dir=../shared/data
  python experiments/evaluate.py --workdir=runs/iwae_k1 \
      --config=experiments/configs/iwae_benchmark_k1.py \
      --config.data_dir=../shared/data
Runtime on 2 CPU cores (AMD EPYC): 11.8k-23k images/s (batch 20); the full 3,280 passes took 18,412 s
(5.1 h) of training time, partly sharing the cores, and the IWAE-5000 evaluation of the 10,000 test
images 252 s. Measured: test log p(x) -88.65 +- 0.25 nats after the full schedule (-89.49 +- 0.24
after 460 passes), test ELBO -94.75, 18 active units (BUILD_NOTES.md). Ready to run unchanged
on a GPU (all devices are used by default: set a batch size divisible by the device count).
Expected: published test NLL 88.71 (pythae: 89.78) nats, i.e. test_log_likelihood about -88.71.
"""

from vaex import experiment


def get_config():
  return experiment.iwae_protocol_config(num_samples=1)
