"""Finite-width (empirical) NTK and NNGP of any function ``f(params, x)``.

``empirical_ntk_fn(f)`` returns ``ntk_fn(x1, x2, params)`` computing
``Theta(x1, x2) = sum_p lr_p (df(x1)/dp)(df(x2)/dp)^T`` (Jacot et al. 2018, eq. 6),
with optional per-parameter learning-rate weights so that it converges to the
parameterization-aware infinite-width NTK of `kernels.stax`. Output axes are
handled as in neural-tangents: ``trace_axes`` are averaged over (the mean of the
diagonal), ``diagonal_axes`` keep only equal output indices, the rest give pairs.

Implementations (agree to float tolerance, see tests):

* ``"jacobian"``: contract the two Jacobians leaf by leaf.
* ``"ntvp"``: NTK-vector products: one VJP at x2 and one JVP at x1 per output
  coordinate of x2 (no Jacobian of x1 is stored).
* ``"structured"``: for `kernels.stax` networks only (`kernels.empirical_structured`).
  Each Dense layer ``y = m x W`` contributes ``lr m^2 (X1 X2^T) * (G1 G2^T)``, the Gram
  matrix of its inputs times that of the cotangents at its outputs, so the cost per
  layer is O(n^2 width) rather than O(n^2 parameters); a Conv layer sums the same
  product over pairs of patches, or contracts per-example weight gradients when that
  is cheaper (Novak et al. 2022, "Fast Finite Width NTK", Sec. 3.3). Also for a Flax
  module's ``apply`` whose parameters all belong to ``nn.Dense`` and ``nn.Conv``, with
  ``vmap_axes=0`` (`kernels.empirical_structured_flax`). Networks with attention or
  repeat, other Flax layers with parameters, or outputs with more than one axis use
  NTK-vector products.
"""
from __future__ import annotations

import functools
import string
from typing import Callable, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

from kernels import empirical_structured
from kernels import validation
from kernels.stax.layer import ApplyFn

IMPLEMENTATIONS = ("jacobian", "ntvp", "structured")
# neural-tangents' NtkImplementation values (JACOBIAN_CONTRACTION = 1, NTK_VECTOR_PRODUCTS
# = 2, STRUCTURED_DERIVATIVES = 3), so code written for it runs unchanged.
NT_IMPLEMENTATIONS = {1: "jacobian", 2: "ntvp", 3: "structured"}
Axes = Union[int, Sequence[int]]


def _canonical_axes(axes: Axes, ndim: int, name: str) -> Tuple[int, ...]:
  """Output axes (excluding the batch axis 0) as non-negative indices into the output."""
  if isinstance(axes, int):
    axes = (axes,)
  out = []
  for a in axes:
    if not isinstance(a, int):
      raise TypeError(f"{name} must hold integers, got {a!r}.")
    c = a % ndim if -ndim <= a < ndim else None
    if c is None or c == 0:
      raise ValueError(f"{name} entry {a} is not an output axis of outputs with {ndim} axes "
                       "(axis 0 is the batch).")
    out.append(c)
  return tuple(sorted(set(out)))


def _contraction(out_ndim: int, trace: Tuple[int, ...], diag: Tuple[int, ...], extra: str):
  """Einsum strings for a kernel between (n1, *O, extra) and (n2, *O, extra) blocks.

  Returns (spec1, spec2, out_spec, normaliser axes) with output axes ordered as
  (n1, n2, pairs of the remaining output axes, diagonal axes).
  """
  letters = iter(string.ascii_letters.replace("i", "").replace("j", ""))
  s1, s2, pairs, diags = ["i"], ["j"], [], []
  for ax in range(1, out_ndim):
    if ax in trace:
      c = next(letters)
      s1.append(c)
      s2.append(c)
    elif ax in diag:
      c = next(letters)
      s1.append(c)
      s2.append(c)
      diags.append(c)
    else:
      c1, c2 = next(letters), next(letters)
      s1.append(c1)
      s2.append(c2)
      pairs += [c1, c2]
  e = "".join(next(letters) for _ in extra)
  return "".join(s1) + e, "".join(s2) + e, "ij" + "".join(pairs) + "".join(diags)


