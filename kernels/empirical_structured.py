"""Structured empirical NTK of `kernels.stax` networks: one contraction per Dense or Conv layer.

Novak et al. 2022, "Fast Finite Width Neural Tangent Kernel", Sec. 3.3 and 4 (structured
derivatives). A layer ``y[s] = m P[s] W + m_b b`` that shares its weight ``W`` over
positions ``s`` (one position for a Dense layer on vectors, the patches ``P[s]`` of its
input for a Conv layer or a Dense layer on spatial inputs) contributes

  ``Theta_W(x1 a, x2 b) = lr m^2 sum_{s,t} (P1[s] . P2[t]) (G1_a[s] . G2_b[t])``,

with ``G_a`` the cotangent at the layer's output for output coordinate ``a``. Two
orders of the same sum are exact and differ in cost: Gram order (input-patch Gram
times cotangent Gram, then the sum over position pairs; the cheapest for Dense layers
on vectors) and Jacobian order (the per-example weight gradient
``sum_s P[s] (x) G_a[s]`` first, then its inner products; the cheapest for Conv
layers with many positions). Each layer takes the one with fewer multiplications.

A network whose last Conv reaches the readout Dense through units acting on each
example and channel alone (activations, pooling: `channelwise_tail`) has that Conv's
per-output cotangents ``M[s, c] w W[c, i]``: it is contracted once per example
(`channelwise_head_terms`) and the cotangents of the layers below start at its input.

Per-output factors are kept example-major, rows (example, output), so the traced
kernel ``sum_a`` and the full block are single products of row-major matrices and
the per-example weight gradients come out in the Gram's row order (`per_example_jacobian`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from kernels import channelwise
from kernels.stax import spatial_ops
from kernels.stax.conv import Conv
from kernels.stax.dense import Dense
from kernels.stax.layer import ApplyFn, Layer, is_static

Path = Tuple[int, ...]


def supports(apply_fn) -> bool:
  """Whether the structured form applies: a static `kernels.stax` network whose only
  layers with parameters are Dense and Conv (attention and repeat are not covered)."""
  if not isinstance(apply_fn, ApplyFn) or not is_static(apply_fn.layer):
    return False
  return _only_affine(apply_fn.layer)


def _affine(layer) -> bool:
  """Exactly Dense (channels last) or Conv: subclasses (ConvLocal's untied weights,
  ConvTranspose) and Dense on other channel axes are other maps, which the per-layer
  contraction here would get silently wrong."""
  return type(layer) is Conv or (type(layer) is Dense and layer.channel_axis == -1)


def _only_affine(layer) -> bool:
  if _affine(layer):
    return True
  if hasattr(layer, "W_std") or hasattr(layer, "_repeats") or hasattr(layer, "n_chan_key"):
    return False
  if not dataclasses.is_dataclass(layer):
    return False
  return all(_only_affine(c) for c in layer._children())


def affine_layers(layer, path: Path = ()) -> Dict[Path, Layer]:
  """The Dense and Conv layers of a network, by path."""
  if _affine(layer):
    return {path: layer}
  out = {}
  for i, child in enumerate(layer._children()):
    out.update(affine_layers(child, path + (i,)))
  return out


def _recording_apply(self, params, x, path, ctx, probes=None, record=None):
  if record is not None:
    record[path] = x
  return super(type(self), self)._apply(params, x, path, ctx, probes, record)


@functools.lru_cache(maxsize=None)
def _recording_class(cls):
  return type(cls.__name__, (cls,), {"_apply": _recording_apply, "__module__": __name__})


@functools.lru_cache(maxsize=64)
def _recording_tree(layer):
  """A copy of the network whose Dense and Conv layers record their inputs (same paths)."""
  if _affine(layer):
    kw = {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer) if f.init}
    return _recording_class(type(layer))(**kw)
  changes = {}
  for f in dataclasses.fields(layer):
    v = getattr(layer, f.name)
    if isinstance(v, Layer):
      changes[f.name] = _recording_tree(v)
    elif isinstance(v, tuple) and any(isinstance(e, Layer) for e in v):
      changes[f.name] = tuple(_recording_tree(e) if isinstance(e, Layer) else e for e in v)
  return dataclasses.replace(layer, **changes) if changes else layer


def _params_at(tree, path):
  for i in path:
    tree = tree[i]
  return tree


def _patches(layer, x):
  """(n, positions, features) patches of a layer's input, positions in its output's order."""
  if isinstance(layer, Dense):
    return x.reshape(x.shape[0], -1, x.shape[-1])
  lhs, _, out = layer.dimension_numbers
  letters = [c for c in out if c not in "NC"]
  x = jnp.transpose(x, [lhs.index("N")] + [lhs.index(c) for c in letters] + [lhs.index("C")])
  fs, st = layer._filter_for(letters)
  return patches(x, fs, st, layer.padding)


def patches(x, filter_shape, strides, padding):
  """(n, positions, window * channels) patches of channels-last ``x`` (n, *spatial, c),
  gathered by strided slices (a convolution with a one-hot filter would cost as much as
  the layer itself). ``padding``: ``"VALID"``, ``"SAME"`` (as `jax.lax`) or ``"CIRCULAR"``."""
  widths = [(0, 0)]
  for size, w, s in zip(x.shape[1:-1], filter_shape, strides):
    widths.append(spatial_ops.pads(size, w, s, "VALID" if padding == "VALID" else "SAME"))
  widths.append((0, 0))
  out = [spatial_ops.out_size(size, w, s, "VALID" if padding == "VALID" else "SAME")
         for size, w, s in zip(x.shape[1:-1], filter_shape, strides)]
  x = jnp.pad(x, widths, mode="wrap" if padding == "CIRCULAR" else "constant")
  pieces = []
  for offset in np.ndindex(*filter_shape):
    start = (0,) + tuple(offset) + (0,)
    limit = ((x.shape[0],) + tuple(o + (m - 1) * s + 1 for o, m, s in zip(offset, out, strides))
             + (x.shape[-1],))
    pieces.append(jax.lax.slice(x, start, limit, (1,) + tuple(strides) + (1,)))
  p = jnp.stack(pieces, axis=-2)  # (n, *out, window, c)
  return p.reshape(p.shape[0], -1, p.shape[-2] * p.shape[-1])


def _to_nsc(y, spec):
  """(n, *spatial, c) in ``spec``'s layout -> (n, positions, c), spatial in ``spec``'s order."""
  order = [spec.index("N")] + [i for i, c in enumerate(spec) if c not in "NC"] + [spec.index("C")]
  y = jnp.transpose(y, order)
  return y.reshape(y.shape[0], -1, y.shape[-1])


def _cotangents(layer, g):
  """(k, n, *out) cotangents at a layer's output -> (k, n, positions, channels)."""
  k = g.shape[0]
  if isinstance(layer, Conv):
    g = jax.vmap(lambda c: _to_nsc(c, layer.dimension_numbers[2]))(g)
    return g
  return g.reshape(k, g.shape[1], -1, g.shape[-1])


