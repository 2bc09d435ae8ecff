"""A recipe for time to quality on the static-MNIST benchmark architecture (CANDIDATE, being measured).

Model: the Burda et al. (2015) networks, 784-200-200-50 tanh encoder and 50-200-200-784 Bernoulli
decoder, trained with the IWAE bound (k = 5) and the doubly reparameterized gradient (DReG, Tucker et
al. 2019); minibatch 100 instead of 20, Adam (eps 1e-4) at 3e-3 with a cosine decay to 0 over 200
passes instead of the protocol's 3,280 passes of step decay. Target: test log p(x) >= -88.7
(IWAE-5000, all 10,000 test images) in <= 1,800 s of training on 2 CPU cores.

Command:
  python experiments/train.py --config=experiments/configs/fast_benchmark_vae.py \
      --workdir=runs/fast_benchmark_vae --config.data_dir=../shared/data
  python experiments/evaluate.py --config=experiments/configs/fast_benchmark_vae.py \
      --workdir=runs/fast_benchmark_vae --config.data_dir=../shared/data
Runtime on 2 CPU cores and the result: not yet measured on an idle machine (BUILD_NOTES.md, "Time to
quality"). Expected: the target above; until it is measured this is a candidate, not a result.
"""

from vaex import experiment


def get_config():
  config = experiment.iwae_protocol_config(num_samples=5)
  config.gradient_estimator = "dreg"
  config.batch_size = 100
  config.learning_rate = 3e-3
  config.lr_schedule = "cosine"
  config.num_epochs = 200
  return config
