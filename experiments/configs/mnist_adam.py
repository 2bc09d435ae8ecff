"""The paper's MNIST model trained with Adam: the default a person would run.

Model: 784-500-(2x20) tanh encoder, 20-500-784 tanh Bernoulli decoder (Kingma & Welling 2013,
Section 5), estimator B with L=1, minibatch M=100, Adam(1e-3), statically binarized MNIST (50k train).

Command:
  python experiments/train.py --config=experiments/configs/mnist_adam.py --workdir=/tmp/vaex_mnist_adam \
      --config.data_dir=../shared/data
Runtime on 2 CPU cores: about 2.5 s per epoch (see BUILD_NOTES.md for measured figures).
Expected: test ELBO about -100 nats after ~40 epochs, about -95 after 100 (BUILD_NOTES.md).
"""

from vaex import experiment


def get_config():
  config = experiment.default_config()
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.num_epochs = 100
  return config