def _parts(apply_fn, params, x, layers):
  """Outputs, recorded inputs and per-output-coordinate cotangents of every affine layer."""
  net = _recording_tree(apply_fn.layer)
  ctx = apply_fn.layer.context()

  def fwd(probes):
    record = {}
    y = net._apply(params, x, (), ctx, probes=probes, record=record)
    return y, record

  def inputs():
    record = {}
    net._apply(params, x, (), ctx, probes=None, record=record)
    return record

  ins = jax.eval_shape(inputs)
  probes = {p: jnp.zeros(lay._shape(ins[p].shape, p), x.dtype) for p, lay in layers.items()}
  return cotangents(fwd, probes)


def channelwise_tail(layer, params, x):
  """``(last, dense, head)`` when the network is the chain ``..., Conv, h, Dense`` (its
  units, `Layer._units`) with ``h`` parameter-free units acting on each example and
  channel alone (`kernels.channelwise`), the Dense giving the outputs and the Conv's
  outputs channels-last; ``head(z)`` maps the Conv's outputs to the Dense's inputs.
  None otherwise."""
  units = layer._units(())
  if len(units) < 2 or type(units[-1][0]) is not Dense or not _affine(units[-1][0]):
    return None
  i = len(units) - 2
  while i >= 0 and not _affine(units[i][0]):
    i -= 1
  if i < 0 or type(units[i][0]) is not Conv:
    return None
  conv, last = units[i]
  out_spec = conv.dimension_numbers[2]
  if out_spec[0] != "N" or out_spec[-1] != "C":
    return None
  tail = units[i + 1:-1]
  if any(affine_layers(u, q) for u, q in tail):
    return None
  ctx = layer.context()

  def head(z):
    for u, q in tail:
      z = u._apply(_params_at(params, q), z, q, ctx)
    return z

  def conv_out():
    record = {}
    _recording_tree(layer)._apply(params, x, (), ctx, record=record)
    return conv._apply(_params_at(params, last), record[last], last, ctx)

  try:
    z = jax.eval_shape(conv_out)
  except Exception:  # pylint: disable=broad-except
    return None
  if not channelwise.is_channelwise(head, z):
    return None
  return last, units[-1][1], head


