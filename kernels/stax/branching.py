"""Fan-in layers beyond FanInSum: FanInConcat and FanInProd."""
from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp

from kernels.stax.combinators import _as_list
from kernels.stax.layer import Layer


def _union(tags):
  out = frozenset()
  for t in _as_list(tags, "inputs"):
    out |= t
  return out


@dataclasses.dataclass(frozen=True)
class FanInConcatLayer(Layer):
  """Concatenates a list of branches along the channel axis."""
  axis: int = -1

  def __post_init__(self):
    if self.axis != -1:
      raise ValueError(f"FanInConcat: axis must be -1 (channels), got {self.axis!r}; "
                       "concatenation along spatial axes is not supported.")

  def _flow(self, tags, path, roles):
    return _union(tags)

  def _shape(self, shapes, path):
    shapes = [tuple(s) for s in _as_list(shapes, "input shapes")]
    if any(s[:-1] != shapes[0][:-1] for s in shapes):
      raise ValueError(f"FanInConcat needs branches with equal non-channel axes, got {shapes}.")
    return shapes[0][:-1] + (sum(s[-1] for s in shapes),)

  def _init(self, key, shapes, path, ctx, sampler, dtype):
    return self._shape(shapes, path), ()

  def _apply(self, params, xs, path, ctx, probes=None, record=None):
    xs = _as_list(xs, "inputs")
    self._shape([x.shape for x in xs], path)
    return jnp.concatenate(xs, axis=-1)

  def _kernel(self, ks, path, ctx):
    """Channel-weighted mean of the branches' kernels (neural-tangents' FanInConcat)."""
    ks = _as_list(ks, "kernels")
    if len(ks) == 1:
      return ks[0]
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


def FanInConcat(axis: int = -1) -> FanInConcatLayer:  # pylint: disable=invalid-name
  """Concatenates branches along channels (neural_tangents.stax.FanInConcat)."""
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

  def _kernel(self, ks, path, ctx):
    """Independent branches: kernels multiply, NTKs by the product rule (neural-tangents' FanInProd)."""
    ks = _as_list(ks, "kernels")
    if len(ks) == 1:
      return ks[0]
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
                         is_gaussian=False, source=("prod", path), covs=None)


def FanInProd() -> FanInProdLayer:  # pylint: disable=invalid-name
  """Multiplies branches elementwise (neural_tangents.stax.FanInProd)."""
  return FanInProdLayer()
