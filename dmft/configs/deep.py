"""Deep (L = 2 hidden layers) ReLU DMFT against finite-width ensembles."""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.solver = "deep"
  c.data = ml_collections.ConfigDict(dict(
      n_train=6, n_test=4, dim=5, seed=0, target="sign"))
  c.activation = "relu"
  c.depth = 2
  c.gamma0 = 1.0
  c.lr = 1.0
  c.steps = 12
  c.n_samples = 4096
  c.n_response = 128
  c.seed = 0
  c.widths = (256, 512, 1024, 2048)
  c.n_seeds = 8
  c.gamma_sweep = ()
  c.sweep_samples = 2048
  return c
