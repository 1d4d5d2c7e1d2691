"""``kernels.batch``: kernels of many inputs in tiles, over devices and hosts, to memory or disk.

neural-tangents' ``batch(kernel_fn, batch_size, device_count, store_on_device)``
with its semantics, plus what its users missed: padding for batch sizes that do
not divide n, an output streamed tile by tile to a NumPy memmap (so a kernel
larger than memory completes), progress (tqdm), and resumption after an
interruption (finished tiles are recorded on disk and not recomputed).

How it runs. The (n1, n2) kernel is cut into square tiles of ``batch_size``
points (rounded up to a multiple of the device count). Each tile is one call of
``kernel_fn`` on its rows and columns, so every layer of the stax works (spatial
inputs are tiled along their batch axis). Inside a tile the rows are split over
a 1-D mesh of the devices with ``jax.sharding.NamedSharding``; ``kernel_fn``'s
jitted programs follow that sharding. With several processes
(``jax.distributed.initialize()``), the tiles are dealt out to the processes,
each computing on its own devices; they meet in the shared memmap (on a file
system they all see) or, for in-memory results, in an all-gather. For
``x2=None`` only the tiles on and above the diagonal are computed; the others
are their transposes, so the result is exactly symmetric.

Peak memory is the output (in memory, or none with a memmap) plus one tile's
working set, independent of n.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from kernels import validation

__all__ = ["batch"]

_KINDS = ("nngp", "ntk")


def _canonical_get(get):
  if get is None:
    return _KINDS, None
  if isinstance(get, str):
    if get not in _KINDS:
      raise ValueError(f"get must name kernels among {_KINDS}, got {get!r}.")
    return (get,), "single"
  gets = tuple(get)
  if not gets or any(g not in _KINDS for g in gets):
    raise ValueError(f"get must name kernels among {_KINDS}, got {get!r}.")
  return gets, "tuple"


def _pack(values: dict, gets, mode):
  if mode == "single":
    return values[gets[0]]
  import collections  # pylint: disable=g-import-not-at-top
  return collections.namedtuple("Kernel", gets)(*(values[g] for g in gets))


def _pad_rows(a: np.ndarray, n: int) -> np.ndarray:
  """``a`` with its last row repeated up to ``n`` rows (a repeated real input keeps every
  kernel entry finite and in range; the padded rows are cropped from the result)."""
  if a.shape[0] == n:
    return a
  return np.concatenate([a, np.repeat(a[-1:], n - a.shape[0], axis=0)])


def _fingerprint(kernel_fn, a, b, gets, tile, dtype, kwargs=None) -> str:
  h = hashlib.sha256()
  layer = getattr(kernel_fn, "layer", None)  # a stax network: its description
  name = repr(layer) if layer is not None else (
      f"{getattr(kernel_fn, '__module__', '')}.{getattr(kernel_fn, '__qualname__', '')}")
  h.update(name.encode())
  for arr in (a, b):
    if arr is None:
      h.update(b"none")
      continue
    h.update(str(arr.shape).encode())
    h.update(np.ascontiguousarray(arr).tobytes())
  h.update(f"{gets}{tile}{dtype}".encode())
  for name, value in sorted((kwargs or {}).items()):  # kernel keywords: mask_constant, pattern
    h.update(name.encode())
    for leaf in jax.tree_util.tree_leaves(value):
      leaf = np.asarray(leaf)
      h.update(f"{leaf.shape}{leaf.dtype}".encode())
      h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


def _tile_keywords(kwargs: dict, ra: int, ca, tile: int, same_inputs: bool) -> dict:
  """The kernel keywords of one tile: a graph ``pattern=(pattern1, pattern2)`` (one graph
  per point, leading axis n1 and n2) is cut to the tile's rows and columns (padded like the
  inputs, by repeating the last point's graph); every other keyword is the same for all
  tiles (e.g. ``mask_constant``). ``ca`` None: a diagonal tile of x2=None, whose
  ``pattern2`` is None; off the diagonal of x2=None both sides are x1's graphs."""
  out = dict(kwargs)
  pattern = kwargs.get("pattern")
  if pattern is not None:
    if not isinstance(pattern, (tuple, list)) or len(pattern) != 2:
      raise ValueError("pattern must be a pair (pattern1, pattern2), got "
                       f"{type(pattern).__name__}.")
    p1, p2 = pattern
    if same_inputs:
      p2 = p1
    cut = lambda arr, start: None if arr is None else _pad_rows(
        np.asarray(arr)[start:start + tile], tile)
    out["pattern"] = (cut(p1, ra), None if ca is None else cut(p2, ca))
  return out


