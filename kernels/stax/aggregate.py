"""Aggregate: the message passing of graph neural networks over given graphs.

Each point ``x[n]`` of shape ``(*spatial, channels)`` comes with a graph on the
positions of its aggregated axes, passed to ``apply_fn`` and ``kernel_fn`` as the
keyword ``pattern``; every vertex is replaced by the weighted sum of its
predecessors, ``y[n, j] = sum_i pattern[n, i, j] x[n, i]``. The map is linear and
differs from point to point, so the covariance becomes ``A_1^T K A_2`` with the graph
of each point on its side (Du et al. 2019, "Graph Neural Tangent Kernel: Fusing Graph
Neural Networks with Graph Kernels", Sec. 4, aggregation step; neural-tangents'
``Aggregate``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from kernels.kernel import Requirements
from kernels.stax import layout
from kernels.stax.dot_general import linear_kernel
from kernels.stax.layer import Layer

IMPLEMENTATIONS = ("DENSE", "SPARSE")


def _identity(p):
  return p


@dataclasses.dataclass(frozen=True)
class AggregateLayer(Layer):
  """Graph aggregation over ``aggregate_axis`` (neural_tangents.stax.Aggregate).

  ``implementation="DENSE"``: ``pattern`` (after ``to_dense``) is a weighted adjacency
  of shape ``(batch, X_i1..X_iK, X_i1..X_iK)``, ``pattern[n, i, j]`` the weight of the
  arc from tail ``i`` to head ``j`` in point ``n``. ``"SPARSE"``: integer arcs of shape
  ``(batch, n_edges, K, 2)`` (tails, heads; ``(batch, n_edges, 2)`` when K=1), repeated
  arcs counting their repetitions and arcs with a negative head ignored; they are
  turned into the dense adjacency here (the same values as neural-tangents'
  segment sums, at the dense cost O(V^2) memory). In ``kernel_fn`` the keyword is
  neural-tangents' pair ``pattern=(pattern1, pattern2)``, the graphs of the points of x1
  and x2, and the kernel is ``A_1^T K A_2`` on the aggregated position axes (Du et al.
  2019, Sec. 4). ``pattern=(None, None)`` is the identity, as in neural-tangents; a
  missing pattern is a ValueError (neural-tangents' ``apply_fn`` would silently
  return its inputs).
  """
  aggregate_axis: Any = None
  batch_axis: int = 0
  channel_axis: int = -1
  to_dense: Optional[Callable] = _identity
  implementation: str = "DENSE"

  _uses_pattern = True
  requirements = Requirements(full_spatial=True)

  def __post_init__(self):
    impl = getattr(self.implementation, "value", self.implementation)
    if not isinstance(impl, str) or impl.upper() not in IMPLEMENTATIONS:
      raise ValueError(f"Aggregate: implementation must be one of {IMPLEMENTATIONS}, got "
                       f"{self.implementation!r}.")
    object.__setattr__(self, "implementation", impl.upper())
    if self.batch_axis != 0 or self.channel_axis != -1:
      raise ValueError(f"Aggregate: batch_axis must be 0 and channel_axis -1, got "
                       f"{self.batch_axis!r} and {self.channel_axis!r}.")
    axis = self.aggregate_axis
    if axis is not None:
      axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
      if any(not isinstance(a, (int, np.integer)) or isinstance(a, bool) for a in axes):
        raise ValueError(f"Aggregate: aggregate_axis must be None, an integer or a tuple of "
                         f"integers, got {axis!r}.")
      object.__setattr__(self, "aggregate_axis", tuple(int(a) for a in axes))
    if self.to_dense is None:
      object.__setattr__(self, "to_dense", _identity)

  def _axes(self, ndim: int, path) -> Tuple[int, ...]:
    """The aggregated axes of an ``ndim``-axis activation, as non-negative integers."""
    if self.aggregate_axis is None:
      return tuple(range(1, ndim - 1))
    axes = []
    for a in self.aggregate_axis:
      if not -ndim <= a < ndim:
        raise ValueError(f"Aggregate at {path}: aggregate_axis {a} is out of range for inputs "
                         f"with {ndim} axes.")
      a %= ndim
      if a in (0, ndim - 1):
        raise ValueError(f"Aggregate at {path}: aggregate_axis {self.aggregate_axis} names the "
                         "batch or channel axis; only spatial axes are aggregated.")
      axes.append(a)
    if len(set(axes)) != len(axes):
      raise ValueError(f"Aggregate at {path}: aggregate_axis {self.aggregate_axis} names an "
                       "axis twice.")
    return tuple(axes)

  def _dense(self, pattern, batch: int, agg_shape, path, name: str = "pattern"):
    """The dense adjacency ``(batch, *agg_shape, *agg_shape)`` of ``pattern``."""
    if self.implementation == "SPARSE":
      return _sparse_to_dense(jnp.asarray(pattern), batch, agg_shape, path, name)
    dense = jnp.asarray(self.to_dense(pattern))
    want = (batch,) + tuple(agg_shape) * 2
    if dense.shape != want:
      raise ValueError(f"Aggregate at {path}: {name} must have shape (batch, *aggregated, "
                       f"*aggregated) = {want} (after to_dense), got {dense.shape}.")
    return dense

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    pattern = ctx.pattern
    if pattern is None:
      raise ValueError(f"Aggregate at {path}: apply_fn needs the graph: pass pattern=... "
                       "(see Aggregate's implementation for its format).")
    ndim = x.ndim
    axes = self._axes(ndim, path)
    k_agg = len(axes)
    dense = self._dense(pattern, x.shape[0], [x.shape[a] for a in axes], path)
    dn = ((axes, tuple(range(1, k_agg + 1))), ((0,), (0,)))
    out = jax.lax.dot_general(x, dense.astype(x.dtype), dn)
    # lax.dot_general's order: batch, the kept axes (channels last among them), the heads.
    return jnp.moveaxis(out, (0, ndim - 1 - k_agg) + tuple(range(ndim - k_agg, ndim)),
                        (0, ndim - 1) + axes)

  def _kernel(self, k, path, ctx):
    if isinstance(k, list):
      raise ValueError("Aggregate expects a single input kernel.")
    layout.check_kernel(k, self.channel_axis, "Aggregate", path)
    pattern = ctx.pattern
    if pattern is None:
      raise ValueError(f"Aggregate at {path}: kernel_fn needs the graphs: pass "
                       "pattern=(pattern1, pattern2).")
    p1, p2 = pattern
    if p1 is None and p2 is None:
      return k
    n_sp = len(k.spatial)
    axes = self._axes(n_sp + 2, path)
    agg_shape = [k.spatial[a - 1] for a in axes]
    n1, n2 = k.nngp.shape[0], k.nngp.shape[1]
    d1 = self._dense(p1, n1, agg_shape, path, "pattern[0]")
    d2 = d1 if p2 is None else self._dense(p2, n2, agg_shape, path, "pattern[1]")
    k_agg = len(axes)
    contract = [(a, 1 + t) for t, a in enumerate(axes)]
    out_spatial = [("other", 1 + k_agg + axes.index(i)) if i in axes else ("in", i)
                   for i in range(1, n_sp + 1)]
    return linear_kernel(k, d1, d2, contract, [(0, 0)], out_spatial, p2 is None,
                         f"Aggregate at {path}")


def _sparse_to_dense(pattern, batch: int, agg_shape, path, name: str):
  """Integer arcs ``(batch, n_edges, K, 2)`` as the dense adjacency of their counts.

  As neural-tangents' segment sums read them: a head with a negative coordinate drops
  the arc; a tail with one reads the last vertex (its gather's negative index); other
  coordinates wrap around the axis.
  """
  k_agg = len(agg_shape)
  if not jnp.issubdtype(pattern.dtype, jnp.integer):
    raise ValueError(f"Aggregate at {path}: with implementation='SPARSE', {name} must hold "
                     f"integer arcs (batch, n_edges, K, 2), got dtype {pattern.dtype}.")
  if pattern.ndim < 1 or pattern.shape[-1] != 2:
    raise ValueError(f"Aggregate at {path}: {name} must end with an axis of 2 (tails, heads), "
                     f"got shape {pattern.shape}.")
  s, r = pattern[..., 0], pattern[..., 1]
  if k_agg == 1 and s.ndim == 2:
    s, r = s[..., None], r[..., None]
  if s.ndim != 3 or s.shape[2] != k_agg or s.shape[0] != batch:
    raise ValueError(f"Aggregate at {path}: with implementation='SPARSE', {name} must have "
                     f"shape (batch, n_edges, K, 2) = ({batch}, n_edges, {k_agg}, 2), got "
                     f"{pattern.shape}.")
  n_vertices = int(np.prod(agg_shape))

  def ravel(idx):
    flat = jnp.ravel_multi_index(tuple(jnp.moveaxis(idx, -1, 0)), tuple(agg_shape), mode="wrap")
    return flat, jnp.all(idx >= 0, axis=-1)

  s_flat, s_ok = ravel(s)
  r_flat, r_ok = ravel(r)
  s_flat = jnp.where(s_ok, s_flat, n_vertices - 1)
  b = jnp.broadcast_to(jnp.arange(batch)[:, None], s_flat.shape)
  counts = jnp.zeros((batch, n_vertices, n_vertices), jnp.int32)
  counts = counts.at[b, s_flat, jnp.where(r_ok, r_flat, 0)].add(r_ok.astype(jnp.int32))
  return counts.reshape((batch,) + tuple(agg_shape) * 2)


def Aggregate(aggregate_axis=None, batch_axis: int = 0,  # pylint: disable=invalid-name
              channel_axis: int = -1, to_dense: Optional[Callable] = _identity,
              implementation: str = "DENSE") -> AggregateLayer:
  """Graph aggregation (neural_tangents.stax.Aggregate, same arguments; Du et al. 2019);
  ``pattern`` is passed to ``apply_fn`` and ``kernel_fn``."""
  return AggregateLayer(aggregate_axis, batch_axis, channel_axis, to_dense, implementation)
