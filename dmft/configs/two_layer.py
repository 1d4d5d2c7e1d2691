"""Two-layer DMFT against finite-width mup ensembles (CPU, a few minutes)."""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.solver = "two_layer"  # two_layer | deep | residual
  c.data = ml_collections.ConfigDict(dict(
      n_train=12, n_test=8, dim=6, seed=0, target="sign"))
  c.activation = "relu"
  c.depth = 1
  c.gamma0 = 1.0
  c.lr = 1.0
  c.steps = 40
  c.n_samples = 2 ** 17
  c.seed = 0
  c.widths = (128, 256, 512, 1024, 2048, 4096)
  c.n_seeds = 16
  c.split_pairs = 32  # pairs of width-N networks and their width-2N union (0: skip)
  # The gamma0 sweep (lazy_to_rich.png) needs a task where features matter: see
  # dmft/configs/lazy_to_rich.py. On these 12 points in 6 dimensions every gamma0 overfits.
  c.gamma_sweep = ()
  c.sweep_samples = 2 ** 14
  return c