class _DiskState:
  """The memmap outputs and the record of finished tiles in one folder (atomic writes)."""

  def __init__(self, folder: pathlib.Path, fingerprint: str, gets, shape, dtype, n_tiles, create):
    self.folder = folder
    meta = dict(fingerprint=fingerprint, get=list(gets), shape=list(shape),
                dtype=np.dtype(dtype).name, n_tiles=n_tiles)
    meta_path = folder / "batch.json"
    # One record per process (no two processes write the same file); read as their union.
    self.n_tiles = n_tiles
    self.done_path = folder / ("tiles_done.npy" if jax.process_count() == 1 else
                               f"tiles_done.p{jax.process_index()}.npy")
    fresh = True
    if meta_path.exists():
      old = json.loads(meta_path.read_text())
      if old != meta:
        raise ValueError(f"memmap_dir {folder} holds a different computation (other inputs, "
                         f"network, get or batch_size); choose another folder or empty it.")
      fresh = not all((folder / f"{g}.npy").exists() for g in gets)
    if create and fresh:
      folder.mkdir(parents=True, exist_ok=True)
      for g in gets:
        np.lib.format.open_memmap(folder / f"{g}.npy", mode="w+", dtype=dtype,
                                  shape=tuple(shape)).flush()
      for stale in folder.glob("tiles_done*.npy"):
        stale.unlink()
      self._write_done(np.zeros(n_tiles, bool))
      tmp = meta_path.with_suffix(".tmp")
      tmp.write_text(json.dumps(meta))
      os.replace(tmp, meta_path)

  def open(self, gets, mode):
    return {g: np.load(self.folder / f"{g}.npy", mmap_mode=mode) for g in gets}

  def writers(self, gets):
    """Per kernel, a function writing a block at (row, col) with positioned writes: the
    pages go to the file through the page cache, not into this process's memory."""
    out = {}
    for g in gets:
      m = np.load(self.folder / f"{g}.npy", mmap_mode="r")
      offset, (_, n2), dtype = m.offset, m.shape, m.dtype
      del m
      fd = os.open(self.folder / f"{g}.npy", os.O_WRONLY)

      def write(r0, c0, block, fd=fd, offset=offset, n2=n2, dtype=dtype):
        block = np.ascontiguousarray(block, dtype)
        for r in range(block.shape[0]):
          os.pwrite(fd, block[r].tobytes(), offset + ((r0 + r) * n2 + c0) * dtype.itemsize)

      out[g] = (write, fd)
    return out

  def done(self) -> np.ndarray:
    done = np.zeros(self.n_tiles, bool)
    for path in self.folder.glob("tiles_done*.npy"):
      if ".tmp" not in path.name:
        done |= np.load(path)
    return done

  def _write_done(self, done):
    tmp = self.done_path.with_name(self.done_path.stem + ".tmp.npy")
    np.save(tmp, done)
    os.replace(tmp, self.done_path)

  def mark(self, indices: Sequence[int]):
    done = np.load(self.done_path) if self.done_path.exists() else np.zeros(self.n_tiles, bool)
    done[list(indices)] = True
    self._write_done(done)


@jax.jit
def _mirror_upper(k):
  """The upper triangle of ``k`` and its transpose: exactly symmetric, diagonal unchanged."""
  i = jnp.arange(k.shape[0])
  return jnp.where(i[:, None] <= i[None, :], k, k.T)


