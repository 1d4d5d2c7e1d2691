"""Combinators: serial, parallel, FanOut, FanInSum, Identity and Residual."""
from __future__ import annotations

import dataclasses
from typing import Tuple, Union

import jax
import jax.numpy as jnp

from kernels import parameterization as pz
from kernels import validation
from kernels.kernel import zero_masked
from kernels.stax import layout
from kernels.stax.layer import Layer


def _check_layers(layers, name):
  for i, l in enumerate(layers):
    if not isinstance(l, Layer):
      raise TypeError(f"{name} takes layers of kernels.stax; argument {i} is "
                      f"{type(l).__name__}.")
  return tuple(layers)


@dataclasses.dataclass(frozen=True)
class Serial(Layer):
  """Composition of layers, applied left to right.

  ``mixed_parameterizations``: whether its layers may use different
  parameterizations (otherwise refused when built).
  """
  layers: Tuple[Layer, ...]
  mixed_parameterizations: bool = False
  _fast_path = True

  def _children(self):
    return self.layers

  def _flow(self, tags, path, roles):
    for i, l in enumerate(self.layers):
      tags = l._flow(tags, path + (i,), roles)
    return tags

  def _shape(self, shape, path):
    for i, l in enumerate(self.layers):
      shape = l._shape(shape, path + (i,))
    return shape

  def _init(self, key, shape, path, ctx, sampler, dtype):
    keys = jax.random.split(key, max(len(self.layers), 1))
    params = []
    for i, (l, k) in enumerate(zip(self.layers, keys)):
      shape, p = l._init(k, shape, path + (i,), ctx, sampler, dtype)
      params.append(p)
    return shape, tuple(params)

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    if len(params) != len(self.layers):
      raise ValueError(f"params has {len(params)} entries at {path or 'the top'}, "
                       f"the network has {len(self.layers)} layers there.")
    for i, (l, p) in enumerate(zip(self.layers, params)):
      x = l._apply(p, x, path + (i,), ctx, probes, record)
    return x

  def _kernel(self, k, path, ctx):
    for i, l in enumerate(self.layers):
      k = l._kernel(k, path + (i,), ctx)
    return k

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, x, mask, path, ctx):
    if len(params) != len(self.layers):
      raise ValueError(f"params has {len(params)} entries at {path or 'the top'}, "
                       f"the network has {len(self.layers)} layers there.")
    for i, (l, p) in enumerate(zip(self.layers, params)):
      x, mask = l._apply_masked(p, x, mask, path + (i,), ctx)
    return x, mask

  def _units(self, path):
    return [u for i, l in enumerate(self.layers) for u in l._units(path + (i,))]

  def _lr(self, params, path, ctx, optimizer):
    return tuple(l._lr(p, path + (i,), ctx, optimizer)
                 for i, (l, p) in enumerate(zip(self.layers, params)))


def _parameterized(layer: Layer, path=()):
  """(path, layer) of every layer with a parameterization, not inside a serial built
  with ``mixed_parameterizations=True``."""
  out = []
  if isinstance(getattr(layer, "parameterization", None), pz.Parameterization):
    out.append((path, layer))
  if isinstance(layer, Serial) and layer.mixed_parameterizations and path:
    return out
  for i, c in enumerate(layer._children()):
    out += _parameterized(c, path + (i,))
  return out


def _width_key(p: pz.Parameterization) -> pz.Parameterization:
  """A parameterization without its name and depth scaling: what every layer must share."""
  return dataclasses.replace(p, name="", depth=None, branch_exponent=0.0)


def _reads_logit_exponent_only(layer: Layer) -> bool:
  return hasattr(layer, "n_chan_key")  # GlobalSelfAttention


