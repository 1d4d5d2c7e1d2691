"""Chinchilla approach 3 fit with bootstrap intervals (`python -m scaling.fit`).

With `csv` empty the runs are drawn from the law of Hoffmann et al. 2022
(A 406.4, B 410.7, E 1.69, alpha 0.34, beta 0.28) with 1% noise, so the fit
has a known answer; for the published runs set
`--config.csv=colabs/data/chinchilla_runs.csv`.
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.csv = ""  # CSV with columns `Model Size`, `Training FLOP`, `loss`; "" for synthetic runs
  c.synthetic = ml_collections.ConfigDict(dict(
      num_sizes=12, num_per_size=20, noise=0.01, seed=2))  # used when csv is ""
  c.bootstrap = 200  # bootstrap resamples (0: none)
  c.seed = 0  # bootstrap seed
  c.drop_highest = 5  # drop this many highest-loss runs
  c.delta = 1e-3  # Huber threshold on log-loss residuals
  c.overwrite = False  # refit even if the folder holds a finished fit
  return c
