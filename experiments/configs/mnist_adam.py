"""The paper's MNIST model trained with Adam: the default a person would run.

Model: 784-500-(2x20) tanh encoder, 20-500-784 tanh Bernoulli decoder (Kingma & Welling 2013,
Section 5), estimator B with L=1, minibatch M=100, Adam(1e-3), statically binarized MNIST (50k train).

Command:
  python experiments/train.py --config=experiments/configs/mnist_adam.py --workdir=/tmp/vaex_mnist_adam \
      --config.data_dir=../shared/data
Runtime on 2 CPU cores (AMD EPYC, idle): about 2.2 s of training per epoch (64 epochs in 143 s,
BUILD_NOTES.md "Time to quality"), 4-5 minutes for the 100 epochs with the per-epoch evaluation.
Expected (measured, BUILD_NOTES.md): test ELBO -124.9 after 1 epoch, -105.4 after 10, -100 first at
epoch 64, -99.7 after 100 (train -96: it overfits slowly after about 40 epochs).
"""

from vaex import experiment


def get_config():
  config = experiment.default_config()
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.num_epochs = 100
  return config
