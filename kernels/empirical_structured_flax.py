"""Structured empirical NTK of a Flax module's ``apply`` whose parameters all belong to
``nn.Dense`` and ``nn.Conv`` layers (Novak et al. 2022, "Fast Finite Width NTK", Sec. 3.3).

Each such layer's inputs are recorded and a probe is added to its output through Flax's
public method interception (``nn.intercept_methods``); the per-layer contraction is then
that of `kernels.empirical_structured` with multipliers 1. Anything else (other modules
with parameters, a layer called twice, grouped or dilated convolutions, explicit
padding, collections other than ``params``) makes `structured_ntk` return None, and the
caller falls back to NTK-vector products.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

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


def _check(mod, x):
  if isinstance(mod, nn.Dense):
    return
  n = len(mod.kernel_size)
  if (mod.feature_group_count != 1 or not _ones(mod.kernel_dilation)
      or not _ones(mod.input_dilation) or mod.mask is not None
      or not isinstance(mod.padding, str) or mod.padding.upper() not in ("SAME", "VALID")
      or x.ndim != n + 2):
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


def _run(module, variables, x, probes, record):
  def interceptor(next_fun, args, kwargs, context):
    mod = context.module
    if context.method_name != "__call__" or not isinstance(mod, (nn.Dense, nn.Conv)):
      return next_fun(*args, **kwargs)
    path = tuple(mod.scope.path)
    if path in record:
      raise _Unsupported()  # the same layer called twice
    _check(mod, args[0])
    record[path] = (mod, args[0])
    y = next_fun(*args, **kwargs)
    if probes is not None:
      y = y + probes[path]
    return y

  with nn.intercept_methods(interceptor):
    return module.apply(variables, x)


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

  def parts(x):
    out_shapes = jax.eval_shape(lambda: _outputs(module, variables, x))
    probes = {p: jnp.zeros(s.shape, s.dtype) for p, s in out_shapes.items()}

    def fwd(pr):
      rec = {}
      y = _run(module, variables, x, pr, rec)
      return y, {p: xi for p, (_, xi) in rec.items()}
    return es.cotangents(fwd, probes)

  p1 = parts(x1)
  if p1 is None:
    return None
  y1, rec1, g1 = p1
  same = x2 is None
  y2, rec2, g2 = p1 if same else parts(x2)
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

