"""Checks at public boundaries: a bad input gets an error that names it."""
from __future__ import annotations

import numbers
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


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
  try:
    ok = bool(np.all(np.isfinite(np.asarray(x))))
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return
  if not ok:
    raise ValueError(f"{name} contains NaN or inf.")


def check_inputs(x1, x2=None, *, finite: bool = True):
  """Validates a pair of (n, d) input batches for kernel functions; returns arrays."""
  x1 = as_float_array(x1, "x1")
  if x1.ndim != 2:
    raise ValueError(f"x1 must have shape (n, d) for fully-connected kernels, got {x1.shape}.")
  if x1.shape[0] == 0 or x1.shape[1] == 0:
    raise ValueError(f"x1 must have at least one point and one feature, got {x1.shape}.")
  if finite:
    check_finite(x1, "x1")
  if x2 is not None:
    x2 = as_float_array(x2, "x2")
    if x2.ndim != 2:
      raise ValueError(f"x2 must have shape (n, d) for fully-connected kernels, got {x2.shape}.")
    if x2.shape[1] != x1.shape[1]:
      raise ValueError(f"x1 and x2 must have the same feature dimension, got x1 {x1.shape} "
                       f"and x2 {x2.shape}.")
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
