"""Fan-in layers beyond FanInSum: FanInConcat and FanInProd.

Masked inputs (``mask_constant``) as in neural-tangents 0.6.5: FanInProd masks a
position where every branch is (as FanInSum); FanInConcat concatenates the branches'
masks along its axis (``_concat_masks``), so along channels a position is masked
where it is in every branch, along a spatial axis each branch keeps its own.
Neither zeroes covariances itself (``remask_kernel=False``).
"""
from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp

from kernels.kernel import zero_masked
from kernels.stax import layout
from kernels.stax.combinators import _as_list, sum_masks
from kernels.stax.layer import Layer


def _union(tags):
  out = frozenset()
  for t in _as_list(tags, "inputs"):
    out |= t
  return out


@dataclasses.dataclass(frozen=True)
class FanInConcatLayer(Layer):
  """Concatenates a list of branches along ``axis`` of ``(n, *spatial, channels)``.

  Along channels the kernel is the channel-weighted mean of the branches' kernels;
  along a spatial axis the branches' covariances are placed block-diagonally in the
  pair of positions of that axis (independent mean-zero Gaussian branches, zero
  covariance across them), or concatenated when only equal positions are carried
  (neural-tangents' ``_concat_kernels``).
  """
  axis: int = -1

  def __post_init__(self):
    if isinstance(self.axis, bool) or not isinstance(self.axis, int):
      raise TypeError(f"FanInConcat: axis must be an int, got {self.axis!r}.")

  def _axis(self, ndim, where):
    """The axis as a non-negative index of an ``ndim``-axis activation; not the batch."""
    if not -ndim <= self.axis < ndim:
      raise ValueError(f"FanInConcat at {where}: axis={self.axis} is out of range for "
                       f"inputs with {ndim} axes.")
    a = self.axis % ndim
    if a == 0:
      raise ValueError(f"FanInConcat at {where}: axis={self.axis} is the batch axis; "
                       "concatenate along a spatial or the channel axis.")
    return a

  def _flow(self, tags, path, roles):
    return _union(tags)

  def _shape(self, shapes, path):
    shapes = [tuple(s) for s in _as_list(shapes, "input shapes")]
    if any(len(s) != len(shapes[0]) for s in shapes):
      raise ValueError(f"FanInConcat needs branches with equal numbers of axes, got {shapes}.")
    a = self._axis(len(shapes[0]), path)
    rest = lambda s: s[:a] + s[a + 1:]
    if any(rest(s) != rest(shapes[0]) for s in shapes):
      raise ValueError(f"FanInConcat needs branches with equal shapes except along axis="
                       f"{self.axis}, got {shapes}.")
    return shapes[0][:a] + (sum(s[a] for s in shapes),) + shapes[0][a + 1:]

  def _init(self, key, shapes, path, ctx, sampler, dtype):
    return self._shape(shapes, path), ()

  def _apply(self, params, xs, path, ctx, probes=None, record=None):
    xs = _as_list(xs, "inputs")
    a = self._axis(xs[0].ndim, path)
    self._shape([x.shape for x in xs], path)
    return jnp.concatenate(xs, axis=a)

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, xs, masks, path, ctx):
    xs = _as_list(xs, "inputs")
    y = self._apply(params, [zero_masked(x, m) for x, m in zip(xs, masks)], path, ctx)
    return y, self._concat_masks(masks, [x.shape for x in xs], self._axis(xs[0].ndim, path))

  @staticmethod
  def _concat_masks(masks, shapes, a):
    """One mask of the concatenated outputs from the branches' masks, each broadcastable
    against its branch (None: nothing masked; neural-tangents' ``_concat_masks``)."""
    if all(m is None for m in masks):
      return None
    masks = [None if m is None else jnp.broadcast_to(m, m.shape[:a] + (s[a],) + m.shape[a + 1:])
             for m, s in zip(masks, shapes)]
    ndim = len(shapes[0])
    others = [max(m.shape[i] for m in masks if m is not None) for i in range(ndim)]
    full = lambda m, s: jnp.broadcast_to(
        jnp.zeros((), bool) if m is None else m,
        tuple(s[a] if i == a else others[i] for i in range(ndim)))
    return jnp.concatenate([full(m, s) for m, s in zip(masks, shapes)], axis=a)

  def _kernel(self, ks, path, ctx):
    ks = _as_list(ks, "kernels")
    ndim = len(ks[0].spatial) + 2
    a = self._axis(ndim, path)
    if len(ks) == 1:
      return ks[0]
    layout.check_branches(ks, "FanInConcat", path)
    # ``axis`` is read in the activations' layout; the kernel's positions are channels last.
    a = layout.to_channels_last_axis(a, ndim, ks[0].channel_axis % ndim)
    if a == len(ks[0].spatial) + 1:
      k = self._concat_channels(ks, path)
      return k.replace(mask1=sum_masks([b.mask1 for b in ks]),
                       mask2=sum_masks([b.mask2 for b in ks]))
    k = self._concat_spatial(ks, path, a - 1)
    if all(b.mask1 is None for b in ks):
      return k
    cat = lambda ms, ns: jnp.concatenate(
        [jnp.zeros((n,) + b.spatial, bool) if m is None else m for m, n, b in zip(ms, ns, ks)],
        axis=a)
    n1 = [b.nngp.shape[0] for b in ks]
    n2 = [b.nngp.shape[1] for b in ks]
    return k.replace(mask1=cat([b.mask1 for b in ks], n1), mask2=cat([b.mask2 for b in ks], n2))

  def _concat_channels(self, ks, path):
    """Channel-weighted mean of the branches' kernels (neural-tangents' FanInConcat)."""
    if any(k.spatial != ks[0].spatial or k.diagonal_spatial != ks[0].diagonal_spatial
           for k in ks):
      raise ValueError("FanInConcat needs branches with equal spatial shapes, got "
                       f"{[k.spatial for k in ks]}.")
    widths = [k.width for k in ks]
    w = [1.0] * len(ks) if len(set(widths)) == 1 else [float(x) for x in widths]
    total = sum(w)
    mix = lambda mats: sum(wi * m for wi, m in zip(w, mats)) / total
    ntks = [k.ntk for k in ks]
    cov1 = mix([k.cov1 for k in ks])
    return ks[0].replace(nngp=mix([k.nngp for k in ks]),
                         ntk=None if any(t is None for t in ntks) else mix(ntks),
                         cov1=cov1, cov2=cov1 if ks[0].x1_is_x2 else mix([k.cov2 for k in ks]),
                         width=sum(widths), is_gaussian=False, source=("concat", path),
                         covs=None)

  def _concat_spatial(self, ks, path, i):
    """Spatial axis ``i``: independent branches, block-diagonal in that axis's positions."""
    k0 = ks[0]
    rest = lambda k: k.spatial[:i] + k.spatial[i + 1:]
    if any(rest(k) != rest(k0) or k.width != k0.width or
           k.diagonal_spatial != k0.diagonal_spatial for k in ks):
      raise ValueError(f"FanInConcat at {path} needs branches with equal shapes except along "
                       f"axis={self.axis}, got spatial shapes {[k.spatial for k in ks]} and "
                       f"channels {[k.width for k in ks]}.")
    if not all(k.is_gaussian for k in ks):
      raise ValueError(f"FanInConcat at {path} along the spatial axis={self.axis} needs "
                       "mean-zero Gaussian branches (each ending in an affine layer such as "
                       "Dense or Conv).")
    sources = [k.source for k in ks]
    if len(set(sources)) != len(sources):
      raise ValueError(f"FanInConcat at {path} along the spatial axis={self.axis} needs "
                       "independent branches, but two share the same last affine layer.")
    full = not k0.diagonal_spatial

    def cat(mats, batch_ndim):
      if full:
        ax = batch_ndim + 2 * i  # first position of the axis; the second follows it
        sizes = [m.shape[ax] for m in mats]
        rows = []
        for j, m in enumerate(mats):
          pads = [(0, 0)] * m.ndim
          pads[ax] = (sum(sizes[:j]), sum(sizes[j + 1:]))
          rows.append(jnp.pad(m, pads))
        return jnp.concatenate(rows, ax + 1)
      return jnp.concatenate(mats, batch_ndim + i)

    with_ntk = all(k.ntk is not None for k in ks)
    ntk = None
    if with_ntk:
      ntk = cat([jnp.broadcast_to(k.ntk, k.nngp.shape) for k in ks], 2)
    cov1 = cat([k.cov1 for k in ks], 1)
    spatial = k0.spatial[:i] + (sum(k.spatial[i] for k in ks),) + k0.spatial[i + 1:]
    return k0.replace(nngp=cat([k.nngp for k in ks], 2), ntk=ntk, cov1=cov1,
                      cov2=cov1 if k0.x1_is_x2 else cat([k.cov2 for k in ks], 1),
                      spatial=spatial, is_gaussian=True, source=("concat", path), covs=None)


