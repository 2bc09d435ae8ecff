"""Smoke test: a tiny VAE on 1,000 binarized MNIST digits for 2 epochs (used by the tests).

Command:
  python experiments/train.py --config=experiments/configs/smoke.py --workdir=/tmp/vaex_smoke \
      --config.data_dir=../shared/data
Runtime on 2 CPU cores (measured 2026-12-02, cores shared with other jobs): 10-25 s of training,
nearly all of it compiling the epoch function, and 45-100 s from the command to the result (loading
the 50,000-image training file included).
Expected (measured; the same in repeated runs): test ELBO -506.2 nats after epoch 1 and -400.4 after
epoch 2 (valid -400.5). A model this small trained this briefly is far from MNIST's -100: the config
only checks that everything runs.
"""

from vaex import experiment


def get_config():
  config = experiment.default_config()
  config.num_train_examples = 1000
  config.latent_dim = 8
  config.hidden_sizes = (64,)
  config.num_epochs = 2
  config.batch_size = 100
  config.eval_batch_size = 1000
  config.eval_iwae_samples = 16
  config.num_sample_images = 16
  config.num_devices = 1  # The tests run with 8 forced CPU devices; sharding tests override this.
  return config