def _barrier(name: str):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def batch(kernel_fn: Callable, batch_size: int = 0, device_count: int = -1,
          store_on_device: bool = True, *, memmap_dir=None, progress: bool = False,
          devices: Optional[Sequence] = None):
  """Returns ``kernel_fn`` computed in tiles over devices and hosts (neural-tangents' `batch`).

  Args:
    kernel_fn: ``kernel_fn(x1, x2=None, get=None)`` of a `kernels.stax` network (or any
      function with that signature returning arrays or a named tuple of them).
    batch_size: points per tile along each axis; 0 means one tile. Need not divide n
      (inputs are padded); rounded up to a multiple of the device count.
    device_count: devices to split each tile's rows over; -1 all local devices, 0 one.
    store_on_device: keep the result on the device (``jax.Array``); False returns NumPy
      arrays on the host, filled tile by tile.
    memmap_dir: a folder; the kernels are written there as ``nngp.npy``/``ntk.npy`` NumPy
      memmaps tile by tile and returned opened read-only. A rerun with the same inputs
      resumes, skipping finished tiles. Several processes must all see this folder.
    progress: show a tqdm bar over the tiles.
    devices: an explicit list of local devices (overrides ``device_count``).

  Returns:
    ``batched(x1, x2=None, get=None)`` with ``kernel_fn``'s return conventions.
  """
  if not callable(kernel_fn):
    raise TypeError(f"kernel_fn must be a kernel function, got {type(kernel_fn).__name__}.")
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 0:
    raise ValueError(f"batch_size must be a non-negative integer, got {batch_size!r}.")
  if isinstance(device_count, bool) or not isinstance(device_count, (int, np.integer)) or (
      device_count < -1):
    raise ValueError(f"device_count must be -1, 0 or a positive integer, got {device_count!r}.")
  if devices is not None:
    devs = list(devices)
    if not devs:
      raise ValueError("devices must name at least one device.")
  else:
    local = jax.local_devices()
    if device_count > len(local):
      raise ValueError(f"device_count ({device_count}) exceeds the {len(local)} local devices.")
    devs = local if device_count == -1 else local[:max(device_count, 1)]
  mesh = Mesh(np.asarray(devs), ("batch",))
  rows = NamedSharding(mesh, PartitionSpec("batch"))
  replicated = NamedSharding(mesh, PartitionSpec())
  folder = None if memmap_dir is None else pathlib.Path(memmap_dir)

  def tile_kernels(a, b, gets, symmetric, kwargs):
    """One tile: rows of ``a`` split over the mesh, ``b`` replicated."""
    xa = jax.device_put(a, rows if a.shape[0] % len(devs) == 0 else replicated)
    xb = None if symmetric else jax.device_put(b, replicated)
    out = kernel_fn(xa, xb, gets, **kwargs)
    vals = {g: getattr(out, g) for g in gets}
    if symmetric and len(devs) > 1:  # rows on several devices: mirror the upper triangle
      vals = {g: _mirror_upper(v) for g, v in vals.items()}
    return vals

  def batched(x1, x2=None, get=None, **kwargs):
    """``kwargs``: ``kernel_fn``'s keywords (neural-tangents' ``mask_constant``, a graph
    ``pattern``), given to every tile (a pattern cut to the tile's points)."""
    gets, mode = _canonical_get(get)
    a = np.asarray(validation.as_float_array(x1, "x1"))
    b = None if x2 is None else np.asarray(validation.as_float_array(x2, "x2"))
    if a.ndim < 2 or a.shape[0] == 0:
      raise ValueError(f"x1 must have shape (n, ...) with n > 0, got {a.shape}.")
    if b is not None:
      if b.shape[1:] != a.shape[1:] or b.shape[0] == 0:
        raise ValueError(f"x2 must have shape (n2,) + {a.shape[1:]}, got {b.shape}.")
      dtype = np.promote_types(a.dtype, b.dtype)
      a, b = a.astype(dtype), b.astype(dtype)
    n1 = a.shape[0]
    n2 = n1 if b is None else b.shape[0]
    d = len(devs)
    tile = min(batch_size or max(n1, n2), max(n1, n2))  # no padding beyond the inputs
    tile = -(-tile // d) * d
    t1, t2 = -(-n1 // tile), -(-n2 // tile)
    ap = _pad_rows(a, t1 * tile)
    bp = ap if b is None else _pad_rows(b, t2 * tile)
    symmetric = b is None
    pairs = [(i, j) for i in range(t1) for j in range(t2) if not symmetric or j >= i]
    n_proc, me = jax.process_count(), jax.process_index()
    mine = [k for k in range(len(pairs)) if k % n_proc == me]
    dtype = jnp.result_type(jnp.asarray(a[:1]).dtype)
    shape = (n1, n2)

    state = None
    if folder is not None:
      fp = _fingerprint(kernel_fn, a, b, gets, tile, dtype, kwargs)
      if me == 0:
        state = _DiskState(folder, fp, gets, shape, dtype, len(pairs), create=True)
      _barrier("kernels.batch:create")
      if me != 0:
        state = _DiskState(folder, fp, gets, shape, dtype, len(pairs), create=False)
      done = state.done()
      todo = [k for k in mine if not done[k]]
      writers = state.writers(gets)
      outs = None
    else:
      todo = mine
      outs = ({g: np.zeros(shape, dtype) for g in gets}
              if (not store_on_device or n_proc > 1) else None)
      blocks = {}

    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(todo, desc="kernel tiles", disable=not progress or me != 0, unit="tile")
    finished = []
    for k in bar:
      i, j = pairs[k]
      ra, ca = i * tile, j * tile
      r1, c1 = min(ra + tile, n1), min(ca + tile, n2)
      if symmetric and i == j:
        vals = tile_kernels(ap[ra:ra + tile], None, gets, True,
                            _tile_keywords(kwargs, ra, None, tile, symmetric))
      else:
        vals = tile_kernels(ap[ra:ra + tile], bp[ca:ca + tile], gets, False,
                            _tile_keywords(kwargs, ra, ca, tile, symmetric))
      for g in gets:
        v = vals[g]
        if state is not None:
          host = np.asarray(v)[:r1 - ra, :c1 - ca]
          writers[g][0](ra, ca, host)
          if symmetric and i != j:
            writers[g][0](ca, ra, host.T)
        elif outs is not None:
          host = np.asarray(v)
          outs[g][ra:r1, ca:c1] = host[:r1 - ra, :c1 - ca]
          if symmetric and i != j:
            outs[g][ca:c1, ra:r1] = host[:r1 - ra, :c1 - ca].T
        else:
          blocks[(g, i, j)] = v
      if state is not None:
        finished.append(k)
        if len(finished) >= max(1, len(todo) // 50):  # record progress ~50 times per run
          state.mark(finished)
          finished = []
    if state is not None:
      for g in gets:
        os.close(writers[g][1])
      if finished:
        state.mark(finished)
      _barrier("kernels.batch:done")
      if me == 0:
        remaining = int(np.sum(~state.done()))
        if remaining:
          raise RuntimeError(f"{remaining} tiles of {folder} were not computed.")
      return _pack(state.open(gets, "r"), gets, mode)
    if n_proc > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      for g in gets:  # tiles are disjoint across processes: a sum assembles them
        outs[g] = np.asarray(multihost_utils.process_allgather(outs[g])).sum(0).astype(dtype)
      result = {g: jnp.asarray(outs[g]) if store_on_device else outs[g] for g in gets}
      return _pack(result, gets, mode)
    if outs is not None:
      return _pack(outs, gets, mode)
    result = {}
    for g in gets:
      grid = []
      for i in range(t1):
        row = []
        for j in range(t2):
          if symmetric and j < i:
            row.append(blocks[(g, j, i)].T)
          else:
            row.append(blocks[(g, i, j)])
        grid.append(jnp.concatenate(row, axis=1) if len(row) > 1 else row[0])
      full = jnp.concatenate(grid, axis=0) if len(grid) > 1 else grid[0]
      result[g] = full[:n1, :n2]
    return _pack(result, gets, mode)

  return batched
