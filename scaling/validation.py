"""Input checks shared by the fits and the command lines."""
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


def check_int(name: str, value, *, minimum: int = 0) -> int:
  """Returns `value` as an int >= `minimum`; bools and non-integers are TypeErrors."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, (int, np.integer)):
    raise TypeError(f"`{name}` must be an int, got {type(value).__name__} "
                    f"{value!r}.")
  if value < minimum:
    raise ValueError(f"`{name}` must be an int >= {minimum}, got {value}.")
  return int(value)


def check_positive_number(name: str, value) -> float:
  """Returns `value` as a float, checking it is a positive finite number."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, (int, float, np.integer, np.floating)):
    raise TypeError(f"`{name}` must be a number, got {type(value).__name__}.")
  if not (np.isfinite(value) and value > 0):
    raise ValueError(f"`{name}` must be a positive finite number, got "
                     f"{value!r}.")
  return float(value)


def check_fit_options(*, delta, bootstrap, confidence, max_iter) -> None:
  """Checks the options shared by the Huber fits (`fit_chinchilla`, `fit_power_law`)."""
  check_positive_number("delta", delta)
  check_int("bootstrap", bootstrap, minimum=0)
  check_int("max_iter", max_iter, minimum=1)
  if not (check_positive_number("confidence", confidence) < 1):
    raise ValueError(f"`confidence` must be in (0, 1), got {confidence}.")


def check_varies(name: str, values: np.ndarray, param: str,
                 min_distinct: int = 3) -> None:
  """Raises ValueError unless positive `values` take `min_distinct` distinct values.

  A power law in `name` with an offset needs that many distinct values for
  its exponent `param` to be identifiable; values within a relative 1e-9 of
  each other count as one.
  """
  distinct = len(np.unique(np.round(np.log(values) * 1e9)))
  if distinct < min_distinct:
    raise ValueError(f"`{name}` must vary: it takes {distinct} distinct "
                     f"value(s), and `{param}` is not identifiable with fewer "
                     f"than {min_distinct}.")


def check_grid(grid, num_params: int) -> np.ndarray:
  """Returns the initial-point grid as a (starts, num_params) float64 array."""
  try:
    arr = np.asarray(grid, np.float64)
  except (TypeError, ValueError) as e:
    raise TypeError("`grid` must be an array of numbers.") from e
  if arr.ndim != 2 or arr.shape[1] != num_params or arr.shape[0] == 0:
    raise ValueError(f"`grid` must have shape (starts, {num_params}) with at "
                     f"least one start, got {arr.shape}.")
  if not np.all(np.isfinite(arr)):
    raise ValueError("`grid` must be finite.")
  return arr
