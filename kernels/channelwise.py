"""Whether a function of a network's activations acts on each example and channel alone.

A network that ends ``Conv -> (activation, pooling) -> Dense`` reads its last
convolution through a map ``h: (n, *spatial, C) -> (n, C)`` whose output ``h[a, c]``
depends only on ``z[a, ..., c]``. Its Jacobian is then diagonal in the channel and the
per-output cotangents at the convolution factor as ``M[a, s, c] W[c, i]``, which lets
the empirical NTK contract that layer once per example instead of once per output
(`kernels.empirical_structured.channelwise_head_terms`).

`is_channelwise` decides this from the jaxpr of the function's JVP (the linear map
that JAX's derivatives of it use: custom derivative rules included, primal values
held fixed), by following which axis of every intermediate tangent is the example
axis and which the channel axis: elementwise
operations, broadcasts, reductions, windows, slices and paddings over the other axes,
transposes and reshapes that leave the two axes whole keep the property; anything else
that touches the input (a matrix product, a reduction over channels, a gather, an
unknown primitive, a loop) marks its result, and the answer is False when a marked
value reaches the output; a function JAX cannot differentiate forward (a custom_vjp)
is refused. The answer is structural, so it holds at
every input of the same shape.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import jax

N, C = "N", "C"
Tags = Tuple[Optional[str], ...]  # per axis: N (example), C (channel) or None (other)

_ELEMENTWISE = frozenset("""
add sub mul div rem max min pow integer_pow neg sign floor ceil round is_finite exp exp2
log log1p expm1 tanh logistic sin cos tan asin acos atan atan2 sinh cosh asinh acosh atanh
sqrt rsqrt cbrt abs square erf erfc erf_inv lgamma digamma select_n convert_element_type
eq ne lt le gt ge and or not xor stop_gradient copy copy_p reduce_precision clamp
nextafter real imag conj add_any
""".split())
_REDUCE = frozenset("reduce_sum reduce_max reduce_min reduce_prod reduce_and reduce_or "
                    "argmax argmin".split())
_WINDOW = frozenset("reduce_window_sum reduce_window_max reduce_window_min "
                    "select_and_gather_add".split())
# Calls whose sub-jaxpr maps its inputs to its outputs one to one (not loops or reducers).
_CALLS = frozenset("jit pjit closed_call core_call remat2 checkpoint".split())
_SUBJAXPR = ("jaxpr", "call_jaxpr")


class _No(Exception):
  pass


_MIXED = ("mixed",)  # the tag of a value that may mix examples or channels


def is_channelwise(fn, z) -> bool:
  """Whether ``fn(z)``, z of shape (n, ..., C) (an array or ``jax.ShapeDtypeStruct``),
  returns (n, C) whose derivative, as JAX computes it, couples ``fn(z)[a, c]`` only to
  ``z[a, ..., c]``: a structural answer, the same at every z of this shape."""
  if len(z.shape) < 2:
    return False

  def tangent(z0, t):
    return jax.jvp(fn, (z0,), (t,))[1]

  try:
    closed = jax.make_jaxpr(tangent)(z, z)
  except Exception:  # pylint: disable=broad-except
    return False
  jaxpr = closed.jaxpr
  if len(jaxpr.invars) != 2 or len(jaxpr.outvars) != 1:
    return False
  tags_in = (N,) + (None,) * (len(z.shape) - 2) + (C,)
  (out,) = _walk(jaxpr, [None, tags_in])  # the primal input is a constant here
  out_aval = jaxpr.outvars[0].aval
  return (out == (N, C) and tuple(out_aval.shape) == (z.shape[0], z.shape[-1]))


def _walk(jaxpr, in_tags: Sequence[Optional[Tags]]):
  """Tags of ``jaxpr``'s outputs given those of its inputs (None: independent of z)."""
  env = {}
  for v, t in zip(jaxpr.invars, in_tags):
    env[v] = t
  read = lambda v: None if _is_literal(v) else env.get(v)
  for eqn in jaxpr.eqns:
    ins = [read(v) for v in eqn.invars]
    if all(t is None for t in ins):
      outs = [None] * len(eqn.outvars)
    elif any(t is _MIXED for t in ins):
      outs = [_MIXED] * len(eqn.outvars)
    else:
      try:
        outs = _rule(eqn, ins)
      except _No:  # harmless unless it reaches the output (dead code is common)
        outs = [_MIXED] * len(eqn.outvars)
    for v, t in zip(eqn.outvars, outs):
      env[v] = t
  return [read(v) for v in jaxpr.outvars]