def FanInConcat(axis: int = -1) -> FanInConcatLayer:  # pylint: disable=invalid-name
  """Concatenates branches along ``axis`` (neural_tangents.stax.FanInConcat): channels
  (default) or a spatial axis of channels-last inputs."""
  return FanInConcatLayer(axis)


@dataclasses.dataclass(frozen=True)
class FanInProdLayer(Layer):
  """Multiplies a list of branches elementwise."""

  def _flow(self, tags, path, roles):
    return _union(tags)

  def _shape(self, shapes, path):
    shapes = [tuple(s) for s in _as_list(shapes, "input shapes")]
    if any(s != shapes[0] for s in shapes):
      raise ValueError(f"FanInProd needs branches of equal shape, got {shapes}.")
    return shapes[0]

  def _init(self, key, shapes, path, ctx, sampler, dtype):
    return self._shape(shapes, path), ()

  def _apply(self, params, xs, path, ctx, probes=None, record=None):
    xs = _as_list(xs, "inputs")
    self._shape([x.shape for x in xs], path)
    return functools.reduce(jnp.multiply, xs)

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, xs, masks, path, ctx):
    xs = [zero_masked(x, m) for x, m in zip(_as_list(xs, "inputs"), masks)]
    return self._apply(params, xs, path, ctx), sum_masks(masks)

  def _kernel(self, ks, path, ctx):
    """Independent branches: kernels multiply, NTKs by the product rule (neural-tangents' FanInProd)."""
    ks = _as_list(ks, "kernels")
    if len(ks) == 1:
      return ks[0]
    layout.check_branches(ks, "FanInProd", path)
    if any(k.spatial != ks[0].spatial or k.width != ks[0].width for k in ks):
      raise ValueError("FanInProd needs branches of equal shape, got spatial shapes "
                       f"{[k.spatial for k in ks]} and widths {[k.width for k in ks]}.")
    sources = [k.source for k in ks]
    if len(set(sources)) != len(sources):
      raise ValueError("FanInProd's kernel needs independent branches, but two branches share "
                       "the same last affine layer.")
    nngp, ntk = 1.0, 0.0
    with_ntk = all(k.ntk is not None for k in ks)
    for k in ks:
      if with_ntk:
        ntk = ntk * k.nngp + nngp * k.ntk
      nngp = nngp * k.nngp
    cov1 = functools.reduce(jnp.multiply, [k.cov1 for k in ks])
    cov2 = cov1 if ks[0].x1_is_x2 else functools.reduce(jnp.multiply, [k.cov2 for k in ks])
    return ks[0].replace(nngp=nngp, ntk=ntk if with_ntk else None, cov1=cov1, cov2=cov2,
                         is_gaussian=False, source=("prod", path), covs=None,
                         mask1=sum_masks([k.mask1 for k in ks]),
                         mask2=sum_masks([k.mask2 for k in ks]))


def FanInProd() -> FanInProdLayer:  # pylint: disable=invalid-name
  """Multiplies branches elementwise (neural_tangents.stax.FanInProd)."""
  return FanInProdLayer()
