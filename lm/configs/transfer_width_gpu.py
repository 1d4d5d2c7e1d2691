"""Accelerator size: widths 64..1024 (SP against muP), depth 4, 2000 steps of 32 x 256 tokens."""
from lm.configs import transfer_width


def get_config():
  c = transfer_width.get_config()
  c.train.model.update(depth=4, n_heads=8, seq_len=256)
  c.train.data.update(vocab_size=256, order=2)
  c.train.batch_size = 32
  c.train.steps = 2000
  c.train.eval_every = 250
  c.train.eval_batches = 16
  c.sizes = (64, 128, 256, 512, 1024)
  c.lr_base = 1e-2
  c.lr_min_exp = -7
  c.lr_max_exp = 5
  c.seeds = 3
  return c