def check_parameterizations(net: "Serial") -> None:
  """Refuses a network whose layers mix parameterizations (the error names them), and
  residual blocks that disagree on their depth scaling; counts the residual blocks."""
  from kernels.stax.layer import count_residual  # pylint: disable=g-import-not-at-top
  found = _parameterized(net)
  if not net.mixed_parameterizations:
    # Attention reads only its logits' exponent (its weights are neural-tangents' under
    # every parameterization): it agrees with any layer whose exponent it shares, so
    # neural-tangents' GlobalSelfAttention() sits in a "standard" network.
    plain = [(p, l) for p, l in found if not _reads_logit_exponent_only(l)]
    keys = {}
    for path, l in plain:
      keys.setdefault(_width_key(l.parameterization), []).append((path, l))
    exps = {}
    for path, l in found:
      exps.setdefault(l.parameterization.attention_exponent, []).append((path, l))
    if len(keys) > 1 or len(exps) > 1:
      groups = {}
      for path, l in found:
        groups.setdefault(l.parameterization.name, []).append((path, l))
      text = "; ".join(
          f"{name}: " + ", ".join(f"{type(l).__name__} at {p}" for p, l in ls[:4]) +
          (" ..." if len(ls) > 4 else "") for name, ls in groups.items())
      raise ValueError(f"serial: layers mix parameterizations ({text}). Use one "
                       "parameterization for every layer, or build the network with "
                       "serial(..., mixed_parameterizations=True) to mix them on purpose.")
  blocks = [(p, l) for p, l in found if isinstance(l, Residual)]
  exps = {l.parameterization.branch_exponent for _, l in blocks}
  if len(exps) > 1:
    raise ValueError(f"serial: residual blocks use different branch exponents {sorted(exps)} "
                     f"(at {[p for p, _ in blocks]}); one network has one depth scaling.")
  n = count_residual(net)
  for p, l in blocks:
    d = l.parameterization.depth
    if d is not None and d < n:
      raise ValueError(f"serial: Residual at {p} uses {l.parameterization.name}, which states "
                       f"depth={d}, but the network has {n} residual blocks already.")


def serial(*layers: Layer, mixed_parameterizations: bool = False) -> Serial:
  """Composes layers in sequence (neural_tangents.stax.serial).

  Every layer must use one parameterization (a ValueError names the layers that
  differ) unless ``mixed_parameterizations=True``. Residual blocks are counted here:
  their branch multiplier is ``L**-branch_exponent`` with L the number of `Residual`
  blocks of the whole network.
  """
  if not isinstance(mixed_parameterizations, bool):
    raise TypeError(f"mixed_parameterizations must be a bool, got {mixed_parameterizations!r}.")
  net = Serial(_check_layers(layers, "serial"), mixed_parameterizations)
  check_parameterizations(net)
  return net


@dataclasses.dataclass(frozen=True)
class Parallel(Layer):
  """Applies the i-th layer to the i-th element of a list of inputs."""
  layers: Tuple[Layer, ...]
  _fast_path = True

  def _children(self):
    return self.layers

  def _split(self, xs, what):
    if not isinstance(xs, (list, tuple)) or len(xs) != len(self.layers):
      raise ValueError(f"parallel of {len(self.layers)} layers needs a list of "
                       f"{len(self.layers)} {what} (e.g. from FanOut).")
    return xs

  def _flow(self, tags, path, roles):
    tags = self._split(tags, "inputs")
    return [l._flow(t, path + (i,), roles) for i, (l, t) in enumerate(zip(self.layers, tags))]

  def _shape(self, shapes, path):
    return [l._shape(s, path + (i,)) for i, (l, s) in enumerate(zip(self.layers, shapes))]

  def _init(self, key, shapes, path, ctx, sampler, dtype):
    shapes = self._split(shapes, "input shapes")
    keys = jax.random.split(key, len(self.layers))
    out = [l._init(k, s, path + (i,), ctx, sampler, dtype)
           for i, (l, k, s) in enumerate(zip(self.layers, keys, shapes))]
    return [o[0] for o in out], tuple(o[1] for o in out)

  def _apply(self, params, xs, path, ctx, probes=None, record=None):
    xs = self._split(xs, "inputs")
    return [l._apply(p, x, path + (i,), ctx, probes, record)
            for i, (l, p, x) in enumerate(zip(self.layers, params, xs))]

  def _kernel(self, ks, path, ctx):
    ks = self._split(ks, "kernels")
    return [l._kernel(k, path + (i,), ctx) for i, (l, k) in enumerate(zip(self.layers, ks))]

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, xs, masks, path, ctx):
    xs = self._split(xs, "inputs")
    out = [l._apply_masked(p, x, m, path + (i,), ctx)
           for i, (l, p, x, m) in enumerate(zip(self.layers, params, xs, masks))]
    return [o[0] for o in out], [o[1] for o in out]

  def _lr(self, params, path, ctx, optimizer):
    return tuple(l._lr(p, path + (i,), ctx, optimizer)
                 for i, (l, p) in enumerate(zip(self.layers, params)))


