"""The field's static-MNIST benchmark, Burda et al. (2015) protocol: IWAE (k = 5).

Model: 784-200-200-50 (two tanh hidden layers) encoder and 50-200-200-784 Bernoulli decoder; Adam with
beta2 = 0.999 and eps = 1e-4; 3^i passes at learning rate 1e-3 * 10^(-i/7) for i = 0..7 (3,280 passes
in all); minibatch 20; test log-likelihood by importance sampling with k = 5000
(experiments/evaluate.py). The settings live in vaex.experiment.iwae_protocol_config.

Command:
  python experiments/train.py --workdir=runs/iwae_k5 \
      --config=experiments/configs/iwae_benchmark_k5.py \
      --config.data_dir=../shared/data
  python experiments/evaluate.py --workdir=runs/iwae_k5 \
      --config=experiments/configs/iwae_benchmark_k5.py \
      --config.data_dir=../shared/data
Runtime on 2 CPU cores (AMD EPYC): about 3.5-4.6k images/s while sharing the cores (roughly 8-15 hours
for the 3,280 passes); measured so far: -91.20 +- 0.79 on a 1,000-example subset after 70 passes;
after 40 passes on all 10,000 test images, -91.85 +- 0.24 with the plain gradient (640 s of training)
and -91.16 +- 0.24 with DReG (`--config.gradient_estimator=dreg`), BUILD_NOTES.md. Ready to run unchanged
on a GPU (all devices are used by default: set a batch size divisible by the device count).
Expected: a test NLL between the k = 1 (88.71) and k = 50 (87.10) published values (Burda et al.,
Table 3 reports k = 5 as well).
"""

from vaex import experiment


def get_config():
  return experiment.iwae_protocol_config(num_samples=5)
