"""Kernels of a batch with itself (``x2=None``) from the tiles on and above the diagonal.

The kernel of n inputs with themselves is symmetric, so of the (n, n) entries of
every layer only the upper half need be computed. The fused fully-connected
program (`kernels.stax.layer.kernel`) works on the whole matrix; for n of a few
thousand this module cuts it into b x b square tiles of about `TILE` points,
computes the b (b + 1) / 2 tiles on and above the diagonal with one compiled
program (each tile is the kernel between two blocks of rows, with the diagonal
pass's variances sliced to them), and writes the others as their transposes:
(b + 1) / (2 b) of the Gram product and of the per-entry work (10/16 for n = 4000),
and each tile's elementwise chain runs on arrays small enough to stay in cache.

Used for networks whose every dual is symmetric in its two arguments (closed
forms; a quadrature's x2=None kernel is the symmetrised whole matrix instead).
The result is exactly symmetric (the lower tiles are transposes, a diagonal tile
its upper triangle mirrored) and agrees with the untiled program to rounding: a
tile's Gram entries are the same dot products, and a point paired with itself
still gets the diagonal value exactly (`kernels.kernel.row_keys`).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from kernels.kernel import Kernel

# Tile side in points. Per entry a 1000-point tile costs 0.7 of a 4000-point
# program (its chain stays in cache), and its Gram product is still a large GEMM.
TILE = 1000
# Tiling starts at two tiles per side: below it the whole matrix is one tile.
MIN_POINTS = 2 * TILE


def applies(x1, x2) -> bool:
  """Whether a kernel of ``x1`` with itself is computed in tiles: x2 None, at least
  `MIN_POINTS` points, on one device (rows sharded over several devices keep the
  program they were sharded for)."""
  if x2 is not None or x1.shape[0] < MIN_POINTS:
    return False
  sharding = getattr(x1, "sharding", None)
  return sharding is None or len(sharding.device_set) == 1


def layout(n: int):
  """``(b, s)``: b tiles per side of s points each (b s >= n, the last rows padded)."""
  b = math.ceil(n / TILE)
  return b, math.ceil(n / b)


@functools.partial(jax.jit, static_argnums=(1,))
def _pad(tree, rows: int):
  """Every per-point array of ``tree`` (axis 0 of length n, that of ``tree[0]``) with its last row repeated up
  to ``rows`` (a real input repeated: finite, in range; cropped from the result)."""
  n = tree[0].shape[0]

  def pad(v):
    if getattr(v, "ndim", 0) == 0 or v.shape[0] != n or n == rows:
      return v
    return jnp.concatenate([v, jnp.repeat(v[-1:], rows - v.shape[0], axis=0)])
  return jax.tree.map(pad, tree)


def _rows(tree, start, size: int, n: int):
  """Rows ``start:start + size`` of every per-point array of ``tree`` (length ``n``)."""
  def rows(v):
    if getattr(v, "ndim", 0) == 0 or v.shape[0] != n:
      return v
    return jax.lax.dynamic_slice_in_dim(v, start, size, axis=0)
  return jax.tree.map(rows, tree)


def tile_covs(covs: dict, r0, c0, size: int, n: int) -> dict:
  """The diagonal pass's variances for the tile of rows ``r0`` and columns ``c0``."""
  return {p: (_rows(s1, r0, size, n), _rows(s2, c0, size, n)) for p, (s1, s2) in covs.items()}


@functools.partial(jax.jit, static_argnums=(4,), donate_argnums=(0,))
def place(outs: tuple, tiles: tuple, r0, c0, diagonal: bool) -> tuple:
  """Writes each tile at rows ``r0``, columns ``c0`` of its output and its transpose at
  ``(c0, r0)`` (a diagonal tile: its upper triangle, mirrored), in place."""
  placed = []
  for out, t in zip(outs, tiles):
    if diagonal:
      s = t.shape[0]
      t = jnp.where(jnp.arange(s)[:, None] <= jnp.arange(s)[None, :], t, t.T)
    out = jax.lax.dynamic_update_slice(out, t, (r0, c0))
    if not diagonal:
      out = jax.lax.dynamic_update_slice(out, t.T, (c0, r0))
    placed.append(out)
  return tuple(placed)


def symmetric_kernel(run_tile, x1, covs, cov1) -> tuple[Kernel, jax.Array]:
  """The kernel of ``x1`` with itself from its upper tiles.

  ``run_tile(xp, covs_p, r0, c0, s)`` returns ``(kernel, finite)`` of the tile between
  the s rows of ``xp`` from ``r0`` and those from ``c0`` (the network's programs with x2
  given; `tile_inputs` cuts them inside the program). Each tile is written into the
  outputs as soon as it is computed, so memory holds the outputs and one tile. Returns
  the whole kernel (x1_is_x2) and whether every entry is finite.
  """
  n = x1.shape[0]
  b, s = layout(n)
  xp, covs_p = _pad((x1, covs), b * s)
  outs, finite, k = None, [], None
  for i in range(b):
    for j in range(i, b):
      k, f = run_tile(xp, covs_p, i * s, j * s, s)
      tiles = (k.nngp,) if k.ntk is None else (k.nngp, k.ntk)
      if outs is None:
        outs = tuple(jnp.zeros((b * s, b * s), t.dtype) for t in tiles)
      outs = place(outs, tiles, i * s, j * s, i == j)
      finite.append(f)
  if b * s != n:
    outs = tuple(o[:n, :n] for o in outs)
  whole = k.replace(nngp=outs[0], ntk=outs[1] if len(outs) > 1 else None, cov1=cov1,
                    cov2=cov1, x1_is_x2=True)
  return whole, functools.reduce(jnp.logical_and, finite)


def tile_inputs(xp, covs_p, r0, c0, s: int):
  """The two row blocks of a tile and their variances (traceable, ``r0``, ``c0`` traced)."""
  m = xp.shape[0]
  xa = jax.lax.dynamic_slice_in_dim(xp, r0, s, axis=0)
  xb = jax.lax.dynamic_slice_in_dim(xp, c0, s, axis=0)
  return xa, xb, tile_covs(covs_p, r0, c0, s, m)
