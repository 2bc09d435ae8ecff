"""Wake-sleep: each phase updates only its own model, and training improves the bound."""

import jax
import numpy as np

import vaex
from vaex._src import training, wake_sleep

DIM = 12


def _setup():
  model = vaex.VAE(vaex.MLPEncoder(latent_dim=3, hidden_sizes=(16,)),
                   vaex.BernoulliMLPDecoder(data_dim=DIM, hidden_sizes=(16,)))
  params = model.init(jax.random.key(0), np.zeros((1, DIM), np.float32))
  x = (np.random.default_rng(0).uniform(size=(20, DIM)) < 0.3).astype(np.float32)
  return model, params, x


def test_each_phase_updates_only_its_own_model():
  model, params, x = _setup()
  loss_fn = wake_sleep.make_wake_sleep_loss(model)

  def phase_grads(phase):
    def objective(params):
      _, metrics = loss_fn(params, jax.random.key(1), x)
      return -metrics[phase]
    return jax.grad(objective)(params)["params"]

  wake, sleep = phase_grads("wake"), phase_grads("sleep")
  norm = lambda tree: float(sum(np.abs(np.asarray(g)).sum() for g in jax.tree.leaves(tree)))  # noqa: E731
  assert norm(wake["encoder"]) == 0.0 and norm(wake["decoder"]) > 0.0
  assert norm(sleep["decoder"]) == 0.0 and norm(sleep["encoder"]) > 0.0


def test_wake_sleep_training_improves_the_elbo():
  model, _, x = _setup()
  data = np.concatenate([x] * 3).astype(np.uint8)  # 60 examples
  optimizer = training.make_optimizer("adam", 1e-2)
  steps = training.make_train_steps(wake_sleep.make_wake_sleep_loss(model), optimizer,
                                    batch_size=20)
  state = training.create_train_state(jax.random.key(0), model, optimizer, DIM)
  state, first = steps(state, data, num_steps=3)
  for _ in range(40):
    state, metrics = steps(state, data, num_steps=3)
  assert float(metrics["bound"].mean()) > float(first["bound"].mean()) + 1.0
