"""Checks at public boundaries: a bad input gets an error that names it.

The one validation module of kernels/, dmft/ and scaling/. Shape, rank, dtype and
finiteness are asserted with chex; its AssertionError becomes a ValueError
(TypeError for a dtype) whose message names the argument, so callers catch
the same errors whichever check fails.
"""
from __future__ import annotations

import contextlib
import numbers
from typing import Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np


@contextlib.contextmanager
def _as_error(message: str, error=ValueError):
  """Turns a chex AssertionError into ``error(message)``."""
  try:
    yield
  except AssertionError:
    raise error(message) from None


def assert_rank(x, rank, name: str, message: Optional[str] = None) -> None:
  """``x`` has rank ``rank`` (an int or a set of ints), else ValueError naming ``name``."""
  with _as_error(message or f"{name} must have rank {rank}, got shape {np.shape(x)}."):
    chex.assert_rank(x, rank)


def assert_shape(x, shape: Sequence[Optional[int]], name: str,
                 message: Optional[str] = None) -> None:
  """``x`` has ``shape`` (None or ... for any size), else ValueError naming ``name``."""
  with _as_error(message or f"{name} must have shape {tuple(shape)}, got {np.shape(x)}."):
    chex.assert_shape(x, tuple(shape))


def assert_floating(x, name: str) -> None:
  """``x`` holds floating-point numbers, else TypeError naming ``name``."""
  dtype = getattr(x, "dtype", None)
  with _as_error(f"{name} must be a floating-point array, got dtype {dtype}.", TypeError):
    chex.assert_type(x, float)


def assert_finite(x, name: str) -> None:
  """Raises ValueError if a concrete array holds NaN or inf (skipped under tracing)."""
  try:
    concrete = np.asarray(x)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return
  with _as_error(f"{name} contains NaN or inf."):
    chex.assert_tree_all_finite(concrete)


def default_float():
  """float64 when jax_enable_x64 is on, else float32."""
  return jnp.result_type(float)


def as_float_array(x, name: str) -> jax.Array:
  """Converts an array-like to a floating JAX array, or raises TypeError naming it."""
  if x is None:
    raise TypeError(f"{name} must be an array, got None.")
  try:
    arr = jnp.asarray(x)
  except TypeError as e:
    raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}.") from e
  if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)
          or arr.dtype == jnp.bool_):
    raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
  if not jnp.issubdtype(arr.dtype, jnp.floating):
    arr = arr.astype(default_float())
  return arr


def check_finite(x: jax.Array, name: str) -> None:
  """Raises ValueError if a concrete array holds NaN or inf (skipped under tracing)."""
  assert_finite(x, name)


def check_inputs(x1, x2=None, *, finite: bool = True):
  """Validates a pair of (n, d) input batches for kernel functions; returns arrays."""
  x1 = as_float_array(x1, "x1")
  assert_rank(x1, 2, "x1", f"x1 must have shape (n, d) for fully-connected kernels, got "
              f"{x1.shape}.")
  if x1.shape[0] == 0 or x1.shape[1] == 0:
    raise ValueError(f"x1 must have at least one point and one feature, got {x1.shape}.")
  if finite:
    check_finite(x1, "x1")
  if x2 is not None:
    x2 = as_float_array(x2, "x2")
    assert_rank(x2, 2, "x2", f"x2 must have shape (n, d) for fully-connected kernels, got "
                f"{x2.shape}.")
    assert_shape(x2, (None, x1.shape[1]), "x2", f"x1 and x2 must have the same feature "
                 f"dimension, got x1 {x1.shape} and x2 {x2.shape}.")
    if x2.shape[0] == 0:
      raise ValueError(f"x2 must have at least one point, got {x2.shape}.")
    if finite:
      check_finite(x2, "x2")
    dtype = jnp.promote_types(x1.dtype, x2.dtype)
    x1, x2 = x1.astype(dtype), x2.astype(dtype)
  return x1, x2


def check_positive_int(value, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f"{name} must be a positive integer, got {value!r}.")
  if value <= 0:
    raise ValueError(f"{name} must be a positive integer, got {value}.")
  return int(value)


def _number(value, name: str, what: str):
  """A concrete Python float, or a traced JAX scalar unchanged (hyperparameters under
  ``jax.grad``/``jit`` are data); raises TypeError naming the argument otherwise."""
  if isinstance(value, (jax.Array, np.ndarray)) and not isinstance(value, bool):
    if value.ndim != 0 or not (jnp.issubdtype(value.dtype, jnp.floating)
                               or jnp.issubdtype(value.dtype, jnp.integer)):
      raise TypeError(f"{name} must be {what}, got an array of shape {value.shape} and dtype "
                      f"{value.dtype}.")
    try:
      return float(value)
    except TypeError:  # a tracer: checked by the computation that uses it, not here
      return value
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"{name} must be {what}, got {value!r}.")
  return float(value)


def is_concrete(x) -> bool:
  """Whether x has values here (not a tracer inside jit, grad or vmap)."""
  try:
    np.asarray(x)
    return True
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return False


def is_traced(value) -> bool:
  """After `_number`, a hyperparameter is a float or (under tracing) a JAX scalar."""
  return isinstance(value, jax.Array)


def check_real(value, name: str) -> float:
  """A finite real number (or a traced JAX scalar), else an error naming ``name``."""
  value = _number(value, name, "a finite real number")
  if not is_traced(value) and not np.isfinite(value):
    raise ValueError(f"{name} must be a finite real number, got {value}.")
  return value


