"""Learning-rate transfer in width on CPU (minutes): widths 32..128, SP against muP."""
import ml_collections

from lm import train


def get_config():
  c = ml_collections.ConfigDict()
  c.axis = "width"
  c.train = train.default_config()
  c.train.model.update(depth=2, n_heads=4, seq_len=16, zero_readout=True)
  c.train.data.update(vocab_size=64, order=1)
  c.train.batch_size = 16
  c.train.steps = 60
  c.train.eval_every = 20
  c.train.divergence_factor = 2.0
  c.parameterizations = ("sp", "mup")
  c.sizes = (32, 64, 128)
  c.lr_base = 1e-2
  c.lr_min_exp = -3
  c.lr_max_exp = 5
  c.seeds = 2
  return c
