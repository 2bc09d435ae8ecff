"""The paper's Frey Face model (Kingma & Welling 2013, Section 5, Figures 2 and 4), Nz = 2.

Model: 560-200-(2xNz) tanh encoder, Nz-200-(2x560) tanh Gaussian decoder whose means go through a
sigmoid (the paper's Frey Face decoder), parameters initialized from N(0, 0.01^2), estimator B with
L = 1, minibatch M = 100, Adagrad (step size from the paper's {0.01, 0.02, 0.1}), weight decay as an
N(0, I) prior on the parameters. Data: Frey Face intensities in [0, 1], 1,600 training and 365 test
images (`vaex.data.frey_face_train_test_split`, seed 0). The decoder variance is softplus(h) +
`min_variance`, so the bounds are densities of continuous data and are positive.

Command (the 2-D manifold of Figure 4):
  python experiments/train.py --config=experiments/configs/frey_face.py \
      --workdir=runs/frey_face_manifold --config.data_dir=../shared/data
  python experiments/manifold.py --config=experiments/configs/frey_face.py \
      --workdir=runs/frey_face_manifold --config.data_dir=../shared/data
Runtime on the shared 2-core CPU of this session (load average about 30): 1,000 epochs (1.6 x 10^6
training samples) in about 10 minutes (6 minutes of training steps, 16 steps an epoch).
Expected: test ELBO +757.4 nats (train +771.2) after 1,000 epochs, still rising slowly (+633.8 after
110 epochs, +748.7 after 710); with --config.latent_dim=5, 10, 20: +904.5, +942.5, +974.5 (measured
as the AEVB runs of experiments/figure2.py's Frey Face row, runs/frey_face_figure2/frey_face/).
"""

from vaex import experiment


def get_config():
  config = experiment.default_config()
  config.dataset = "frey_face"
  config.input_transform = "intensity"
  config.likelihood = "gaussian"
  config.latent_dim = 2
  config.hidden_sizes = (200,)
  config.paper_init = True
  config.optimizer = "adagrad"
  # Of the paper's {0.01, 0.02, 0.1}, the best training bound after 100 epochs (Nz = 2):
  # +651.6, +623.8, +568.0 nats.
  config.learning_rate = 0.01
  config.adagrad_initial_accumulator = 0.1
  config.prior_precision = 1.0
  config.batch_size = 100
  config.num_epochs = 1000  # 1.6 x 10^6 training samples.
  config.eval_every_epochs = 10
  config.checkpoint_every_epochs = 100
  config.eval_batch_size = 500
  return config