def check_nonnegative(value, name: str, allow_none: bool = False) -> Optional[float]:
  if value is None and allow_none:
    return None
  value = _number(value, name, "a real number")
  if not is_traced(value) and (not np.isfinite(value) or value < 0):
    raise ValueError(f"{name} must be finite and non-negative, got {value}.")
  return value


# Data of fits (scaling/): 1-D positive samples, options of the Huber fits.

def as_positive_1d(values, name: str, *, allow_nan: bool = False) -> np.ndarray:
  """Returns ``values`` as a float64 1-D array, checking it is positive and finite.

  Args:
    values: array-like of numbers (a scalar counts as one entry).
    name: the argument name, used in error messages.
    allow_nan: when True, NaN entries pass (the caller drops them explicitly).

  Raises:
    TypeError: if ``values`` is not numeric.
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
  assert_rank(arr, 1, name, f"`{name}` must be 1-D, got shape {arr.shape}.")
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


def check_int(value, name: str, *, minimum: int = 0) -> int:
  """Returns ``value`` as an int >= ``minimum``; bools and non-integers are TypeErrors."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}.")
  if value < minimum:
    raise ValueError(f"`{name}` must be an int >= {minimum}, got {value}.")
  return int(value)


def check_positive_number(value, name: str, allow_zero: bool = False) -> float:
  """Returns ``value`` as a float, checking it is a positive (or, with ``allow_zero``,
  non-negative) finite number."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, (int, float, np.integer, np.floating)):
    raise TypeError(f"`{name}` must be a number, got {type(value).__name__}.")
  if not (np.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
    kind = "non-negative" if allow_zero else "positive"
    raise ValueError(f"`{name}` must be a {kind} finite number, got {value!r}.")
  return float(value)


def check_unit_interval(value, name: str) -> float:
  """Returns ``value`` as a float in (0, 1], or raises naming ``name``."""
  value = check_positive_number(value, name)
  if value > 1:
    raise ValueError(f"`{name}` must lie in (0, 1], got {value}.")
  return value


def as_inputs(x, name: str = "X") -> jax.Array:
  """A (points, features) array of the default float type, finite, at least 1 x 1."""
  if isinstance(x, (str, bytes)) or x is None:
    raise TypeError(f"{name} must be an array of shape (points, features), got "
                    f"{type(x).__name__}.")
  arr = as_float_array(x, name)
  assert_rank(arr, 2, name, f"{name} must have shape (points, features), got shape "
              f"{arr.shape}.")
  if arr.shape[0] < 1 or arr.shape[1] < 1:
    raise ValueError(f"{name} must have at least one point and one feature, got shape "
                     f"{arr.shape}.")
  arr = arr.astype(default_float())
  assert_finite(arr, name)
  return arr


def as_targets(y, n_points: int, name: str = "y") -> jax.Array:
  """One output per point: shape (n,) (or (n, 1), flattened), finite, default float type."""
  if isinstance(y, (str, bytes)) or y is None:
    raise TypeError(f"{name} must be an array of length {n_points}.")
  arr = as_float_array(y, name)
  if arr.ndim == 2 and arr.shape[1] == 1:
    arr = arr[:, 0]
  assert_shape(arr, (n_points,), name, f"{name} must have shape ({n_points},) or "
               f"({n_points}, 1) to match the inputs, got shape {np.shape(y)}.")
  arr = arr.astype(default_float())
  assert_finite(arr, name)
  return arr


def check_seed(seed, name: str = "seed"):
  """The seed itself, after checking it is an int or a jax PRNG key (TypeError otherwise)."""
  if isinstance(seed, (numbers.Integral, np.integer)) and not isinstance(seed, bool):
    return int(seed)
  if isinstance(seed, jax.Array):
    return seed
  raise TypeError(f"{name} must be an int or a jax PRNG key, got {type(seed).__name__}.")


def seed_key(seed, name: str = "seed") -> jax.Array:
  """A PRNG key from an int seed (or a key passed through)."""
  seed = check_seed(seed, name)
  return jax.random.PRNGKey(seed) if isinstance(seed, int) else seed


def check_fit_options(*, delta, bootstrap, confidence, max_iter) -> None:
  """Checks the options shared by the Huber fits (`fit_chinchilla`, `fit_power_law`)."""
  check_positive_number(delta, "delta")
  check_int(bootstrap, "bootstrap", minimum=0)
  check_int(max_iter, "max_iter", minimum=1)
  if not check_positive_number(confidence, "confidence") < 1:
    raise ValueError(f"`confidence` must be in (0, 1), got {confidence}.")


def check_varies(values: np.ndarray, name: str, param: str, min_distinct: int = 3) -> None:
  """Raises ValueError unless positive ``values`` take ``min_distinct`` distinct values.

  A power law in ``name`` with an offset needs that many distinct values for
  its exponent ``param`` to be identifiable; values within a relative 1e-9 of
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
  assert_shape(arr, (None, num_params), "grid", f"`grid` must have shape (starts, "
               f"{num_params}) with at least one start, got {arr.shape}.")
  if arr.shape[0] == 0:
    raise ValueError(f"`grid` must have shape (starts, {num_params}) with at "
                     f"least one start, got {arr.shape}.")
  with _as_error("`grid` must be finite."):
    chex.assert_tree_all_finite(arr)
  return arr
