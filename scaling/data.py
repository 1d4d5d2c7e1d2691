"""Loading runs (model size, tokens, loss) from CSV files."""
import csv
import dataclasses
import os

import numpy as np


@dataclasses.dataclass(frozen=True)
class Runs:
  """Training runs: model sizes N, tokens D, compute C = 6 N D and loss.

  Attributes:
    N, D, C, loss: float64 arrays, one entry per kept run.
    num_read: rows read from the file.
    num_nan_dropped: rows dropped for a missing or non-finite value.
    num_highest_dropped: rows dropped as the highest losses.
  """
  N: np.ndarray
  D: np.ndarray
  C: np.ndarray
  loss: np.ndarray
  num_read: int
  num_nan_dropped: int
  num_highest_dropped: int


def load_chinchilla_csv(path: str, *, drop_highest: int = 5) -> Runs:
  """Reads the runs extracted from Hoffmann et al. 2022, Fig. 4 (Besiroglu et al. 2024).

  The file has columns `Model Size`, `Training FLOP` and `loss` (others are
  ignored). Tokens are D = FLOP / (6 N). Rows with a missing, non-finite or
  non-positive value are dropped and counted; then the `drop_highest`
  highest-loss runs are dropped, as in that replication (which keeps 240 of
  245 runs).

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if a needed column is missing or `drop_highest` is negative.
  """
  if drop_highest < 0:
    raise ValueError(f"`drop_highest` must be >= 0, got {drop_highest}.")
  if not os.path.exists(path):
    raise FileNotFoundError(f"`path` {path!r} does not exist.")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  needed = ("Model Size", "Training FLOP", "loss")
  if not rows or any(k not in rows[0] for k in needed):
    raise ValueError(f"{path!r} must have columns {needed}.")

  def num(s):
    try:
      return float(s)
    except (TypeError, ValueError):
      return np.nan

  table = np.array([[num(r[k]) for k in needed] for r in rows], np.float64)
  ok = np.all(np.isfinite(table) & (table > 0), axis=1)
  table = table[ok]
  n, flop, loss = table.T
  order = np.argsort(loss, kind="stable")
  keep = np.sort(order[:len(loss) - drop_highest]) if drop_highest else order
  keep = np.sort(keep)
  n, flop, loss = n[keep], flop[keep], loss[keep]
  return Runs(N=n, D=flop / (6.0 * n), C=flop, loss=loss,
              num_read=len(rows), num_nan_dropped=int((~ok).sum()),
              num_highest_dropped=min(drop_highest, int(ok.sum())))


def synthetic_runs(params: dict, *, num_sizes: int = 12, num_per_size: int = 20,
                   noise: float = 0.01, seed: int = 0) -> Runs:
  """Runs drawn from a known law L = E + A/N^alpha + B/D^beta with noise.

  Model sizes span 7e7 to 1.6e10 and tokens 20x below to 20x above D = 20 N
  on a log grid; the loss gets multiplicative log-normal noise of scale
  `noise`.
  """
  rng = np.random.default_rng(seed)
  n = np.geomspace(7e7, 1.6e10, num_sizes)
  ratio = np.geomspace(1.0, 400.0, num_per_size)
  nn, rr = np.meshgrid(n, ratio, indexing="ij")
  nn, dd = nn.ravel(), (nn * rr).ravel()
  loss = (params["E"] + params["A"] / nn**params["alpha"]
          + params["B"] / dd**params["beta"])
  loss = loss * np.exp(noise * rng.standard_normal(loss.shape))
  return Runs(N=nn, D=dd, C=6 * nn * dd, loss=loss, num_read=len(nn),
              num_nan_dropped=0, num_highest_dropped=0)
