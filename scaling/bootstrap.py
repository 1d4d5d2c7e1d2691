"""Nonparametric bootstrap: resample weights and percentile intervals.

A resample of n runs is represented by multiplicity weights (how often each
run was drawn), so a refit is the same jitted objective with other weights and
many resamples vmap together.
"""
from typing import Sequence

import jax
import numpy as np


def resample_weights(seed: int, num_points: int, num_resamples: int
                     ) -> np.ndarray:
  """(num_resamples, num_points) multiplicities of draws with replacement."""
  if num_resamples <= 0:
    raise ValueError(f"`num_resamples` must be positive, got {num_resamples}.")
  key = jax.random.key(seed)
  idx = np.asarray(jax.random.randint(key, (num_resamples, num_points), 0,
                                      num_points))
  w = np.zeros((num_resamples, num_points), np.float64)
  np.add.at(w, (np.arange(num_resamples)[:, None], idx), 1.0)
  return w


def percentile_interval(samples, confidence: float = 0.95) -> tuple:
  """Equal-tailed percentile interval of 1-D `samples` (finite, at least one)."""
  samples = np.asarray(samples, np.float64)
  if samples.ndim != 1 or samples.size == 0:
    raise ValueError(f"`samples` must be 1-D and not empty, got shape {samples.shape}.")
  if not np.all(np.isfinite(samples)):
    raise ValueError(f"`samples` must be finite; {int(np.sum(~np.isfinite(samples)))} of "
                     f"{samples.size} are not.")
  if not 0 < confidence < 1:
    raise ValueError(f"`confidence` must lie in (0, 1), got {confidence!r}.")
  lo = 100 * (1 - confidence) / 2
  return (float(np.percentile(samples, lo)),
          float(np.percentile(samples, 100 - lo)))


def percentile_intervals(samples, names: Sequence[str],
                         confidence: float = 0.95) -> dict:
  """{name: interval} for the columns of (num_resamples, len(names)) samples."""
  samples = np.asarray(samples)
  return {k: percentile_interval(samples[:, j], confidence)
          for j, k in enumerate(names)}
