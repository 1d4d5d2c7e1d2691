"""DotGeneral: multiplication of the activations by a constant array.

A constant linear map of the activations ``y = F x`` acts on each channel alike, so
the covariance of the outputs is ``F K F^T`` on the positions, with the map of each
point on its side: ``K'(p, p') = sum_{q, q'} F_1(p, q) K(q, q') F_2(p', q')``
(neural-tangents' ``Kernel.dot_general``; Novak et al. 2020, "Neural Tangents: Fast and
Easy Infinite Neural Networks in Python", whose linear layers all transform kernels
this way). The same rule, with the graph of each point as ``F``, is `Aggregate`'s.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from kernels.kernel import Kernel, Requirements
from kernels.stax import layout
from kernels.stax.layer import Layer

Axes = Tuple[int, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class ConstArray:
  """A constant array held by value: hashable and compared by its shape, dtype and bytes,
  so that a layer holding it can key the compiled-program caches."""
  shape: Tuple[int, ...]
  dtype: str
  data: bytes

  @classmethod
  def of(cls, value, name: str) -> "ConstArray":
    try:
      a = np.asarray(value)
    except Exception as e:  # a traced value has no concrete bytes
      raise ValueError(f"DotGeneral: {name} must be a concrete array or number, got "
                       f"{type(value).__name__}.") from e
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
      raise ValueError(f"DotGeneral: {name} must be a numeric array, got dtype {a.dtype}.")
    if not np.all(np.isfinite(a)):
      raise ValueError(f"DotGeneral: {name} must be finite.")
    return cls(tuple(a.shape), a.dtype.str, a.tobytes(order="C"))

  @property
  def array(self) -> np.ndarray:
    return np.frombuffer(self.data, np.dtype(self.dtype)).reshape(self.shape)

  @property
  def ndim(self) -> int:
    return len(self.shape)

  def __eq__(self, other):
    return (isinstance(other, ConstArray) and self.shape == other.shape
            and self.dtype == other.dtype and self.data == other.data)

  def __hash__(self):
    return hash((self.shape, self.dtype, self.data))


def _axes(value, name: str) -> Axes:
  try:
    value = tuple(value)
    out = tuple(int(a) for a in value)
  except TypeError as e:
    raise ValueError(f"DotGeneral: dimension_numbers must be ((lhs_contracting, "
                     f"rhs_contracting), (lhs_batch, rhs_batch)) of integer tuples; {name} is "
                     f"{value!r}.") from e
  if any(not isinstance(a, (int, np.integer)) or isinstance(a, bool) for a in value):
    raise ValueError(f"DotGeneral: dimension_numbers entries must be integers; {name} is "
                     f"{value!r}.")
  return out


def _freeze_dimension_numbers(dn):
  try:
    (lc, rc), (lb, rb) = dn
  except (TypeError, ValueError) as e:
    raise ValueError("DotGeneral: dimension_numbers must be ((lhs_contracting, "
                     f"rhs_contracting), (lhs_batch, rhs_batch)), got {dn!r}.") from e
  lc, rc = _axes(lc, "lhs_contracting"), _axes(rc, "rhs_contracting")
  lb, rb = _axes(lb, "lhs_batch"), _axes(rb, "rhs_batch")
  if len(lc) != len(rc) or len(lb) != len(rb):
    raise ValueError(f"DotGeneral: dimension_numbers must pair as many lhs as rhs axes, got "
                     f"{dn!r}.")
  return ((lc, rc), (lb, rb))


def _canon(axes: Axes, ndim: int, what: str, where: str) -> Axes:
  out = []
  for a in axes:
    if not -ndim <= a < ndim:
      raise ValueError(f"{where}: dimension_numbers names axis {a} of the {what}, which has "
                       f"{ndim} axes.")
    out.append(a % ndim)
  return tuple(out)


def linear_kernel(k: Kernel, other1, other2, contract: Sequence[Tuple[int, int]],
                  batch: Sequence[Tuple[int, int]], out_spatial: Sequence[Tuple[str, int]],
                  same: bool, where: str) -> Kernel:
  """The kernel of ``y = dot_general(x, other)`` with the channels left alone.

  Axes of the activations ``x`` are numbered as ``(n, *spatial, channels)``: 0 the batch,
  ``1..k`` the spatial axes. ``contract`` and ``batch`` pair activation axes with axes
  of ``other1`` (for the points of x1) and ``other2`` (x2); an activation axis 0 paired
  in ``batch`` makes the map depend on the point (its size is that batch's). The
  output's spatial axes, in order, are ``out_spatial``: ``("in", i)`` a kept or batched
  activation axis, ``("other", j)`` a free axis of ``other``. ``same``: ``other2`` is
  ``other1`` (the kernel of x1 with itself stays one). Each kernel array is contracted
  with the map of its first point on the first position of every pair and the map of
  its second point on the second (Novak et al. 2019, eq. 7 for any linear map of the
  positions; neural-tangents' ``Kernel.dot_general``).
  """
  n_sp = len(k.spatial)
  full = not k.diagonal_spatial
  if k.diagonal_spatial and contract:
    raise ValueError(f"{where} contracts spatial axes and needs the full spatial covariance.")
  n_other = other1.ndim
  paired = {j: i for i, j in list(contract) + list(batch)}
  counter = iter(range(10 ** 6))
  side1 = {i: next(counter) for i in range(1, n_sp + 1)}
  side2 = {i: next(counter) for i in range(1, n_sp + 1)} if full else side1
  free1 = {j: next(counter) for j in range(n_other) if j not in paired}
  free2 = {j: next(counter) for j in free1} if full else free1

  def other_labels(batch_label, spatial, free):
    out = []
    for j in range(n_other):
      if j in paired:
        i = paired[j]
        out.append(batch_label if i == 0 else spatial[i])
      else:
        out.append(free[j])
    return out

  def position_labels(labels1, labels2):
    out = []
    for i in range(1, n_sp + 1):
      out += [labels1[i], labels2[i]] if full else [labels1[i]]
    return out

  def out_labels(batch_labels):
    out = list(batch_labels)
    for kind, i in out_spatial:
      l1, l2 = (side1[i], side2[i]) if kind == "in" else (free1[i], free2[i])
      out += [l1, l2] if full else [l1]
    return out

  def apply(m, o1, o2, batch_labels, b1, b2):
    if m is None or m.ndim == 0:
      return m
    return jnp.einsum(o1.astype(m.dtype), other_labels(b1, side1, free1),
                      m, list(batch_labels) + position_labels(side1, side2),
                      o2.astype(m.dtype), other_labels(b2, side2, free2),
                      out_labels(batch_labels), precision=jax.lax.Precision.HIGHEST)

  a, b = next(counter), next(counter)
  nngp = apply(k.nngp, other1, other2, (a, b), a, b)
  ntk = apply(k.ntk, other1, other2, (a, b), a, b)
  cov1 = apply(k.cov1, other1, other1, (a,), a, a)
  if k.x1_is_x2 and same:
    cov2 = cov1
  else:
    cov2 = apply(k.cov2, other2, other2, (a,), a, a)

  sizes = {}
  for kind, i in out_spatial:
    sizes[(kind, i)] = k.spatial[i - 1] if kind == "in" else other1.shape[i]
  spatial = tuple(sizes[s] for s in out_spatial)
  per_point = any(i == 0 for i, _ in batch)
  return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, spatial=spatial, covs=None,
                   x1_is_x2=k.x1_is_x2 and same,
                   keys1=None if per_point else k.keys1, keys2=None if per_point else k.keys2)


@dataclasses.dataclass(frozen=True)
class DotGeneralLayer(Layer):
  """``lax.dot_general`` of the activations with a constant array (neural_tangents.stax.DotGeneral).

  ``apply_fn`` is ``lax.dot_general(x, rhs, dimension_numbers, precision)`` or
  ``lax.dot_general(lhs, x, ...)``; with neither, the identity. The kernel is ``F K F^T``
  of the map ``F`` on the positions (`linear_kernel`), the channels, of infinite width,
  untouched: the channel axis may be neither contracted nor batched, nor the batch
  axis contracted. The output must keep the batch axis first and the channels last,
  the layout every layer here reads (neural-tangents too refuses further layers
  otherwise); ``dimension_numbers`` that move them are a ValueError in ``kernel_fn``.
  """
  lhs: Optional[ConstArray] = None
  rhs: Optional[ConstArray] = None
  dimension_numbers: Any = (((), ()), ((), ()))
  precision: Any = None
  batch_axis: int = 0
  channel_axis: int = -1

  def __post_init__(self):
    if self.lhs is not None and self.rhs is not None:
      raise ValueError("DotGeneral: at most one of lhs and rhs may be given; the other factor "
                       "is the layer's inputs.")
    for name in ("lhs", "rhs"):
      v = getattr(self, name)
      if v is not None and not isinstance(v, ConstArray):
        object.__setattr__(self, name, ConstArray.of(v, name))
    object.__setattr__(self, "dimension_numbers",
                       _freeze_dimension_numbers(self.dimension_numbers))
    if self.batch_axis != 0 or self.channel_axis != -1:
      raise ValueError(f"DotGeneral: batch_axis must be 0 and channel_axis -1, got "
                       f"{self.batch_axis!r} and {self.channel_axis!r}.")

  @property
  def _other(self) -> Optional[ConstArray]:
    return self.lhs if self.lhs is not None else self.rhs

  @property
  def _is_lhs(self) -> bool:
    return self.lhs is not None

  @property
  def requirements(self):  # pylint: disable=invalid-overridden-method
    (lc, rc), _ = self.dimension_numbers
    input_cs = rc if self._is_lhs else lc
    return Requirements(full_spatial=self._other is not None and bool(input_cs))

  def _dot(self, x):
    other = jnp.asarray(self._other.array).astype(x.dtype)
    args = (other, x) if self._is_lhs else (x, other)
    return jax.lax.dot_general(*args, self.dimension_numbers, self.precision)

  def _shape(self, shape, path):
    if self._other is None:
      return tuple(shape)
    try:
      out = jax.eval_shape(self._dot, jax.ShapeDtypeStruct(tuple(shape), jnp.float32))
    except TypeError as e:
      raise ValueError(f"DotGeneral at {path}: dimension_numbers "
                       f"{self.dimension_numbers} do not fit inputs of shape {tuple(shape)} "
                       f"and {'lhs' if self._is_lhs else 'rhs'} of shape {self._other.shape}: "
                       f"{e}") from e
    return tuple(out.shape)

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    if self._other is None:
      return x
    self._shape(x.shape, path)
    return self._dot(x)

  def _plan(self, ndim: int, shape, path):
    """(contract, batch, out_spatial) pairs in activation/other axes (see `linear_kernel`)."""
    where = f"DotGeneral at {path}"
    other = self._other
    (lc, rc), (lb, rb) = self.dimension_numbers
    if self._is_lhs:
      other_cs, input_cs, other_bs, input_bs = lc, rc, lb, rb
    else:
      input_cs, other_cs, input_bs, other_bs = lc, rc, lb, rb
    input_cs = _canon(input_cs, ndim, "inputs", where)
    input_bs = _canon(input_bs, ndim, "inputs", where)
    other_cs = _canon(other_cs, other.ndim, "constant array", where)
    other_bs = _canon(other_bs, other.ndim, "constant array", where)
    if len(set(input_cs + input_bs)) != len(input_cs + input_bs) or \
        len(set(other_cs + other_bs)) != len(other_cs + other_bs):
      raise ValueError(f"{where}: dimension_numbers {self.dimension_numbers} name an axis twice.")
    channel = ndim - 1
    if channel in input_cs + input_bs:
      raise ValueError(f"{where}: dimension_numbers {self.dimension_numbers} contract or batch "
                       f"the channel axis ({channel}) of the inputs, whose width is infinite in "
                       "the kernel.")
    if 0 in input_cs:
      raise ValueError(f"{where}: dimension_numbers {self.dimension_numbers} contract the batch "
                       "axis 0 of the inputs; the kernel needs it kept.")
    for i, j in zip(input_cs + input_bs, other_cs + other_bs):
      if i != 0 and shape[i] != other.shape[j]:
        raise ValueError(f"{where}: dimension_numbers {self.dimension_numbers} pair input axis "
                         f"{i} (size {shape[i]}) with axis {j} of the constant array (size "
                         f"{other.shape[j]}).")
    input_free = [i for i in range(ndim) if i not in input_cs + input_bs]
    other_free = [j for j in range(other.ndim) if j not in other_cs + other_bs]
    out = [("in", i) for i in input_bs]
    if self._is_lhs:
      out += [("other", j) for j in other_free] + [("in", i) for i in input_free]
    else:
      out += [("in", i) for i in input_free] + [("other", j) for j in other_free]
    if out[0] != ("in", 0) or out[-1] != ("in", channel):
      raise ValueError(
          f"{where}: dimension_numbers {self.dimension_numbers} with "
          f"{'lhs' if self._is_lhs else 'rhs'} of shape {other.shape} move the batch axis "
          f"from first or the channels from last (output axes, as lax.dot_general orders "
          f"them: {out}); the kernel needs the batch first and the channels last (batch the "
          "batch axis 0 first, or leave the constant array no free axes after the channels).")
    return (list(zip(input_cs, other_cs)), list(zip(input_bs, other_bs)), out[1:-1])

  def _kernel(self, k, path, ctx):
    if isinstance(k, list):
      raise ValueError("DotGeneral expects a single input kernel.")
    layout.check_kernel(k, self.channel_axis, "DotGeneral", path)
    if self._other is None:
      return k
    n_sp = len(k.spatial)
    n1, n2 = k.nngp.shape[0], k.nngp.shape[1]
    shape = (n1,) + tuple(k.spatial) + (k.width,)
    contract, batch, out_spatial = self._plan(n_sp + 2, shape, path)
    for i, j in batch:
      if i == 0 and not self._other.shape[j] == n1 == n2:
        raise ValueError(f"DotGeneral at {path}: dimension_numbers {self.dimension_numbers} "
                         f"batch the batch axis with an axis of size {self._other.shape[j]}, "
                         f"but x1 and x2 have {n1} and {n2} points.")
    other = jnp.asarray(self._other.array)
    if not jnp.issubdtype(other.dtype, jnp.floating):
      other = other.astype(k.nngp.dtype)
    return linear_kernel(k, other, other, contract, batch, out_spatial, True,
                         f"DotGeneral at {path}")


def DotGeneral(*, lhs=None, rhs=None,  # pylint: disable=invalid-name
               dimension_numbers=(((), ()), ((), ())), precision=None, batch_axis: int = 0,
               channel_axis: int = -1) -> DotGeneralLayer:
  """Constant (non-trainable) ``lax.dot_general`` with ``lhs`` or ``rhs``
  (neural_tangents.stax.DotGeneral, same arguments; Novak et al. 2020)."""
  return DotGeneralLayer(lhs, rhs, dimension_numbers, precision, batch_axis, channel_axis)