def _trace_size(shape, trace):
  size = 1
  for ax in trace:
    size *= shape[ax]
  return size


def _check_axes(trace_axes, diagonal_axes, out_ndim):
  trace = _canonical_axes(trace_axes, out_ndim, "trace_axes")
  diag = _canonical_axes(diagonal_axes, out_ndim, "diagonal_axes")
  if set(trace) & set(diag):
    raise ValueError(f"trace_axes {trace_axes} and diagonal_axes {diagonal_axes} overlap.")
  return trace, diag


def _check_params(params) -> None:
  if params is None or not jax.tree_util.tree_leaves(params):
    raise TypeError("params must be the network's parameters (a pytree of arrays, e.g. from "
                    f"init_fn), got {params!r}.")


def _lr_leaves(params, learning_rates):
  leaves = jax.tree_util.tree_leaves(params)
  if learning_rates is None:
    return [1.0] * len(leaves)
  lrs = jax.tree_util.tree_leaves(learning_rates)
  if len(lrs) != len(leaves):
    raise ValueError(f"learning_rates has {len(lrs)} leaves, params has {len(leaves)}.")
  return lrs


def _jacobian_ntk(f, x1, x2, params, trace, diag, lrs, vmap_axes):
  def jac(x):
    if vmap_axes is None:
      return jax.jacrev(f)(params, x)
    single = lambda p, xi: f(p, jnp.expand_dims(xi, vmap_axes))[0]
    return jax.vmap(jax.jacrev(single), in_axes=(None, vmap_axes))(params, x)

  j1 = jax.tree_util.tree_leaves(jac(x1))
  j2 = j1 if x2 is None else jax.tree_util.tree_leaves(jac(x2))
  out_ndim = None
  total = 0.0
  for a, b, lr, p in zip(j1, j2, lrs, jax.tree_util.tree_leaves(params)):
    out_ndim = a.ndim - p.ndim
    s1, s2, so = _contraction(out_ndim, trace, diag, "p" * p.ndim)
    total = total + lr * jnp.einsum(f"{s1},{s2}->{so}", a, b)
  shape = jax.eval_shape(f, params, x1).shape
  return total / _trace_size(shape, trace)


def _ntvp_ntk(f, x1, x2, params, trace, diag, lrs):
  x2 = x1 if x2 is None else x2
  treedef = jax.tree_util.tree_structure(params)
  out2, vjp2 = jax.vjp(lambda p: f(p, x2), params)
  out_shape1 = jax.eval_shape(f, params, x1).shape
  basis = jnp.eye(out2.size, dtype=out2.dtype).reshape((out2.size,) + out2.shape)

  def column(cot):
    (g,) = vjp2(cot)
    g = jax.tree_util.tree_unflatten(
        treedef, [lr * leaf for lr, leaf in zip(lrs, jax.tree_util.tree_leaves(g))])
    return jax.jvp(lambda p: f(p, x1), (params,), (g,))[1]

  cols = jax.lax.map(column, basis)  # (n2 * O2, n1, *O1)
  full = cols.reshape(out2.shape + out_shape1)
  # full[j, o2..., i, o1...] -> ntk via identity contraction with (n1,*O) x (n2,*O) layout.
  nd = len(out_shape1)
  full = jnp.moveaxis(full, tuple(range(nd)), tuple(range(nd, 2 * nd)))  # (i, o1.., j, o2..)
  s1, s2, so = _contraction(nd, trace, diag, "")
  spec = s1 + s2
  return jnp.einsum(f"{spec}->{so}", full) / _trace_size(out_shape1, trace)


