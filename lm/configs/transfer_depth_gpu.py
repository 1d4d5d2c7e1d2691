"""Accelerator size: depths 2..16 at width 256 (muP against depth-muP), 2000 steps of 32 x 256 tokens."""
from lm.configs import transfer_depth


def get_config():
  c = transfer_depth.get_config()
  c.train.model.update(width=256, n_heads=8, seq_len=256)
  c.train.data.update(vocab_size=256, order=2)
  c.train.batch_size = 32
  c.train.steps = 2000
  c.train.eval_every = 250
  c.train.eval_batches = 16
  c.sizes = (2, 4, 8, 16)
  c.lr_min_exp = -7
  c.lr_max_exp = 5
  c.seeds = 3
  return c
