"""A convolutional VAE on statically binarized MNIST (part of issue 14).

Model: vaex.ConvEncoder (two stride-2 3x3 ReLU convolutions, 32 and 64 channels, 28x28 -> 14x14 ->
7x7, then one dense Gaussian head, 50 latents) and vaex.ConvDecoder (dense to 7x7x64, stride-2 3x3
transposed convolutions 64 -> 32 -> 1 channel, Bernoulli logits), estimator B with L=1, minibatch
100, Adam(1e-3). The pipeline keeps the data flat ([n, 784]); the networks reshape with
IMAGE_SHAPES["binarized_mnist"] = (28, 28, 1).

Command:
  python experiments/train.py --config=experiments/configs/conv_vae.py --workdir=/tmp/vaex_conv_vae \
      --config.data_dir=../shared/data
Runtime on 2 CPU cores (AMD EPYC), idle (session 9): one epoch in 135.8 s (377 images/s; 3.2 s
compiling), so 20 epochs take about 45 min. Earlier, under load: one epoch (500 steps) with
`nice -n 10 ... --workdir=/tmp/conv_try --config.num_epochs=1` took 1,516 s (34 images/s; epoch
function compiled in 40.8 s) on a machine at load average 25-32 (about 3.5 CPU-minutes for the whole
process). The networks need about 5.3M multiply-adds per image forward, 6.5x the paper's MLP.
Expected (measured, that run): after 1 epoch train ELBO -177.0, valid -126.9, test ELBO -125.7
nats (the MLP of mnist_adam: -124.9); samples already look like strokes. 10 epochs (session 8,
`experiments/benchmark_table.py --configs=conv_vae --config.num_epochs=10 --num_test_examples=1000`,
2,025 s sharing the 2 cores with another training, 202 s per epoch): test log p(x) -93.04 +- 0.70
(IWAE-5000 on the fixed 1,000 test images of the catalogue table; the MLP diagonal VAE: -104.85),
test ELBO -100.76 on all test images; its samples are mostly unreadable strokes (BUILD_NOTES).
"""

from vaex import experiment


def get_config():
  config = experiment.default_config()
  config.architecture = "conv"
  config.conv_features = (32, 64)  # Encoder channels; the decoder uses them reversed.
  config.activation = "relu"
  config.likelihood = "bernoulli"
  config.latent_dim = 50
  config.estimator = "B"
  config.num_samples = 1
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.batch_size = 100
  config.num_epochs = 20
  return config
