"""Theory against finite width on scikit-learn's digits (``make demo``; CPU, a few minutes)."""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.widths = (64, 128, 256, 512, 1024, 2048, 4096)  # hidden widths (a rerun may add some)
  c.cnn_widths = (8, 16, 32, 64)  # CNN channels on 8x8 digit images (128: ~10x the time of 64); () for none
  c.parameterizations = ("ntk", "mup")  # compared side by side (a rerun may add some)
  c.seeds = 4  # trained networks per width, vmapped
  c.init_seeds = 16  # networks per width for the MLP's kernel errors at initialisation (no training)
  c.cnn_init_seeds = 128  # the same for the CNN: its errors spread ~3x wider (log sd 0.6 vs 0.2)
  c.n_points = 32  # training points (and as many held-out points)
  c.depth = 2  # hidden layers
  c.activation = "relu"  # relu | erf | gelu | tanh
  c.steps = 50  # gradient-descent steps
  c.lr_fraction = 1.0  # rate in units of 1/lambda_max(NTK/P) of each series' own NTK; 2: stability edge
  c.dataset = "digits"  # digits | synthetic
  c.seed = 0  # PRNG seed
  return c
