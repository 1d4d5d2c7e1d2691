"""Structured empirical NTK of a Flax module's ``apply`` whose parameters all belong to
``nn.Dense`` and ``nn.Conv`` layers (Novak et al. 2022, "Fast Finite Width NTK", Sec. 3.3).

Each such layer's inputs are recorded and a probe is added to its output through Flax's
public method interception (``nn.intercept_methods``); the per-layer contraction is then
that of `kernels.empirical_structured` with multipliers 1. Anything else (other modules
with parameters, a layer called twice, grouped or dilated convolutions, explicit
padding, collections other than ``params``) makes `structured_ntk` return None, and the
caller falls back to NTK-vector products.

A network that ends ``Conv -> h -> Dense`` with ``h`` acting on each example and channel
alone (activation, pooling; `kernels.channelwise`) has per-output cotangents at the last
Conv that factor as ``M[s, c] W[c, i]``: that layer is contracted once per example
(`kernels.empirical_structured.channelwise_head_terms`) and the k cotangents start at its
input, produced by one wide transposed convolution (`channelwise_head`, `_head_parts`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from kernels import channelwise
from kernels import empirical_structured as es

class _Unsupported(Exception):
  pass


def module_of(f):
  """The Flax module of ``f = module.apply`` (a bound method), else None."""
  m = getattr(f, "__self__", None)
  if isinstance(m, nn.Module) and getattr(f, "__name__", "") == "apply":
    return m
  return None


def _ones(v):
  return v is None or all(int(d) == 1 for d in ((v,) if isinstance(v, int) else v))


# The attributes through which a Flax Dense or Conv can compute something other than
# x . kernel + bias (their defaults are None).
_CUSTOM_OPS = ("dot_general", "dot_general_cls", "conv_general_dilated",
               "conv_general_dilated_cls")


def _check(mod, x):
  """The layer must be exactly ``nn.Dense`` or ``nn.Conv`` computing ``x . kernel + bias``:
  a subclass may override ``__call__``, and a custom ``dot_general`` or
  ``conv_general_dilated`` changes the map (the structured form would be silently wrong)."""
  if type(mod) not in (nn.Dense, nn.Conv) or any(
      getattr(mod, a, None) is not None for a in _CUSTOM_OPS):
    raise _Unsupported()
  if isinstance(mod, nn.Dense):
    return
  n = len(mod.kernel_size)
  if (mod.feature_group_count != 1 or not _ones(mod.kernel_dilation)
      or not _ones(mod.input_dilation) or mod.mask is not None
      or not isinstance(mod.padding, str) or mod.padding.upper() not in ("SAME", "VALID")
      or x.ndim != n + 2):
    raise _Unsupported()


def _check_stored(mod, variables, path):
  """The layer must use its parameters as stored: a kernel transformed on the way in
  (``nn.map_variables``, weight normalisation) has other derivatives than the stored one."""
  seen = mod.variables.get("params", {})
  stored = variables.get("params", {}) if hasattr(variables, "get") else {}
  try:
    for k in path:
      stored = stored[k]
  except (KeyError, TypeError):
    raise _Unsupported() from None
  if not hasattr(stored, "keys") or set(seen) != set(stored) or any(
      seen[k] is not stored[k] for k in seen):
    raise _Unsupported()


def _strides(mod):
  n = len(mod.kernel_size)
  s = mod.strides
  if s is None:
    return (1,) * n
  return (s,) * n if isinstance(s, int) else tuple(s)


def _patches(mod, x):
  if isinstance(mod, nn.Dense):
    return x.reshape(x.shape[0], -1, x.shape[-1])
  return es.patches(x, tuple(mod.kernel_size), _strides(mod), mod.padding.upper())


def _run(module, variables, x, probes, record, override=None, outputs=None):
  """``module.apply`` with each Dense and Conv layer's input kept in ``record`` (in call
  order), ``probes`` added to their outputs, the output of the layers in ``override``
  replaced, and their outputs kept in ``outputs``."""
  def interceptor(next_fun, args, kwargs, context):
    mod = context.module
    if context.method_name != "__call__" or not isinstance(mod, (nn.Dense, nn.Conv)):
      return next_fun(*args, **kwargs)
    path = tuple(mod.scope.path)
    if path in record:
      raise _Unsupported()  # the same layer called twice
    _check(mod, args[0])
    _check_stored(mod, variables, path)
    record[path] = (mod, args[0])
    if override is not None and path in override:
      y = override[path]
    else:
      y = next_fun(*args, **kwargs)
    if probes is not None and path in probes:
      y = y + probes[path]
    if outputs is not None:
      outputs[path] = y
    return y

  with nn.intercept_methods(interceptor):
    return module.apply(variables, x)


def channelwise_head(module, variables, x):
  """``(last, dense)`` paths when the network is ``f = h(z) W + b``: ``dense`` the last
  Dense layer called, whose output is the network's own, ``z`` the output of the Conv
  layer ``last`` called just before it, ``h`` acting on each example and channel alone
  (`kernels.channelwise`), and every other layer reaching ``f`` only through the input
  of ``last``; else None."""
  rec, outs, found = {}, {}, {}

  def run():
    y = _run(module, variables, x, None, rec, outputs=outs)
    found["output_is_last"] = bool(rec) and y is outs[list(rec)[-1]]
    return y

  try:
    jax.eval_shape(run)
  except _Unsupported:
    return None
  order = list(rec)
  if len(order) < 2 or not found["output_is_last"]:
    return None
  last, dense = order[-2], order[-1]
  if not isinstance(rec[dense][0], nn.Dense) or not isinstance(rec[last][0], nn.Conv):
    return None
  z = jax.ShapeDtypeStruct(outs[last].shape, outs[last].dtype)
  below = {p: jax.ShapeDtypeStruct(outs[p].shape, outs[p].dtype) for p in order[:-2]}
  head = _head_fn(module, variables, x, last, dense)
  if not channelwise.is_channelwise(lambda z: head(z, {}), z):
    return None
  if not channelwise.ignores(head, z, below):
    return None
  return last, dense


def _leaf(tree, path, name):
  for k in path:
    tree = tree[k]
  return tree.get(name) if hasattr(tree, "get") else None


def _covered(variables, record) -> bool:
  """Whether every parameter is the kernel or bias of a recorded layer."""
  if set(variables) != {"params"}:
    return False
  flat = jax.tree_util.tree_flatten_with_path(variables["params"])[0]
  for keypath, _ in flat:
    names = tuple(getattr(k, "key", None) for k in keypath)
    if names[:-1] not in record or names[-1] not in ("kernel", "bias"):
      return False
  return True


def _head_fn(module, variables, x, last, dense):
  """(z, probes) -> the input of ``dense`` when the output of ``last`` is z."""
  def head(z, probes):
    rec = {}
    _run(module, variables, x, probes, rec, override={last: z})
    return rec[dense][1]
  return head


def _conv_input_cotangents(mod, kernel, w, m, in_shape):
  """``conv^T(m * w[:, i])`` for every output i, (k, *in_shape): the cotangents at the
  input of the Conv layer ``mod`` (kernel (*window, d, C)) when its output's are
  ``m[..., c] w[c, i]``, as one transposed convolution from C channels to k d channels
  with the kernel ``kernel[..., d, c] w[c, i]`` (a wide product, not k narrow ones)."""
  k, d = w.shape[1], kernel.shape[-2]
  wide = jnp.einsum("...dc,ci->...idc", kernel, w).reshape(kernel.shape[:-2] + (k * d, -1))
  spatial = "DHW"[3 - len(mod.kernel_size):]
  dn = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")

  def conv(a):
    return jax.lax.conv_general_dilated(a, wide, _strides(mod), mod.padding.upper(),
                                        dimension_numbers=dn, precision=mod.precision)

  zeros = jnp.zeros(in_shape[:-1] + (k * d,), m.dtype)
  u = jax.vjp(conv, zeros)[1](m)[0]
  u = u.reshape(in_shape[:-1] + (k, d))
  return jnp.moveaxis(u, -2, 0)


def _head_parts(module, variables, x, last, dense):
  """Outputs, recorded inputs, cotangents of every layer but ``last`` (k, n, ...) and the
  head's cotangent of ones M at the output of ``last`` (n, positions, C), for a network
  with a channel-wise head (`channelwise_head`): the k cotangents start at the input of
  ``last`` (`_conv_input_cotangents`), not at the output."""
  rec0, outs0 = {}, {}
  jax.eval_shape(lambda: _run(module, variables, x, None, rec0, outputs=outs0))
  order = list(rec0)
  probes = {p: jnp.zeros(outs0[p].shape, outs0[p].dtype) for p in order[:-2]}

  def low(pr):
    rec, outs = {}, {}
    y = _run(module, variables, x, pr, rec, outputs=outs)
    return rec[last][1], (y, {p: xi for p, (_, xi) in rec.items()}, outs[last])

  w = _leaf(variables["params"], dense, "kernel")
  kernel = _leaf(variables["params"], last, "kernel")
  head = lambda z: _head_fn(module, variables, x, last, dense)(z, {})
  got = es.head_factors(low, probes, head, lambda m, shape: _conv_input_cotangents(
      rec0[last][0], kernel, w, m, shape))
  if got is None:
    return None
  y, inputs, g, m = got
  g[dense] = es.readout_cotangents(y)
  return y, inputs, g, m


def structured_ntk(module, x1, x2, variables, trace, diag, lr_tree=None):
  """The empirical NTK of ``module.apply`` with outputs (n, k), or None where unsupported."""
  try:
    rec0 = {}
    jax.eval_shape(lambda: _run(module, variables, x1, None, rec0))
  except _Unsupported:
    return None
  if not _covered(variables, rec0):
    return None
  mods = {p: m for p, (m, _) in rec0.items()}
  head = channelwise_head(module, variables, x1)
  if head is not None and x2 is not None and channelwise_head(module, variables, x2) != head:
    head = None  # the analysis holds for one input shape: x2's must agree
  last, dense_path = head if head is not None else (None, None)

  def parts(x):
    if head is not None:
      return _head_parts(module, variables, x, last, dense_path)
    out_shapes = jax.eval_shape(lambda: _outputs(module, variables, x))
    probes = {p: jnp.zeros(s.shape, s.dtype) for p, s in out_shapes.items()}

    def fwd(pr):
      rec = {}
      y = _run(module, variables, x, pr, rec)
      return y, {p: xi for p, (_, xi) in rec.items()}
    got = es.cotangents(fwd, probes)
    return None if got is None else got + (None,)

  p1 = parts(x1)
  if p1 is None:
    return None
  y1, rec1, g1, m1 = p1
  same = x2 is None
  y2, rec2, g2, m2 = p1 if same else parts(x2)
  k, n1, n2 = y1.shape[1], y1.shape[0], y2.shape[0]
  mode = es.output_mode(trace, diag)
  terms, dense = [], 0.0
  for path, mod in mods.items():
    w_lr, b_lr = 1.0, 1.0
    if lr_tree is not None:
      w_lr = _leaf(lr_tree["params"], path, "kernel")
      b_lr = _leaf(lr_tree["params"], path, "bias")
      b_lr = 1.0 if b_lr is None else b_lr
    has_bias = _leaf(variables["params"], path, "bias") is not None
    P1 = _patches(mod, rec1[path])
    P2 = P1 if same else _patches(mod, rec2[path])
    if path == last:  # the head's factorised cotangents
      W = _leaf(variables["params"], dense_path, "kernel")
      dense = dense + es.channelwise_head_terms(P1, P2, m1, m2, W, w_lr,
                                                b_lr if has_bias else None, mode, same)
      continue
    G1 = _flat_cotangents(g1[path])
    G2 = G1 if same else _flat_cotangents(g2[path])
    t, d = es.layer_terms(P1, P2, G1, G2, w_lr, b_lr if has_bias else None, mode, same)
    terms += t
    dense = dense + d
  return es.combine(terms, dense, mode, k, n1, n2, same)


def _flat_cotangents(g):
  """(k, n, *spatial, c) -> (k, n, positions, c)."""
  return g.reshape(g.shape[0], g.shape[1], -1, g.shape[-1])


def _outputs(module, variables, x):
  """Output of every recorded layer (for the probes' shapes)."""
  outs = {}

  def interceptor(next_fun, args, kwargs, context):
    y = next_fun(*args, **kwargs)
    mod = context.module
    if context.method_name == "__call__" and isinstance(mod, (nn.Dense, nn.Conv)):
      outs[tuple(mod.scope.path)] = y
    return y

  with nn.intercept_methods(interceptor):
    module.apply(variables, x)
  return outs