def _is_literal(v) -> bool:
  return type(v).__name__ == "Literal"


def _shape(v):
  return tuple(v.aval.shape)


def _rule(eqn, ins):
  name, p = eqn.primitive.name, eqn.params
  tagged = [t for t in ins if t is not None]
  t0 = tagged[0]
  out_shape = _shape(eqn.outvars[0]) if eqn.outvars else ()
  if name in _ELEMENTWISE:
    for v, t in zip(eqn.invars, ins):
      if t is not None and (t != t0 or _shape(v) != out_shape):
        raise _No()
    return [t0]
  (v0,) = [v for v, t in zip(eqn.invars, ins) if t is not None][:1] or [None]
  in_shape = _shape(v0)
  if name in _REDUCE:
    axes = tuple(p["axes"])
    if any(t0[a] is not None for a in axes) or len(tagged) != 1:
      raise _No()
    return [tuple(t for i, t in enumerate(t0) if i not in axes)]
  if name in _WINDOW:
    for i, t in enumerate(t0):
      if t is not None and (p["window_dimensions"][i] != 1 or p["window_strides"][i] != 1
                            or tuple(p["padding"][i]) != (0, 0)
                            or p["base_dilation"][i] != 1 or p["window_dilation"][i] != 1):
        raise _No()
    return [t0]
  if name == "broadcast_in_dim":
    if len(tagged) != 1:
      raise _No()
    out = [None] * len(out_shape)
    for i, d in enumerate(p["broadcast_dimensions"]):
      if t0[i] is not None and in_shape[i] != out_shape[d]:
        raise _No()
      out[d] = t0[i]
    return [tuple(out)]
  if name == "transpose":
    return [tuple(t0[i] for i in p["permutation"])]
  if name == "squeeze":
    dims = tuple(d % len(in_shape) for d in p["dimensions"])
    if any(t0[d] is not None for d in dims):
      raise _No()
    return [tuple(t for i, t in enumerate(t0) if i not in dims)]
  if name == "reshape":
    if p.get("dimensions") is not None or len(tagged) != 1:
      raise _No()
    return [_reshape_tags(t0, in_shape, out_shape)]
  if name == "slice":
    strides = p["strides"] or (1,) * len(in_shape)
    for i, t in enumerate(t0):
      if t is not None and (p["start_indices"][i] != 0 or p["limit_indices"][i] != in_shape[i]
                            or strides[i] != 1):
        raise _No()
    return [t0]
  if name == "pad":
    if ins[1] is not None:
      raise _No()
    for i, t in enumerate(t0):
      if t is not None and tuple(p["padding_config"][i]) != (0, 0, 0):
        raise _No()
    return [t0]
  if name == "concatenate":
    if t0[p["dimension"]] is not None or any(t != t0 for t in tagged):
      raise _No()
    return [t0]
  sub = next((p[k] for k in _SUBJAXPR if k in p), None) if name in _CALLS else None
  if sub is not None:
    inner = getattr(sub, "jaxpr", sub)
    if len(inner.invars) != len(ins):
      raise _No()
    return _walk(inner, ins)
  raise _No()


def _reshape_tags(tags: Tags, in_shape, out_shape) -> Tags:
  """A reshape keeps a tagged axis when it stays one axis of the same size with the same
  number of elements before it (row-major order: then its index is unchanged)."""
  out = [None] * len(out_shape)
  for i, t in enumerate(tags):
    if t is None:
      continue
    before = math.prod(in_shape[:i])
    q = next((q for q in range(len(out_shape))
              if out_shape[q] == in_shape[i] and math.prod(out_shape[:q]) == before
              and out[q] is None), None)
    if q is None:
      raise _No()
    out[q] = t
  return tuple(out)


def ignores(fn, z, others) -> bool:
  """Whether ``fn(z, others)`` does not depend on the pytree ``others`` (read from its
  jaxpr: an operation's outputs are taken to depend on all of its inputs)."""
  try:
    closed = jax.make_jaxpr(fn)(z, others)
  except Exception:  # pylint: disable=broad-except
    return False
  jaxpr = closed.jaxpr
  n_z = len(jax.tree_util.tree_leaves(z))
  dependent = set(jaxpr.invars[n_z:])
  for eqn in jaxpr.eqns:
    if any(not _is_literal(v) and v in dependent for v in eqn.invars):
      dependent.update(eqn.outvars)
  return not any(not _is_literal(v) and v in dependent for v in jaxpr.outvars)
