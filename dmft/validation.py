"""Checks of user input at the public boundaries of dmft."""
import numbers

import jax
import jax.numpy as jnp
import numpy as np


def default_dtype():
  """float64 when jax_enable_x64 is set, float32 otherwise."""
  return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def as_inputs(x, name="X"):
  """Returns `x` as a 2-D float array of shape (points, features)."""
  if isinstance(x, (str, bytes)) or x is None:
    raise TypeError(f"{name} must be an array of shape (points, features), "
                    f"got {type(x).__name__}")
  arr = jnp.asarray(x)
  if not jnp.issubdtype(arr.dtype, jnp.number):
    raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
  if arr.ndim != 2:
    raise ValueError(f"{name} must have shape (points, features), got shape "
                     f"{arr.shape}")
  if arr.shape[0] < 1 or arr.shape[1] < 1:
    raise ValueError(f"{name} must have at least one point and one feature, "
                     f"got shape {arr.shape}")
  arr = arr.astype(default_dtype())
  if not bool(jnp.all(jnp.isfinite(arr))):
    raise ValueError(f"{name} contains non-finite values")
  return arr


def as_targets(y, n_points, name="y"):
  """Returns targets as a 1-D array of length `n_points` (one output)."""
  if isinstance(y, (str, bytes)) or y is None:
    raise TypeError(f"{name} must be an array of length {n_points}")
  arr = jnp.asarray(y)
  if arr.ndim == 2 and arr.shape[1] == 1:
    arr = arr[:, 0]
  if arr.ndim != 1 or arr.shape[0] != n_points:
    raise ValueError(f"{name} must have shape ({n_points},) or ({n_points}, 1) "
                     f"to match X, got shape {jnp.shape(y)}")
  arr = arr.astype(default_dtype())
  if not bool(jnp.all(jnp.isfinite(arr))):
    raise ValueError(f"{name} contains non-finite values")
  return arr


def positive_float(value, name, allow_zero=False):
  """Checks a positive (or non-negative) finite real number."""
  if isinstance(value, bool) or not isinstance(
      value, (numbers.Real, np.floating, np.integer)):
    raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
  value = float(value)
  ok = value >= 0 if allow_zero else value > 0
  if not (np.isfinite(value) and ok):
    kind = "non-negative" if allow_zero else "positive"
    raise ValueError(f"{name} must be a finite {kind} number, got {value}")
  return value


def positive_int(value, name, minimum=1):
  """Checks an integer >= minimum."""
  if isinstance(value, bool) or not isinstance(value, (numbers.Integral,
                                                        np.integer)):
    raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
  value = int(value)
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}")
  return value


def unit_interval(value, name):
  """Checks a number in (0, 1]."""
  value = positive_float(value, name)
  if value > 1:
    raise ValueError(f"{name} must lie in (0, 1], got {value}")
  return value


def seed_key(seed, name="seed"):
  """Accepts an int seed or a PRNG key and returns a key."""
  if isinstance(seed, (numbers.Integral, np.integer)) and not isinstance(
      seed, bool):
    return jax.random.PRNGKey(int(seed))
  if isinstance(seed, jax.Array):
    return seed
  raise TypeError(f"{name} must be an int or a jax PRNG key, got "
                  f"{type(seed).__name__}")
