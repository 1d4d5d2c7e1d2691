"""Indexing layers: `Index` with neural-tangents' `Slice` helper."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from kernels.stax import layout
from kernels.stax.layer import Layer


class _Slice:
  """``Slice[1:10, :, ::-1]`` is ``(slice(1, 10), slice(None), slice(None, None, -1))``
  (neural_tangents.stax.Slice): the index of ``x[1:10, :, ::-1]``, to pass to `Index`."""

  def __getitem__(self, idx):
    return idx


Slice = _Slice()


def _freeze(idx):
  """A hashable form of an index: slices as ('slice', start, stop, step) tuples."""
  items = idx if isinstance(idx, tuple) else (idx,)
  out = []
  for it in items:
    if isinstance(it, slice):
      out.append(("slice", it.start, it.stop, it.step))
    elif it is Ellipsis:
      out.append(("...",))
    elif isinstance(it, (int, np.integer)) and not isinstance(it, bool):
      out.append(("int", int(it)))
    else:
      raise ValueError(f"Index: idx entries must be integers, slices or '...', got {it!r} "
                       "(build idx with stax.Slice, e.g. stax.Slice[:, 1:4, ...]).")
  if sum(1 for o in out if o[0] == "...") > 1:
    raise ValueError(f"Index: idx may contain '...' at most once, got {idx!r}.")
  return tuple(out)


@dataclasses.dataclass(frozen=True)
class IndexLayer(Layer):
  """``x[idx]`` on activations ``(n, *spatial, channels)`` (neural_tangents.stax.Index).

  The kernel indexes the points of both batches alike (a slice of the batch), each
  position axis of the spatial covariance as the activations' (both positions of a
  pair; an integer removes the spatial axis), and never the channel axis, whose width
  is infinite (only ``:`` or ``...`` there, as in neural-tangents). ``idx`` indexes the
  activations in their layout (``channel_axis=1``: NCHW).
  """
  idx: Any
  batch_axis: int = 0
  channel_axis: int = -1

  def __post_init__(self):
    object.__setattr__(self, "idx", _freeze(self.idx))
    layout.check_axes(self.batch_axis, self.channel_axis, "Index")

  def _entries(self, ndim, where):
    """One entry per axis of an ``ndim``-axis activation."""
    items = list(self.idx)
    n_explicit = sum(1 for o in items if o[0] != "...")
    if n_explicit > ndim:
      raise ValueError(f"Index at {where}: idx {self._text()} has {n_explicit} entries but "
                       f"its input has {ndim} axes.")
    if any(o[0] == "..." for o in items):
      i = [o[0] for o in items].index("...")
      items = items[:i] + [("slice", None, None, None)] * (ndim - n_explicit) + items[i + 1:]
    else:
      items = items + [("slice", None, None, None)] * (ndim - n_explicit)
    return items

  def _text(self):
    return "[" + ", ".join("..." if o[0] == "..." else str(o[1]) if o[0] == "int" else
                           ":".join("" if v is None else str(v) for v in o[1:])
                           for o in self.idx) + "]"

  def _python_index(self, ndim, where):
    out = []
    for o in self._entries(ndim, where):
      out.append(o[1] if o[0] == "int" else slice(*o[1:]))
    return tuple(out)

  def _shape(self, shape, path):
    idx = self._python_index(len(shape), path)
    for size, it in zip(shape, idx):
      if isinstance(it, int) and not -size <= it < size:
        raise ValueError(f"Index at {path}: index {it} is out of range for an axis of "
                         f"size {size} (input shape {tuple(shape)}).")
    out = np.empty(tuple(shape), dtype=bool)[idx].shape
    if len(out) < 2 or isinstance(idx[0], int):
      raise ValueError(f"Index at {path}: idx {self._text()} must keep the batch axis and "
                       "the channel axis.")
    if any(s == 0 for s in out):
      raise ValueError(f"Index at {path}: idx {self._text()} selects nothing from inputs of "
                       f"shape {tuple(shape)}.")
    return out

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    self._shape(x.shape, path)
    return x[self._python_index(x.ndim, path)]

  def _kernel(self, k, path, ctx):
    if isinstance(k, list):
      raise ValueError("Index expects a single input kernel.")
    n_sp = len(k.spatial)
    ndim = n_sp + 2
    c = layout.check_kernel(k, self.channel_axis, "Index", path)
    idx = self._python_index(ndim, path)  # (in the activations' layout; the kernel's is
    # channels last); integers remove axes, which moves the channels counted from the end.
    channel_axis = -1 - sum(not isinstance(it, int) for it in idx[c + 1:])
    idx = tuple(idx[a] for a in layout.channels_last_order(ndim, c))
    if idx[-1] != slice(None):
      raise ValueError(f"Index at {path}: idx {self._text()} indexes the channel axis, whose "
                       "width is infinite in the kernel; use ':' or '...' there.")
    if isinstance(idx[0], int):
      raise ValueError(f"Index at {path}: idx {self._text()} indexes the batch axis with an "
                       "integer; use a slice such as 3:4 to keep the axis.")
    self._shape(layout.shape_from_channels_last(
        (k.cov1.shape[0],) + tuple(k.spatial) + (k.width,), c), path)
    b = idx[0]
    sp = idx[1:-1]
    full = not k.diagonal_spatial

    def index(m, batch):
      if m is None or m.ndim == 0:
        return m
      pre = tuple([b] * batch)
      rest = []
      for it in sp:
        rest += [it, it] if full else [it]
      return m[pre + tuple(rest)]

    spatial = np.empty(tuple(k.spatial), bool)[sp].shape
    ntk = None if k.ntk is None else (k.ntk if k.ntk.ndim == 0 else index(k.ntk, 2))
    cov1 = index(k.cov1, 1)
    return k.replace(nngp=index(k.nngp, 2), ntk=ntk, cov1=cov1,
                     cov2=cov1 if k.x1_is_x2 else index(k.cov2, 1),
                     keys1=None if k.keys1 is None else k.keys1[b],
                     keys2=None if k.keys2 is None else k.keys2[b],
                     spatial=tuple(spatial), covs=None, channel_axis=channel_axis)


def Index(idx, batch_axis: int = 0, channel_axis: int = -1) -> IndexLayer:  # pylint: disable=invalid-name
  """``x[idx]`` (neural_tangents.stax.Index); build ``idx`` with `Slice`."""
  return IndexLayer(idx, batch_axis, channel_axis)