def parallel(*layers: Layer) -> Parallel:
  """Applies layers to the matching elements of a list of inputs (neural_tangents.stax.parallel)."""
  return Parallel(_check_layers(layers, "parallel"))


@dataclasses.dataclass(frozen=True)
class FanOutLayer(Layer):
  num: int
  _fast_path = True

  def _flow(self, tags, path, roles):
    return [tags] * self.num

  def _shape(self, shape, path):
    return [shape] * self.num

  def _init(self, key, shape, path, ctx, sampler, dtype):
    return [shape] * self.num, ()

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    return [x] * self.num

  def _kernel(self, k, path, ctx):
    return [k] * self.num

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, x, mask, path, ctx):
    return [x] * self.num, [mask] * self.num


def FanOut(num: int) -> FanOutLayer:  # pylint: disable=invalid-name
  """Copies the input into a list of ``num`` branches (neural_tangents.stax.FanOut)."""
  return FanOutLayer(validation.check_positive_int(num, "num"))


def _as_list(xs, what):
  if not isinstance(xs, (list, tuple)):
    raise ValueError(f"FanInSum needs a list of {what} (e.g. from parallel after FanOut).")
  return list(xs)


@dataclasses.dataclass(frozen=True)
class FanInSumLayer(Layer):
  _fast_path = True

  def _flow(self, tags, path, roles):
    out = frozenset()
    for t in _as_list(tags, "inputs"):
      out |= t
    return out

  def _shape(self, shapes, path):
    shapes = _as_list(shapes, "input shapes")
    if any(tuple(s) != tuple(shapes[0]) for s in shapes):
      raise ValueError(f"FanInSum needs branches of equal shape, got {shapes}.")
    return shapes[0]

  def _init(self, key, shapes, path, ctx, sampler, dtype):
    return self._shape(shapes, path), ()

  def _apply(self, params, xs, path, ctx, probes=None, record=None):
    xs = _as_list(xs, "inputs")
    if any(x.shape != xs[0].shape for x in xs):
      raise ValueError(f"FanInSum needs branches of equal shape, got {[x.shape for x in xs]}.")
    return sum(xs[1:], xs[0])

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, xs, masks, path, ctx):
    xs = [zero_masked(x, m) for x, m in zip(_as_list(xs, "inputs"), masks)]
    return self._apply(params, xs, path, ctx), sum_masks(masks)

  def _kernel(self, ks, path, ctx):
    """Sum of independent mean-zero Gaussian branches: kernels add (Novak et al. 2020, Sec. 3)."""
    ks = _as_list(ks, "kernels")
    if len(ks) == 1:
      return ks[0]
    layout.check_branches(ks, "FanInSum", path)
    if not all(k.is_gaussian for k in ks):
      raise ValueError("FanInSum's kernel needs every branch to end in a Dense layer (mean-zero "
                       "Gaussian outputs); a branch ends in a nonlinearity or is the raw input.")
    sources = [k.source for k in ks]
    if len(set(sources)) != len(sources):
      raise ValueError("FanInSum's kernel needs independent branches, but two branches share the "
                       "same last Dense layer (their outputs are correlated).")
    if any(k.width != ks[0].width for k in ks):
      raise ValueError(f"FanInSum needs branches of equal width, got {[k.width for k in ks]}.")
    ntks = [k.ntk for k in ks]
    ntk = None if any(t is None for t in ntks) else sum(ntks[1:], ntks[0])
    covs = None
    if any(k.covs is not None for k in ks):
      covs = {}
      for k in ks:
        covs.update(k.covs or {})
    mask1, mask2 = sum_masks([k.mask1 for k in ks]), sum_masks([k.mask2 for k in ks])
    return ks[0].replace(nngp=sum(k.nngp for k in ks), ntk=ntk, cov1=sum(k.cov1 for k in ks),
                         cov2=sum(k.cov2 for k in ks), source=("sum", path), covs=covs,
                         mask1=mask1, mask2=mask2)


