"""Operations on kernels with spatial axes: windows, pooling, traces and diagonals.

A spatial kernel array has ``b`` leading batch axes (2 for ``nngp``/``ntk``, 1 for
``cov1``/``cov2``), then for each spatial axis either two position axes side by side
(full spatial covariance) or one (diagonal only); see `kernels.kernel`. A convolution
with weights shared over positions maps the covariance to its sum along the window's
diagonal, ``K'(i, i') = |w|^-1 sum_t K(s i + t, s i' + t)``, and an average pooling to
its sum over the whole window pair (Novak et al. 2019, eq. 7 and Sec. 3.1; Arora et
al. 2019, "On Exact Computation with an Infinitely Wide Neural Net", eq. 7).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from kernels.kernel import place_mask

PADDINGS = ("VALID", "SAME", "CIRCULAR")


def pads(size: int, window: int, stride: int, padding: str) -> Tuple[int, int]:
  """(low, high) padding of one axis, as ``jax.lax`` pads for ``padding``."""
  if padding == "VALID":
    return (0, 0)
  return tuple(jax.lax.padtype_to_pads((size,), (window,), (stride,), "SAME")[0])


def out_size(size: int, window: int, stride: int, padding: str) -> int:
  lo, hi = pads(size, window, stride, padding)
  return (size + lo + hi - window) // stride + 1


def _pad(x, axes, pad, padding):
  widths = [(0, 0)] * x.ndim
  for a in axes:
    widths[a] = pad
  if padding == "CIRCULAR":
    return jnp.pad(x, widths, mode="wrap")
  return jnp.pad(x, widths)


def position_axes(ndim: int, batch_ndim: int, n_spatial: int, full: bool):
  """Per spatial axis, the tuple of its position axes in an array of ``ndim`` axes."""
  del ndim
  if full:
    return [(batch_ndim + 2 * i, batch_ndim + 2 * i + 1) for i in range(n_spatial)]
  return [(batch_ndim + i,) for i in range(n_spatial)]


def conv(x: Optional[jax.Array], batch_ndim: int, full: bool, windows: Sequence[int],
         strides: Sequence[int], padding: str) -> Optional[jax.Array]:
  """The covariance after a weight-shared convolution, unscaled: the window-diagonal
  mean ``|w|^-1 sum_t K(s i + t, s i' + t)`` (Novak et al. 2019, eq. 7)."""
  if x is None or x.ndim == 0:
    return x
  n_spatial = len(windows)
  for axes, w, s in zip(position_axes(x.ndim, batch_ndim, n_spatial, full), windows, strides):
    size = x.shape[axes[0]]
    pad = pads(size, w, s, padding)
    xp = _pad(x, axes, pad, padding)
    n_out = out_size(size, w, s, padding)
    total = None
    for t in range(w):
      sl = [slice(None)] * x.ndim
      for a in axes:
        sl[a] = slice(t, t + s * (n_out - 1) + 1, s)
      part = xp[tuple(sl)]
      total = part if total is None else total + part
    x = total * (1.0 / w)
  return x


def _window_counts(size, w, s, padding):
  """Number of non-padded positions in each window of one axis."""
  ones = np.ones(size)
  lo, hi = pads(size, w, s, padding)
  p = np.pad(ones, (lo, hi))
  n_out = out_size(size, w, s, padding)
  return np.array([p[s * i: s * i + w].sum() for i in range(n_out)])


def pool(x: Optional[jax.Array], batch_ndim: int, full: bool, windows: Sequence[int],
         strides: Sequence[int], padding: str, average: bool,
         normalize_edges: bool) -> Optional[jax.Array]:
  """The covariance after sum or average pooling: window sums over every position axis,
  divided by the window size (or, with ``normalize_edges`` and SAME padding, by the
  count of non-padded positions) for an average."""
  if x is None or x.ndim == 0:
    return x
  n_spatial = len(windows)
  for axes, w, s in zip(position_axes(x.ndim, batch_ndim, n_spatial, full), windows, strides):
    size = x.shape[axes[0]]
    pad = pads(size, w, s, padding)
    dims = [1] * x.ndim
    st = [1] * x.ndim
    pd = [(0, 0)] * x.ndim
    for a in axes:
      dims[a], st[a] = w, s
    if padding == "CIRCULAR":
      x = _pad(x, axes, pad, padding)
    else:
      for a in axes:
        pd[a] = pad
    x = jax.lax.reduce_window(x, np.zeros((), x.dtype), jax.lax.add, dims, st, pd)
    if average:
      if normalize_edges and padding == "SAME":
        counts = _window_counts(size, w, s, padding)
      else:
        counts = np.full(x.shape[axes[0]], float(w))
      inv = 1.0 / counts
      for a in axes:
        shape = [1] * x.ndim
        shape[a] = -1
        x = x * jnp.asarray(inv.reshape(shape), x.dtype)
  return x


def spatial_mean(x: Optional[jax.Array], batch_ndim: int, average: bool = True):
  """Mean (or sum) over every position axis: global pooling of a full covariance."""
  if x is None or x.ndim <= batch_ndim:
    return x
  axes = tuple(range(batch_ndim, x.ndim))
  return jnp.mean(x, axes) if average else jnp.sum(x, axes)


def diagonal(x: Optional[jax.Array], batch_ndim: int, n_spatial: int) -> Optional[jax.Array]:
  """The equal-position entries of a full spatial covariance."""
  if x is None or x.ndim == 0:
    return x
  for i in range(n_spatial):
    a = batch_ndim + i  # earlier pairs are already single axes
    x = jnp.moveaxis(jnp.diagonal(x, axis1=a, axis2=a + 1), -1, a)
  return x


def trace_mean(x: Optional[jax.Array], batch_ndim: int, n_spatial: int, full: bool):
  """Mean over positions of the equal-position entries (`Flatten`'s kernel)."""
  if x is None or x.ndim == 0:
    return x
  if full:
    x = diagonal(x, batch_ndim, n_spatial)
  return jnp.mean(x, tuple(range(batch_ndim, x.ndim))) if x.ndim > batch_ndim else x


def variances(cov: jax.Array, n_spatial: int, full: bool) -> jax.Array:
  """Per-point, per-position variances ``(n, *spatial)`` of a ``cov1``-style array."""
  return diagonal(cov, 1, n_spatial) if full else cov


def expand(q: jax.Array, batch_ndim: int, batch_slot: int, n_spatial: int, full: bool,
           pos_slot: int) -> jax.Array:
  """Places per-point variances ``(n, *spatial)`` to broadcast against a kernel array.

  ``batch_slot``: which of the ``batch_ndim`` batch axes holds the points;
  ``pos_slot``: which of the two position axes of each pair (full covariance).
  The same placement as a mask's (`kernels.kernel.place_mask`).
  """
  del n_spatial  # read from q's shape
  return place_mask(q, batch_ndim, batch_slot, full, pos_slot)


def scale_diagonal(x: Optional[jax.Array], batch_ndim: int, n_spatial: int, full: bool,
                   factor, batch_diagonal: bool) -> Optional[jax.Array]:
  """Multiplies the entries at equal positions (and, with ``batch_diagonal``, equal
  points of a ``(n, n, ...)`` array) by ``factor``."""
  if x is None or x.ndim == 0:
    return x
  mask = None
  if full:
    for axes in position_axes(x.ndim, batch_ndim, n_spatial, True):
      n = x.shape[axes[0]]
      shape = [1] * x.ndim
      shape[axes[0]], shape[axes[1]] = n, n
      m = jnp.eye(n, dtype=bool).reshape(shape)
      mask = m if mask is None else mask & m
  if batch_diagonal:
    shape = [1] * x.ndim
    shape[0], shape[1] = x.shape[0], x.shape[1]
    m = jnp.eye(x.shape[0], x.shape[1], dtype=bool).reshape(shape)
    mask = m if mask is None else mask & m
  if mask is None:
    return x * factor
  return jnp.where(mask, x * factor, x)


def swap_transpose(x: jax.Array, n_spatial: int, full: bool) -> jax.Array:
  """``K[b, a, i', i]`` from ``K[a, b, i, i']``: the kernel with its inputs exchanged."""
  perm = [1, 0]
  for i in range(n_spatial):
    if full:
      perm += [2 + 2 * i + 1, 2 + 2 * i]
    else:
      perm += [2 + i]
  return jnp.transpose(x, perm)
