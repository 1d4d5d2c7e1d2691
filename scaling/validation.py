"""Input checks shared by the fits: positive, finite, matching 1-D arrays."""
from typing import Sequence

import numpy as np


def as_positive_1d(name: str, values, *, allow_nan: bool = False) -> np.ndarray:
  """Returns `values` as a float64 1-D array, checking it is positive and finite.

  Args:
    name: the argument name, used in error messages.
    values: array-like of numbers.
    allow_nan: when True, NaN entries pass (the caller drops them explicitly).

  Raises:
    TypeError: if `values` is not numeric.
    ValueError: if it is not 1-D, is empty, or holds non-positive or
      non-finite entries.
  """
  try:
    arr = np.asarray(values, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise TypeError(f"`{name}` must be an array of numbers, got "
                    f"{type(values).__name__}.") from e
  if arr.ndim == 0:
    arr = arr.reshape(1)
  if arr.ndim != 1:
    raise ValueError(f"`{name}` must be 1-D, got shape {arr.shape}.")
  if arr.size == 0:
    raise ValueError(f"`{name}` is empty.")
  nan = np.isnan(arr)
  if nan.any() and not allow_nan:
    rows = np.flatnonzero(nan)[:10].tolist()
    raise ValueError(f"`{name}` has {int(nan.sum())} NaN entries (rows {rows}"
                     f"{'...' if nan.sum() > 10 else ''}); drop those rows "
                     "first.")
  bad = ~nan & (~np.isfinite(arr) | (arr <= 0))
  if bad.any():
    rows = np.flatnonzero(bad)[:10].tolist()
    raise ValueError(f"`{name}` must be positive and finite; rows {rows} are "
                     f"not (values {arr[bad][:5].tolist()}).")
  return arr


def check_same_length(**arrays: Sequence) -> int:
  """Checks that all named arrays have the same length and returns it."""
  lengths = {k: len(v) for k, v in arrays.items()}
  if len(set(lengths.values())) != 1:
    raise ValueError(f"arguments must have the same length, got {lengths}.")
  return next(iter(lengths.values()))


def check_enough_points(num_points: int, num_params: int, what: str) -> None:
  """Raises ValueError when there are not more points than parameters."""
  if num_points <= num_params:
    raise ValueError(f"{what} has {num_params} parameters and needs more than "
                     f"{num_params} points, got {num_points}.")