def sum_masks(masks):
  """The mask of a sum of branches: masked where every branch is (neural-tangents'
  ``FanInSum``); branches without a mask are left out."""
  out = None
  for m in masks:
    if m is not None:
      out = m if out is None else out & m
  return out


def FanInSum() -> FanInSumLayer:  # pylint: disable=invalid-name
  """Sums a list of branches (neural_tangents.stax.FanInSum)."""
  return FanInSumLayer()


@dataclasses.dataclass(frozen=True)
class IdentityLayer(Layer):
  _fast_path = True

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    return x

  def _kernel(self, k, path, ctx):
    return k

  def _supports_mask(self):
    return True


def Identity() -> IdentityLayer:  # pylint: disable=invalid-name
  """The identity (neural_tangents.stax.Identity)."""
  return IdentityLayer()


@dataclasses.dataclass(frozen=True)
class Residual(Layer):
  """``x + branch_multiplier * block(x)``, the multiplier read from the parameterization.

  With `kernels.parameterization.depth_mup` the multiplier is ``L**-alpha``, L the
  number of Residual blocks of the network (counted by it; a stated depth must agree)
  (Bordelon et al. 2023, "Depthwise Hyperparameter Transfer in Residual Networks", eq. 1).
  The block must end in a Dense layer, so that its output is independent of ``x``
  and kernels add: ``K' = K + m^2 K_block``.
  """
  block: Layer
  parameterization: Union[str, pz.Parameterization] = "ntk"

  def __post_init__(self):
    if not isinstance(self.block, Layer):
      raise TypeError(f"block must be a layer of kernels.stax, got {type(self.block).__name__}.")
    object.__setattr__(self, "parameterization", pz.get(self.parameterization))

  _fast_path = True
  _is_residual = True

  @property
  def multiplier(self) -> float:
    """The multiplier for a stated depth (networks count their blocks: `branch_multiplier`)."""
    return self.parameterization.branch_multiplier

  def branch_multiplier(self, path, ctx) -> float:
    """``L**-branch_exponent``, L the number of Residual blocks in the whole network."""
    return self.parameterization.branch_multiplier_at(ctx.num_residual, f"Residual at {path}")

  def _children(self):
    return (self.block,)

  def _flow(self, tags, path, roles):
    return tags | self.block._flow(tags, path + (0,), roles)

  def _shape(self, shape, path):
    out = self.block._shape(shape, path + (0,))
    if tuple(out) != tuple(shape):
      raise ValueError(f"Residual block must keep the shape {shape}, it gives {out}.")
    return shape

  def _init(self, key, shape, path, ctx, sampler, dtype):
    out, p = self.block._init(key, shape, path + (0,), ctx, sampler, dtype)
    if tuple(out) != tuple(shape):
      raise ValueError(f"Residual block must keep the shape {shape}, it gives {out}.")
    return shape, (p,)  # params are nested like paths: the block is child 0

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    m = self.branch_multiplier(path, ctx)
    return x + m * self.block._apply(params[0], x, path + (0,), ctx, probes, record)

  def _kernel(self, k, path, ctx):
    kb = self.block._kernel(k, path + (0,), ctx)
    if not kb.is_gaussian or kb.source == k.source:
      raise ValueError("Residual's kernel needs a block that ends in a Dense layer.")
    if kb.width != k.width:
      raise ValueError(f"Residual block must keep the width {k.width}, it gives {kb.width}.")
    m2 = self.branch_multiplier(path, ctx) ** 2
    ntk = None if k.ntk is None else k.ntk + m2 * kb.ntk
    return k.replace(nngp=k.nngp + m2 * kb.nngp, ntk=ntk, cov1=k.cov1 + m2 * kb.cov1,
                     cov2=k.cov2 + m2 * kb.cov2, is_gaussian=k.is_gaussian,
                     source=("residual", path), covs=kb.covs,
                     mask1=sum_masks([k.mask1, kb.mask1]), mask2=sum_masks([k.mask2, kb.mask2]))

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, x, mask, path, ctx):
    """``x + m block(x)``, masked where both terms are (as FanInSum)."""
    m = self.branch_multiplier(path, ctx)
    x = zero_masked(x, mask)
    y, mask_b = self.block._apply_masked(params[0], x, mask, path + (0,), ctx)
    return x + m * zero_masked(y, mask_b), sum_masks([mask, mask_b])

  def _lr(self, params, path, ctx, optimizer):
    return (self.block._lr(params[0], path + (0,), ctx, optimizer),)


