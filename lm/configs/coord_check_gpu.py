"""Accelerator size: coordinate check at widths 256..4096 (16x), depth 4, sequences of 256."""
from lm.configs import coord_check


def get_config():
  c = coord_check.get_config()
  c.train.model.update(depth=4, n_heads=8, seq_len=256)
  c.train.data.update(vocab_size=256, order=2)
  c.train.batch_size = 32
  c.widths = (256, 512, 1024, 2048, 4096)
  c.seeds = 5
  return c
