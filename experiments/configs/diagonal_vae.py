"""The diagonal-Gaussian VAE at the model catalogue's CPU budget: the baseline beside
`full_covariance`, `flow_posterior`, `vamp_prior` (and `conv_vae`).

Model: the 784-200-200-50 tanh MLPs of the IWAE benchmark (vaex.experiment.iwae_protocol_config(1)),
q(z|x) diagonal, p(z) = N(0, I), Bernoulli decoder; estimator A (L = 1) as in the catalogue configs
(estimator B gives the same bound with less noise); minibatch 100, Adam 1e-3 (eps 1e-4), constant,
100 passes. Only the posterior or prior differs in the catalogue configs.

Command (the side-by-side table of the catalogue at one budget):
  python experiments/benchmark_table.py \
      --configs=diagonal_vae,full_covariance,flow_posterior,vamp_prior --seeds=1 \
      --workdir=runs/catalogue --data_dir=../shared/data --config.num_epochs=10 \
      --num_test_examples=1000
Runtime on 2 CPU cores and expected numbers: BUILD_NOTES.md, "The model catalogue (issue 14)".
"""

from vaex import experiment


def get_config():
  config = experiment.iwae_protocol_config(num_samples=1)
  config.estimator = "A"
  config.batch_size = 100
  config.lr_schedule = "constant"
  config.learning_rate = 1e-3
  config.num_epochs = 100
  config.eval_every_epochs = 5
  config.checkpoint_every_epochs = 5
  return config