@dataclasses.dataclass(frozen=True)
class Repeat(Layer):
  """``layer`` applied ``n`` times with parameters of its own each time, in a compiled
  loop (`jax.lax.scan`): compile time does not grow with ``n``."""
  layer: Layer
  n: int

  def __post_init__(self):
    if not isinstance(self.layer, Layer):
      raise TypeError(f"layer must be a layer of kernels.stax, got {type(self.layer).__name__}.")
    validation.check_positive_int(self.n, "n")

  @property
  def _repeats(self):
    return self.n

  def _children(self):
    return (self.layer,)

  def _flow(self, tags, path, roles):
    out = self.layer._flow(tags, path + (0,), roles)
    if self.n > 1:  # later copies read the block's own outputs
      out = self.layer._flow(out | tags, path + (0,), roles)
    return out

  def _shape(self, shape, path):
    out = self.layer._shape(shape, path + (0,))
    if tuple(out) != tuple(shape):
      raise ValueError(f"repeat needs a layer that keeps the shape {tuple(shape)}; it gives "
                       f"{tuple(out)} (use serial(*[layer] * n)).")
    return tuple(shape)

  def _init(self, key, shape, path, ctx, sampler, dtype):
    shape = self._shape(tuple(shape), path)
    keys = jax.random.split(key, self.n)
    params = []
    for i in range(self.n):
      named = (lambda i: lambda k, p, name, s, std, dt: sampler(k, p, f"{name}_r{i}", s, std, dt))(i)
      params.append(self.layer._init(keys[i], shape, path + (0,), ctx, named, dtype)[1])
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *params)
    return shape, stacked

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    def body(h, p):
      return self.layer._apply(p, h, path + (0,), ctx), None
    y, _ = jax.lax.scan(body, x, params)
    return y

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, x, mask, path, ctx):
    def body(carry, p):
      return self.layer._apply_masked(p, carry[0], carry[1], path + (0,), ctx), None
    first = jax.tree_util.tree_map(lambda a: a[0], params)
    x, mask = self.layer._apply_masked(first, x, mask, path + (0,), ctx)
    if self.n > 1:
      rest = jax.tree_util.tree_map(lambda a: a[1:], params)
      (x, mask), _ = jax.lax.scan(body, (x, mask), rest)
    return x, mask

  def _kernel(self, k, path, ctx):
    k = self.layer._kernel(k, path + (0,), ctx)  # the first copy may change the metadata
    if self.n == 1:
      return k

    def body(kk, _):
      return self.layer._kernel(kk, path + (0,), ctx), None
    k, _ = jax.lax.scan(body, k, None, self.n - 1)
    return k

  def _lr(self, params, path, ctx, optimizer):
    one = jax.tree_util.tree_map(lambda x: x[0], params)
    return self.layer._lr(one, path + (0,), ctx, optimizer)


def repeat(layer: Layer, n: int) -> Repeat:
  """``serial(*[layer] * n)`` as a compiled loop (neural_tangents.stax.repeat)."""
  return Repeat(layer, n)
