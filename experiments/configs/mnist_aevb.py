"""The paper's AEVB setting on MNIST (Kingma & Welling 2013, Section 5 and Figure 2, Nz = 20).

Model: 784-500-(2x20) tanh encoder, 20-500-784 tanh Bernoulli decoder, parameters initialized from
N(0, 0.01^2), estimator B with L=1, minibatch M=100, Adagrad (step size from {0.01, 0.02, 0.1}; 0.02
here), weight decay as an N(0, I) prior on the parameters. Statically binarized MNIST (50k train).

Command:
  python experiments/train.py --config=experiments/configs/mnist_aevb.py --workdir=/tmp/vaex_mnist_aevb \
      --config.data_dir=../shared/data
Runtime on 2 CPU cores: about 2.5 s per epoch (see BUILD_NOTES.md).
Expected: the paper's Figure 2 (Nz=20) reaches a test lower bound of about -100.6 after 10^8
training samples seen (2,000 epochs); BUILD_NOTES.md records what this config reached on our budget.
"""

from vaex import experiment


def get_config():
  config = experiment.default_config()
  config.latent_dim = 20
  config.hidden_sizes = (500,)
  config.paper_init = True
  config.optimizer = "adagrad"
  config.learning_rate = 0.02
  config.adagrad_initial_accumulator = 0.1
  config.prior_precision = 1.0
  config.num_epochs = 200
  return config
