"""The stretch recipe, beyond the published IWAE-50 87.10: the VampPrior, IWAE-5 + DReG, -85.31.

Model: `vamp_prior`'s (the 784-200-200-50 tanh MLPs of the IWAE benchmark, a diagonal Gaussian
posterior, a VampPrior with 500 learnable pseudo-inputs, Bernoulli likelihood), trained with the IWAE
bound (k = 5) and the doubly reparameterized gradient (DReG) instead of the ELBO, and the optimizer
`fast_benchmark_vae` had when this was measured: minibatch 100, Adam (eps 1e-4) at 3e-3 with a cosine
decay to 0 over 300 passes (`fast_benchmark_vae` has used 1e-3 since session 10).
The VampPrior needs a KL warm-up to train (see `vamp_prior`); here it is the IWAE form,
`kl_warmup_epochs = 10`: each importance weight's log p(z) - log q(z|x) is weighted by beta rising
linearly from 0 to 1 over 10 passes (`vaex.iwae_bound`'s `kl_weight`), and the learning rate warms up
linearly over the first 3 passes. Probes of 12 passes (train IWAE-5 bound after passes 3 and 12):
no warm-up -184.2 and -198.3 (stalled, then falling), the learning-rate warm-up alone -141.2 and
-111.1 (run on to 300 passes it stayed near -107 from pass 30 and was stopped at pass 63), the KL
warm-up alone -126.4 and -102.6, both -127.1 and -99.3; `fast_benchmark_vae` (standard normal
prior) -114.7 and -102.7.
Target: the issue-16 stretch, test log p(x) >= -87.1 (IWAE-5000, all 10,000 test images) in <= 3 h of
training on 2 CPU cores.

Command:
  python experiments/benchmark_table.py --configs=fast_vamp_iwae --seeds=1 \
      --workdir=runs/fast_vamp_iwae --data_dir=../shared/data
Runtime and result, measured 2026-12-03 on the 2-core AMD EPYC (jax 0.10.2, CPU), one seed, mostly
idle (a 7-minute nice-19 test run shared the cores around passes 30-75): 2,790.6 s of training (300
passes, 5,478 images/s), then test log p(x) = -85.31 +- 0.23 nats (IWAE-5000, all 10,000 test
images; 269 s of evaluation), test ELBO -92.19, 24 active units. The stretch target is met, 1.79 nats
above the published IWAE-50 87.10 and 0.81 above the -86.5 that issue 16 asks for to beat it.
Expected: the result above for seed 0 (deterministic for a given seed); `vamp_prior` trained with the
ELBO and the same optimizer and budget reached -87.54.
"""

from vaex import experiment


def get_config():
  config = experiment.iwae_protocol_config(num_samples=5)
  config.prior = "vamp"
  config.num_components = 500
  config.gradient_estimator = "dreg"
  config.batch_size = 100
  config.learning_rate = 3e-3
  config.lr_schedule = "cosine"
  config.lr_warmup_epochs = 3
  config.kl_warmup_epochs = 10
  config.num_epochs = 300
  config.lr_decay_epochs = 300
  return config