def _tail_parts(apply_fn, params, x, layers, last, dense, head):
  """Outputs, recorded inputs, cotangents of every affine layer but ``last`` (k, n, ...)
  and the head's cotangent of ones M (n, positions, C) at the output of ``last``, for a
  network with a channel-wise tail (`channelwise_tail`): the k cotangents start at the
  input of ``last``, as ``conv^T(M w W[:, i])`` with ``w W`` the Dense's scaled weights."""
  net = _recording_tree(apply_fn.layer)
  ctx = apply_fn.layer.context()
  conv, dense_layer = layers[last], layers[dense]

  def inputs():
    record = {}
    net._apply(params, x, (), ctx, record=record)
    return record

  ins = jax.eval_shape(inputs)
  fixed = {p: jnp.zeros(layers[p]._shape(ins[p].shape, p), x.dtype) for p in (last, dense)}
  lower = {p: jnp.zeros(lay._shape(ins[p].shape, p), x.dtype)
           for p, lay in layers.items() if p not in fixed}

  p_last = _params_at(params, last)
  conv_fn = lambda inp: conv._apply(p_last, inp, last, ctx)

  def low(pr):
    record = {}
    y = net._apply(params, x, (), ctx, probes={**pr, **fixed}, record=record)
    return record[last], (y, record, conv_fn(record[last]))

  W = _params_at(params, dense)[0]
  w = dense_layer.scales(W.shape[0], dense, ctx).w_mult * W  # (C, k)

  def input_cotangents(m, shape):  # conv^T is the same linear map at every input
    conv_t = jax.vjp(conv_fn, jnp.zeros(shape, m.dtype))[1]
    return jax.vmap(lambda wi: conv_t(m * wi)[0])(w.T)

  got = head_factors(low, lower, head, input_cotangents)
  if got is None:
    return None
  y, rec, g, m = got
  g[dense] = readout_cotangents(y)
  return y, rec, g, m, w


def readout_cotangents(y):
  """(k, n, k): the cotangent of output coordinate a for every example of y (n, k)."""
  k = y.shape[1]
  return jnp.broadcast_to(jnp.eye(k, dtype=y.dtype)[:, None, :], (k,) + y.shape)


def head_factors(low, probes, head, input_cotangents):
  """The parts of a network with a channel-wise head, from ``low(probes) -> (a, (y,
  record, z))`` (``a`` the last Conv's input, ``z`` its output) and ``head(z)`` (the
  readout's input): y, the record, each probed layer's cotangents (k, n, ...) and the
  head's cotangent of ones M (n, positions, C). The k cotangents start at ``a``:
  ``input_cotangents(M, a.shape)`` -> (k, *a.shape). None when y is not (n, k)."""
  a, vjp_low, (y, record, z) = jax.vjp(low, probes, has_aux=True)
  if y.ndim != 2:
    return None
  phi, vjp_head = jax.vjp(head, z)
  m = vjp_head(jnp.ones_like(phi))[0]
  u = input_cotangents(m, a.shape)
  g = dict(jax.vmap(lambda c: vjp_low(c)[0])(u)) if probes else {}
  return y, record, g, m.reshape(m.shape[0], -1, m.shape[-1])


