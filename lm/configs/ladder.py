"""Model ladder on CPU (minutes): six muP sizes on the order-1 Markov language, D = 20 N."""
import ml_collections

from lm import train


def get_config():
  c = ml_collections.ConfigDict()
  c.train = train.default_config()
  c.train.model.update(n_heads=2, seq_len=32, parameterization="mup", zero_readout=True)
  c.train.data.update(vocab_size=64, order=1)
  c.train.batch_size = 32
  c.train.lr = 3e-2
  c.train.eval_batches = 16
  c.sizes = ((8, 1), (12, 1), (16, 1), (24, 2), (32, 2), (48, 2))
  c.tokens_per_param = 20
  c.evals_per_run = 5
  return c
