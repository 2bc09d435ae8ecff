"""Gaussian decoder on 5,000 grayscale MNIST digits: the paper's Frey Face model on other data.

Written when Frey Face was not available here; `frey_face.py` now trains on Frey Face itself. This is
the paper's Frey Face architecture
(200 tanh hidden units, Gaussian decoder with sigmoid means, small latent space) on continuous
intensities in [0, 1]: `mnist_5k_grayscale.csv.gz`, 4,500 images for training, 500 held out.
The decoder variance is softplus(h) + 1e-3, so bounds are densities and can be positive.

Command:
  python experiments/train.py --config=experiments/configs/gaussian_decoder_mnist5k.py \
      --workdir=/tmp/vaex_gauss --config.data_dir=../shared/data
Runtime on 2 CPU cores: about 1 minute (100 epochs of 45 steps).
Expected: held-out ELBO about +1215 nats after 100 epochs (a density of continuous data, so
positive); longer training overfits the 4,500 images (+1149 after 300 epochs). See BUILD_NOTES.md.
"""

from vaex import experiment


def get_config():
  config = experiment.default_config()
  config.dataset = "mnist5k_grayscale"
  config.input_transform = "intensity"
  config.likelihood = "gaussian"
  config.latent_dim = 5
  config.hidden_sizes = (200,)
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.batch_size = 100
  config.num_epochs = 100  # The held-out bound peaks near epoch 100, then the model overfits.
  config.eval_batch_size = 500
  return config