def cotangents(fwd, probes):
  """``fwd(probes) -> (y, record)`` with y of shape (n, k): returns y, the record and, for
  each probe, the cotangents at its layer's output of every output coordinate, (k, n, ...).

  One VJP per output coordinate, each for all examples at once: the examples must not
  interact in ``fwd``. None when y is not (n, k)."""
  y, vjp_fn, rec = jax.vjp(fwd, probes, has_aux=True)
  if y.ndim != 2:
    return None
  grads = jax.vmap(lambda c: vjp_fn(c)[0])(readout_cotangents(y))
  return y, rec, grads


def structured_ntk(apply_fn: ApplyFn, x1, x2, params, trace: Tuple[int, ...],
                   diag: Tuple[int, ...], lr_tree=None):
  """The empirical NTK (neural-tangents' output-axis semantics) for outputs of shape (n, k).

  Returns None when the outputs are not (n, k), for the caller to fall back.
  """
  layer = apply_fn.layer
  ctx = layer.context()
  layers = affine_layers(layer)
  tail = channelwise_tail(layer, params, x1)
  if tail is not None and x2 is not None:
    other = channelwise_tail(layer, params, x2)  # the analysis holds for one input shape
    tail = tail if other is not None and other[:2] == tail[:2] else None
  last = tail[0] if tail is not None else None

  def parts(x):
    if tail is not None:
      return _tail_parts(apply_fn, params, x, layers, *tail)
    got = _parts(apply_fn, params, x, layers)
    return None if got is None else got + (None, None)

  p1 = parts(x1)
  if p1 is None:
    return None
  y1, rec1, g1, m1, w_head = p1
  same = x2 is None
  y2, rec2, g2, m2, _ = p1 if same else parts(x2)
  k, n1, n2 = y1.shape[1], y1.shape[0], y2.shape[0]
  mode = output_mode(trace, diag)
  terms, dense = [], 0.0
  for path, lay in layers.items():
    W, b = _params_at(params, path)
    if isinstance(lay, Dense):
      fan_in = W.shape[0]
    else:
      fan_in = lay.fan_in(W.shape[lay.dimension_numbers[1].index("I")])
    sc = lay.scales(fan_in, path, ctx)
    w_lr, b_lr = 1.0, 1.0
    if lr_tree is not None:
      w_lr, b_lr = _params_at(lr_tree, path)
      b_lr = 1.0 if b_lr is None else b_lr
    P1 = _patches(lay, rec1[path])
    P2 = P1 if same else _patches(lay, rec2[path])
    cw = w_lr * sc.w_mult ** 2
    cb = None if b is None else b_lr * sc.b_mult ** 2
    if path == last:  # the channel-wise tail's factorised cotangents
      dense = dense + channelwise_head_terms(P1, P2, m1, m2, w_head, cw, cb, mode, same)
      continue
    G1 = _cotangents(lay, g1[path])
    G2 = G1 if same else _cotangents(lay, g2[path])
    t, d = layer_terms(P1, P2, G1, G2, cw, cb, mode, same)
    terms += t
    dense = dense + d
  return combine(terms, dense, mode, k, n1, n2, same)


def output_mode(trace, diag) -> str:
  """How the output axis of (n, k) outputs is handled: ``"trace"``, ``"diag"`` or ``"full"``."""
  return "trace" if 1 in trace else "diag" if 1 in diag else "full"


