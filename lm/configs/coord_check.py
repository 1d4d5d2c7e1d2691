"""Coordinate check, widths 64..1024 (16x), depth 2, 3 Adam steps (CPU: a few minutes)."""
import ml_collections

from lm import train


def get_config():
  c = ml_collections.ConfigDict()
  c.train = train.default_config()
  c.train.model.update(depth=2, n_heads=4, seq_len=32, zero_readout=True)
  c.train.data.update(vocab_size=64, order=1)
  c.train.batch_size = 8
  c.train.lr = 1e-2
  c.widths = (64, 128, 256, 512, 1024)
  c.parameterizations = ("sp", "mup")
  c.steps = 3
  c.seeds = 3
  c.tol = 1.2
  return c
