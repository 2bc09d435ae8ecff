"""A recipe for time to quality on the static-MNIST benchmark architecture: -88.42 in 1,445 s.

Model: the Burda et al. (2015) networks, 784-200-200-50 tanh encoder and 50-200-200-784 Bernoulli
decoder, trained with the IWAE bound (k = 5) and the doubly reparameterized gradient (DReG, Tucker et
al. 2019); minibatch 100 instead of 20, Adam (eps 1e-4) at 3e-3 with a cosine decay to 0 over 300
passes instead of the protocol's 3,280 passes of step decay. Target: test log p(x) >= -88.7
(IWAE-5000, all 10,000 test images) in <= 1,800 s of training on 2 CPU cores.

Command:
  python experiments/train.py --config=experiments/configs/fast_benchmark_vae.py \
      --workdir=runs/fast_benchmark_vae --config.data_dir=../shared/data
  python experiments/evaluate.py --config=experiments/configs/fast_benchmark_vae.py \
      --workdir=runs/fast_benchmark_vae --config.data_dir=../shared/data
Runtime and result, measured on an otherwise idle 2-core AMD EPYC (jax 0.10.2, CPU), 2026-12-02:
1,445.3 s of training (300 passes, about 10,400 images/s), then test log p(x) = -88.42 +- 0.24 nats
(IWAE-5000, 10,000 test images; 196 s of evaluation) and test ELBO -97.50. The protocol
(`iwae_benchmark_k1`) reached -88.65 in 18,412 s. 200 passes: -88.73 in 951.5 s (just short).
Expected: the target met as above (one seed measured; deterministic for a given seed).
Ablations at 300 passes (BUILD_NOTES, "Time to quality"): a constant 3e-3 instead of the cosine decay
-92.97; 1e-3 instead of 3e-3 -88.08 in 1,494 s (better by 0.35 nats, one seed: the candidate to adopt
after a 3-seed check, `--config.learning_rate=1e-3`).
"""

from vaex import experiment


def get_config():
  config = experiment.iwae_protocol_config(num_samples=5)
  config.gradient_estimator = "dreg"
  config.batch_size = 100
  config.learning_rate = 3e-3
  config.lr_schedule = "cosine"
  config.num_epochs = 300
  return config
