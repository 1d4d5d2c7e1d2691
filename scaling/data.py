"""Loading runs (model size, tokens, loss) from CSV files."""
import csv
import dataclasses
import os

import numpy as np

from kernels import validation


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
  ignored). Tokens are D = FLOP / (6 N). Rows with an empty or NaN cell are
  dropped as incomplete and counted; then the `drop_highest` highest-loss
  runs are dropped, as in that replication (which keeps 240 of 245 runs).

  Raises:
    FileNotFoundError: if `path` does not exist.
    OSError: if it cannot be read.
    ValueError: if it is not UTF-8 text, a needed column is missing, a cell
      holds text, an infinite or a non-positive number (the message names
      the line and column), or `drop_highest` is negative or not smaller
      than the number of complete rows.
  """
  drop_highest = validation.check_int(drop_highest, "drop_highest")
  if not os.path.exists(path):
    raise FileNotFoundError(f"`path` {path!r} does not exist.")
  if os.path.isdir(path):
    raise IsADirectoryError(f"`path` {path!r} is a folder, not a CSV file.")
  try:
    with open(path, newline="") as f:
      reader = csv.DictReader(f)
      rows = list(reader)
      header = reader.fieldnames or []
  except UnicodeDecodeError as e:
    raise ValueError(f"{path!r} is not a UTF-8 text CSV file.") from e
  needed = ("Model Size", "Training FLOP", "loss")
  missing = [k for k in needed if k not in header]
  if missing:
    raise ValueError(f"{path!r} must have columns {needed}; missing "
                     f"{missing}.")

  def num(s, line, column):
    s = (s or "").strip()
    try:
      value = float(s) if s else np.nan
    except ValueError:
      value = None
    if value is None or np.isinf(value) or value <= 0:
      raise ValueError(f"{path!r} line {line}, column {column!r}: expected a "
                       f"positive number, got {s!r}.")
    return value

  table = np.array([[num(r[k], i + 2, k) for k in needed]
                    for i, r in enumerate(rows)], np.float64).reshape(-1, 3)
  ok = np.all(np.isfinite(table), axis=1)
  if drop_highest and drop_highest >= ok.sum():
    raise ValueError(f"`drop_highest`={drop_highest} would drop all "
                     f"{int(ok.sum())} complete rows of {path!r}.")
  table = table[ok]
  n, flop, loss = table.T
  order = np.argsort(loss, kind="stable")
  keep = np.sort(order[:len(loss) - drop_highest])
  n, flop, loss = n[keep], flop[keep], loss[keep]
  return Runs(N=n, D=flop / (6.0 * n), C=flop, loss=loss,
              num_read=len(rows), num_nan_dropped=int((~ok).sum()),
              num_highest_dropped=drop_highest)


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
