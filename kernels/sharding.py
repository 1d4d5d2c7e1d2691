"""Kernels of many inputs: blocks of ``batch_size`` points, each sharded over devices.

For fully-connected networks each kernel entry depends only on its pair of
inputs, so the (n1, n2) kernel is computed block by block, and inside a block the
rows of ``x1`` are split over a 1-D device mesh with the public `jax.sharding`
API (XLA partitions the Gram product and the elementwise layer maps). The same
code runs on one CPU, on several accelerators and, after
``jax.distributed.initialize()``, over several hosts (inputs are placed with
`jax.make_array_from_callback`, which each process answers for its own devices).
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from kernels import validation
from kernels.kernel import input_kernel
from kernels.stax.layer import KernelFn, _namedtuple, canonicalize_get, diagonal_pass, matrix_pass


def _place(x: np.ndarray, sharding) -> jax.Array:
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


@functools.lru_cache(maxsize=64)
def _block_fn(layer, need_ntk: bool, mesh: Mesh):
  rows = NamedSharding(mesh, PartitionSpec("batch", None))
  rep = NamedSharding(mesh, PartitionSpec())
  vec_rows = NamedSharding(mesh, PartitionSpec("batch"))

  def block(x1, x2, covs):
    k = matrix_pass(layer, x1, x2, need_ntk, covs)
    return k.nngp, k.ntk

  def fn(x1, x2, covs):
    cov_shardings = {p: (vec_rows, rep) for p in covs}
    jitted = jax.jit(block, in_shardings=(rows, rep, cov_shardings),
                     out_shardings=(rows, rows if need_ntk else None))
    return jitted(x1, x2, covs)

  return fn


def batch(kernel_fn: KernelFn, batch_size: int = 0, devices: Optional[Sequence] = None):
  """Returns ``kernel_fn(x1, x2=None, get=None)`` computed in blocks over a device mesh.

  Returns arrays (``get`` a string), or a named tuple with ``nngp`` and ``ntk``.

  Args:
    kernel_fn: the ``kernel_fn`` of a `kernels.stax` network.
    batch_size: points per block along each axis (0: one block). Must be a multiple
      of the number of devices.
    devices: devices of the mesh (default: all of ``jax.devices()``).
  """
  if not isinstance(kernel_fn, KernelFn):
    raise TypeError("batch needs the kernel_fn of a kernels.stax network.")
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
    raise ValueError(f"batch_size must be a non-negative integer, got {batch_size!r}.")
  devs = list(jax.devices() if devices is None else devices)
  if batch_size and batch_size % len(devs):
    raise ValueError(f"batch_size ({batch_size}) must be a multiple of the device count "
                     f"({len(devs)}).")
  mesh = Mesh(np.asarray(devs), ("batch",))
  layer = kernel_fn.layer

  def batched(x1, x2=None, get=None):
    get_t, single = canonicalize_get(get)
    x1, x2 = validation.check_inputs(x1, x2)
    need_ntk = get_t is None or "ntk" in get_t
    a = np.asarray(x1)
    b = a if x2 is None else np.asarray(x2)
    n1, n2 = a.shape[0], b.shape[0]
    bs2 = batch_size or n2
    # Row blocks hold a multiple of the device count; x1 is padded to whole blocks.
    step1 = batch_size or -(-n1 // len(devs)) * len(devs)
    pad1 = (-n1) % step1
    a_pad = np.concatenate([a, np.repeat(a[-1:], pad1, 0)]) if pad1 else a
    rows = NamedSharding(mesh, PartitionSpec("batch", None))
    rep = NamedSharding(mesh, PartitionSpec())
    fn = _block_fn(layer, need_ntk, mesh)
    nngp_rows, ntk_rows = [], []
    for i in range(0, a_pad.shape[0], step1):
      xa = _place(a_pad[i:i + step1], rows)
      nn_cols, nt_cols = [], []
      for j in range(0, n2, bs2):
        xb = _place(b[j:j + bs2], rep)
        covs, _, _ = diagonal_pass(layer, a_pad[i:i + step1], b[j:j + bs2])
        nngp, ntk = fn(xa, xb, covs)
        nn_cols.append(nngp)
        nt_cols.append(ntk)
      nngp_rows.append(jnp.concatenate(nn_cols, axis=1))
      if need_ntk:
        ntk_rows.append(jnp.concatenate(nt_cols, axis=1))
    nngp = jnp.concatenate(nngp_rows, axis=0)[:n1]
    ntk = jnp.concatenate(ntk_rows, axis=0)[:n1] if need_ntk else None
    vals = {"nngp": nngp, "ntk": ntk}
    out = tuple(vals[g] for g in (get_t or ("nngp", "ntk")))
    if get_t is None:
      return _namedtuple(("nngp", "ntk"))(*out)
    return out[0] if single else _namedtuple(get_t)(*out)

  return batched
