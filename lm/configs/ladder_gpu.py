"""Accelerator size: eight muP sizes (0.04M-14M parameters) on an order-2 Markov language, D = 20 N."""
from lm.configs import ladder


def get_config():
  c = ladder.get_config()
  c.train.model.update(n_heads=4, seq_len=128)
  c.train.data.update(vocab_size=128, order=2)
  c.train.batch_size = 64
  c.train.lr = 1e-2
  c.sizes = ((32, 2), (48, 2), (64, 4), (96, 4), (128, 6), (192, 6), (256, 8), (384, 8))
  return c
