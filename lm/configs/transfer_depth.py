"""Learning-rate transfer in depth on CPU (minutes): depths 2..8 at width 64, muP against depth-muP."""
import ml_collections

from lm import train


def get_config():
  c = ml_collections.ConfigDict()
  c.axis = "depth"
  c.train = train.default_config()
  c.train.model.update(width=64, n_heads=4, seq_len=16, zero_readout=True)
  c.train.data.update(vocab_size=64, order=1)
  c.train.batch_size = 16
  c.train.steps = 60
  c.train.eval_every = 20
  c.train.divergence_factor = 2.0
  c.parameterizations = ("mup", "depth_mup")
  c.sizes = (2, 4, 8)
  c.lr_base = 1e-2
  c.lr_min_exp = -3
  c.lr_max_exp = 5
  c.seeds = 2
  return c
