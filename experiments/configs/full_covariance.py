"""Full-covariance Gaussian posterior VAE on static MNIST: q(z|x) = N(mean(x), L(x) L(x)^T).

Model: the 784-200-200-50 tanh MLPs of the IWAE benchmark (vaex.experiment.iwae_protocol_config(1));
the encoder's head also gives the 1,225 strictly-lower entries of L (vaex.FullCovarianceMLPEncoder).
Training uses estimator A (L = 1; estimator B is refused until vaex.elbo reads the full-covariance
closed-form KL). CPU budget: minibatch 100, Adam 1e-3 (eps 1e-4), constant, 100 passes.

Command:
  python experiments/train.py --config=experiments/configs/full_covariance.py \
      --workdir=runs/full_covariance --config.data_dir=../shared/data
  python experiments/evaluate.py --config=experiments/configs/full_covariance.py \
      --workdir=runs/full_covariance --config.data_dir=../shared/data
Runtime on 2 CPU cores (AMD EPYC, shared with other jobs): measured with --config.num_epochs=2
  under heavy load (load average ~20: two background trainings and other test runs): 1,070 images/s,
  47 s per epoch of 50,000 images, 68 s to compile; 100 epochs would take about 80 min at that rate.
  After 2 epochs: test ELBO -144.90 nats (estimator A, L = 1).
Expected: a test ELBO at or above the diagonal VAE's at the same budget (not yet measured at 100
passes).
"""

from vaex import experiment


def get_config():
  config = experiment.iwae_protocol_config(num_samples=1)
  config.posterior = "full_covariance"
  config.estimator = "A"
  config.batch_size = 100
  config.lr_schedule = "constant"
  config.learning_rate = 1e-3
  config.num_epochs = 100
  config.eval_every_epochs = 5
  config.checkpoint_every_epochs = 5
  return config