def combine(terms, dense, mode, k, n1, n2, same):
  """The NTK from the layers' terms (`layer_terms`), in neural-tangents' layout."""
  if mode == "full":
    total = _full(terms, k, n1, n2, same) + dense  # (i, a, j, b)
    return jnp.transpose(total, (0, 2, 1, 3))
  total = dense
  for A1, A2, X in terms:
    if mode == "diag":
      total = total + jnp.einsum("iam,jam->ija", A1, A2) * (X[..., None] if jnp.ndim(X) else X)
    else:  # rows (i, a m): one plain matrix product, no transposed copies
      total = total + (A1.reshape(n1, -1) @ A2.reshape(n2, -1).T) * X
  return total if mode == "diag" else total / k


def layer_terms(P1, P2, G1, G2, cw, cb, mode, same, order=None):
  """One layer's contribution as ``terms`` ``(A1, A2, X)``, each standing for
  ``X[i, j] sum_m A1[i, a, m] A2[j, b, m]`` (X an (n1, n2) array or a number), and
  a remainder already in the accumulation layout of ``mode`` ((i, a, j, b) for
  ``"full"``, (i, j, a) for ``"diag"``, (i, j) for ``"trace"``).

  P: (n, S, f) input patches; G: (k, n, S, o) output cotangents. ``order``
  (``"gram"`` or ``"jacobian"``) overrides the choice by cost. The factors ``A`` are
  example-major, (n, k, m), so that every contraction over (a, m) or m is one matrix
  product of row-major operands.
  """
  n1, s, f = P1.shape
  n2 = P2.shape[0]
  k, o = G1.shape[0], G1.shape[-1]
  kk = k * k if mode == "full" else k
  gram_cost = n1 * n2 * s * s * (f + kk * o) + kk * n1 * n2 * s * s
  jac_cost = k * (n1 + (0 if same else n2)) * s * f * o + kk * n1 * n2 * f * o
  if order is None:
    order = "gram" if s == 1 or gram_cost <= jac_cost else "jacobian"
  ex = lambda A: jnp.transpose(A, (1, 0, 2))  # (k, n, m) -> (n, k, m)
  if s == 1 and order == "gram":  # Gram order: input Gram times cotangent Gram
    X = cw * (P1[:, 0] @ P2[:, 0].T)
    if cb is not None:
      X = X + cb
    A1 = ex(G1[:, :, 0])
    return [(A1, A1 if same else ex(G2[:, :, 0]), X)], 0.0
  bias = []
  if cb is not None:
    B1 = ex(jnp.sum(G1, axis=2))
    bias = [(B1, B1 if same else ex(jnp.sum(G2, axis=2)), cb)]
  if order == "jacobian":  # Jacobian order: per-example weight gradients first
    J1 = per_example_jacobian(P1, G1)
    J2 = J1 if same else per_example_jacobian(P2, G2)
    return [(J1, J2, cw)] + bias, 0.0
  X = cw * jnp.einsum("isf,jtf->ijst", P1, P2)
  spec = {"full": "ijst,aiso,bjto->iajb", "diag": "ijst,aiso,ajto->ija",
          "trace": "ijst,aiso,ajto->ij"}[mode]
  return bias, jnp.einsum(spec, X, G1, G2)


def channelwise_head_terms(P1, P2, M1, M2, W, cw, cb, mode, same):
  """The contribution, in ``mode``'s accumulation layout, of the last Conv layer of a
  network ``f = h(conv(x)) W + b`` whose head ``h`` acts on each example and channel alone
  (`kernels.channelwise`): its output cotangents factor as ``G_i[s, c] = M[s, c] W[c, i]``,
  so (Novak et al. 2022, Sec. 3.3, with this factorisation)

    ``Theta(x1 a, i; x2 b, j) = sum_c W[c, i] W[c, j] B[a, b, c]``,
    ``B[a, b, c] = cw sum_f A1[a, f, c] A2[b, f, c] + cb s1[a, c] s2[b, c]``,

  with ``A[a] = P[a]^T M[a]`` and ``s[a] = sum_s M[a, s]``: one contraction of the patches
  per example instead of one per output.

  P: (n, S, f) input patches; M: (n, S, C) the head's cotangent of ones; W: (C, k).
  """
  A1 = jnp.einsum("asf,asc->caf", P1, M1)  # channel-major: B is one batched product
  A2 = A1 if same else jnp.einsum("asf,asc->caf", P2, M2)
  B = cw * jnp.einsum("caf,cbf->abc", A1, A2)
  if cb is not None:
    s1 = jnp.sum(M1, axis=1)
    s2 = s1 if same else jnp.sum(M2, axis=1)
    B = B + cb * s1[:, None, :] * s2[None, :, :]
  if mode == "full":  # (a, i, b, j)
    return jnp.einsum("abc,ci,cj->aibj", B, W, W)
  if mode == "diag":  # (a, b, i)
    return jnp.einsum("abc,ci->abi", B, W * W)
  return B @ jnp.sum(W * W, axis=1)  # (a, b): the sum over outputs