def _dense_layers(layer, path=()):
  from kernels.stax.dense import Dense  # local import: avoids a cycle at import time
  if isinstance(layer, Dense):
    return {path: layer}
  out = {}
  for i, child in enumerate(layer._children()):
    out.update(_dense_layers(child, path + (i,)))
  return out


def _params_at(params, path):
  for i in path:
    params = params[i]
  return params


def empirical_ntk_fn(f: Callable, trace_axes: Axes = (-1,), diagonal_axes: Axes = (),
                     vmap_axes: Optional[int] = None, implementation: str = "jacobian",
                     learning_rates=None) -> Callable:
  """Returns ``ntk_fn(x1, x2, params, **kwargs)``, the empirical NTK of ``f(params, x)``.

  Args:
    f: the function; a `kernels.stax` ``apply_fn`` or any JAX function, e.g. a Flax
      module's ``apply``.
    trace_axes: output axes averaged over (neural-tangents semantics).
    diagonal_axes: output axes on which only the diagonal is kept.
    vmap_axes: batch axis of the inputs to vmap the Jacobian over (``"jacobian"`` only).
    implementation: ``"jacobian"``, ``"ntvp"`` or ``"structured"`` (or neural-tangents'
      integer values 1, 2, 3 of the same methods; its AUTO, 0, is refused) (stax networks, and
      a Flax module's ``apply`` made of ``nn.Dense`` and ``nn.Conv`` layers with
      ``vmap_axes=0``, which states that examples do not interact, as in neural-tangents).
    learning_rates: optional pytree like ``params`` of per-leaf learning-rate factors
      (`kernels.optim.learning_rates`); the NTK is then the learning-rate-weighted one.
  """
  if not callable(f):
    raise TypeError(f"f must be callable, got {type(f).__name__}.")
  if isinstance(implementation, int) and not isinstance(implementation, bool):
    implementation = NT_IMPLEMENTATIONS.get(int(implementation), implementation)
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS} (or neural-tangents' "
                     f"1, 2, 3), got {implementation!r}.")
  flax_module = None
  if implementation == "structured" and not isinstance(f, ApplyFn):
    from kernels import empirical_structured_flax  # pylint: disable=g-import-not-at-top
    flax_module = empirical_structured_flax.module_of(f)
    if flax_module is None:
      raise ValueError("implementation='structured' needs the apply_fn of a kernels.stax "
                       "network or a Flax module's apply.")

  @functools.partial(jax.jit, static_argnames=("kw_items",))
  def _ntk(x1, x2, params, kw_items=()):
    g = (lambda p, x: f(p, x, **dict(kw_items))) if kw_items else f
    out_ndim = len(jax.eval_shape(g, params, x1).shape)
    trace, diag = _check_axes(trace_axes, diagonal_axes, out_ndim)
    if implementation == "structured" and empirical_structured.supports(f):
      out = empirical_structured.structured_ntk(f, x1, x2, params, trace, diag, learning_rates)
      if out is not None:
        return out
    if flax_module is not None and vmap_axes == 0 and not kw_items:
      from kernels import empirical_structured_flax  # pylint: disable=g-import-not-at-top
      out = empirical_structured_flax.structured_ntk(flax_module, x1, x2, params, trace, diag,
                                                     learning_rates)
      if out is not None:
        return out
    # Attention, repeat, outputs with more than one axis: NTK-vector products, same values.
    lrs = _lr_leaves(params, learning_rates)
    if implementation == "jacobian":
      return _jacobian_ntk(g, x1, x2, params, trace, diag, lrs, vmap_axes)
    return _ntvp_ntk(g, x1, x2, params, trace, diag, lrs)

  def ntk_fn(x1, x2, params, **kwargs):
    _check_params(params)
    x1 = validation.as_float_array(x1, "x1")
    x2 = None if x2 is None else validation.as_float_array(x2, "x2")
    if x2 is not None and x2.shape[1:] != x1.shape[1:]:
      raise ValueError(f"x1 and x2 must have the same feature shape, got {x1.shape} and "
                       f"{x2.shape}.")
    return _ntk(x1, x2, params, kw_items=tuple(sorted(kwargs.items())))

  return ntk_fn


