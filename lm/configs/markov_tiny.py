"""A tiny muP transformer on the order-2 Markov language (CPU, under a minute)."""
from lm import train


def get_config():
  c = train.default_config()
  c.model.width = 64
  c.model.depth = 2
  c.model.n_heads = 4
  c.model.seq_len = 32
  c.model.parameterization = "mup"
  c.lr = 1e-2
  c.steps = 300
  c.batch_size = 16
  return c