def per_example_jacobian(P, G):
  """``J[i, a] = P[i]^T G[a, i]``, the weight gradient of output ``a`` at example ``i``
  (Novak et al. 2022, Sec. 3.3: ``sum_s P[s] (x) G_a[s]``), as (n, k, o f).

  The cotangents are first laid out as (n, S, k o), so that the sum over positions is
  one batched product per example with both operands contiguous in that sum; the
  result rows are then (i, a) and its columns (o, f), ready for the Gram of `combine`
  without a transposed copy of the (n k, f o) Jacobian.
  """
  k, n, s, o = G.shape
  Gt = jnp.transpose(G, (1, 2, 0, 3)).reshape(n, s, k * o)
  J = jnp.einsum("ism,isf->imf", Gt, P)  # (n, k o, f)
  return J.reshape(n, k, o * P.shape[-1])


def _full(terms, k, n1, n2, same):
  """Sum of the terms over all output pairs, in the layout (i, a, j, b)."""
  if not terms:
    return 0.0
  if same and n1 * k >= SYMMETRIC_MIN_ROWS:
    return _full_symmetric(terms, k, n1)
  total = 0.0
  for A1, A2, X in terms:
    A1 = A1.reshape(n1 * k, -1)
    A2 = A1 if same else A2.reshape(n2 * k, -1)
    g = (A1 @ A2.T).reshape(n1, k, n2, k)
    total = total + g * (X[:, None, :, None] if jnp.ndim(X) else X)
  return total


# x2 = x1 uses the blocks on and above the diagonal from this many rows (n k) on; below
# it one whole product is faster (measured on CPU: a (320, 36864) Gram in five blocks
# took 1.1x the time of the whole product).
SYMMETRIC_MIN_ROWS = 512


def _full_symmetric(terms, k, n):
  """As `_full` for x2 = x1: only the blocks on and above the diagonal of the symmetric
  (k n, k n) matrix are computed, then mirrored. Blocks are groups of outputs (or, for
  one output, ranges of examples), so each block's factor ``X`` is a slice of it."""
  if k > 1:
    ka = next(d for d in range(1, k + 1) if k % d == 0 and (d * n >= 64 or d == k))
    r, size = k // ka, ka * n
  else:
    r = max(1, min(4, n // 256))
    size = -(-n // r)
  spans = [(g * size, min((g + 1) * size, k * n)) for g in range(r)]
  acc = {}
  for A1, _, X in terms:
    A = jnp.transpose(A1, (1, 0, 2)).reshape(k * n, -1)  # output-major rows (a, i)
    for g in range(r):
      for h in range(g, r):
        (a0, a1), (b0, b1) = spans[g], spans[h]
        blk = A[a0:a1] @ A[b0:b1].T
        if jnp.ndim(X) and k > 1:
          blk = (blk.reshape(ka, n, ka, n) * X[None, :, None, :]).reshape(size, size)
        elif jnp.ndim(X):
          blk = blk * X[a0:a1, b0:b1]
        else:
          blk = blk * X
        acc[(g, h)] = acc[(g, h)] + blk if (g, h) in acc else blk
  grid = [[acc[(g, h)] if g <= h else acc[(h, g)].T for h in range(r)] for g in range(r)]
  return jnp.transpose(jnp.block(grid).reshape(k, n, k, n), (1, 0, 3, 2))