def empirical_nngp_fn(f: Callable, trace_axes: Axes = (-1,),
                      diagonal_axes: Axes = ()) -> Callable:
  """Returns ``nngp_fn(x1, x2, params)``: the output second moment ``f(x1) f(x2)^T`` of one network."""
  if not callable(f):
    raise TypeError(f"f must be callable, got {type(f).__name__}.")

  @jax.jit
  def _nngp(x1, x2, params):
    y1 = f(params, x1)
    y2 = y1 if x2 is None else f(params, x2)
    trace, diag = _check_axes(trace_axes, diagonal_axes, y1.ndim)
    s1, s2, so = _contraction(y1.ndim, trace, diag, "")
    return jnp.einsum(f"{s1},{s2}->{so}", y1, y2) / _trace_size(y1.shape, trace)

  def nngp_fn(x1, x2, params):
    _check_params(params)
    return _nngp(validation.as_float_array(x1, "x1"),
                 None if x2 is None else validation.as_float_array(x2, "x2"), params)

  return nngp_fn


def conditional_nngp_fn(apply_fn: ApplyFn) -> Callable:
  """Returns ``nngp_fn(x1, x2, params)``: the NNGP of a finite network given its hidden layers.

  The output covariance over the readout layer's random weights with the hidden
  layers fixed, ``s_w^2 h(x1) h(x2)^T + s_b^2`` (Lee et al. 2018, eq. 4, at finite
  width); it converges to ``kernel_fn``'s NNGP like width^-1/2, whereas a single
  network's ``f(x1) f(x2)^T`` keeps an order-one sampling error.
  """
  if not isinstance(apply_fn, ApplyFn):
    raise TypeError("conditional_nngp_fn needs the apply_fn of a kernels.stax network.")
  layer = apply_fn.layer
  ctx = layer.context()
  denses = _dense_layers(layer)
  readouts = [p for p in denses if ctx.role(p).is_readout]
  if len(readouts) != 1:
    raise ValueError(f"the network must have exactly one readout Dense layer, found {len(readouts)}.")
  path = readouts[0]
  dense = denses[path]

  @jax.jit
  def nngp_fn(x1, x2, params):
    _, rec1 = apply_fn.with_intermediates(params, x1)
    h1 = rec1[path]
    h2 = h1 if x2 is None else apply_fn.with_intermediates(params, x2)[1][path]
    W, b = _params_at(params, path)
    s = dense.scales(W.shape[0], path, ctx)
    var_b = 0.0 if b is None else (s.b_mult * s.b_init) ** 2
    return (s.w_mult * s.w_init) ** 2 * (h1 @ h2.T) + var_b

  return nngp_fn


def empirical_kernel_fn(f: Callable, trace_axes: Axes = (-1,), diagonal_axes: Axes = (),
                        vmap_axes: Optional[int] = None, implementation: str = "jacobian",
                        learning_rates=None) -> Callable:
  """Returns ``kernel_fn(x1, x2, get, params)`` giving empirical ``nngp`` and/or ``ntk``."""
  from kernels.stax.layer import canonicalize_get, _namedtuple
  ntk_fn = empirical_ntk_fn(f, trace_axes, diagonal_axes, vmap_axes, implementation,
                            learning_rates)
  nngp_fn = empirical_nngp_fn(f, trace_axes, diagonal_axes)

  def kernel_fn(x1, x2=None, get=None, params=None, **kwargs):
    _check_params(params)
    get_t, single = canonicalize_get(get)
    get_t = get_t or ("nngp", "ntk")
    fns = {"nngp": lambda: nngp_fn(x1, x2, params), "ntk": lambda: ntk_fn(x1, x2, params, **kwargs)}
    out = tuple(fns[g]() for g in get_t)
    return out[0] if single else _namedtuple(get_t)(*out)

  return kernel_fn
