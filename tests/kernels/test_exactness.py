"""Exact identities the kernels keep in any dtype, at any depth, whatever the tiling.

Each test failed before the fix it guards: equal rows drifted apart in deep float32
networks (K01/K00 = 0.16 for a depth-30 Erf network), tiles of `kernels.sharding.batch`
lost the exact diagonal, x2=None kernels were not symmetric, overflow returned NaN.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import sharding, stax
from kernels.stax import layer as layer_lib


def deep(act, depth, W_std, b_std, width=512):
  layers = [stax.Dense(width, W_std=W_std, b_std=b_std)]
  for _ in range(depth):
    layers += [act(), stax.Dense(width, W_std=W_std, b_std=b_std)]
  return stax.serial(*layers)


ACTIVATIONS = {
    "erf": stax.Erf, "relu": stax.Relu, "gelu": stax.Gelu, "abs": stax.Abs,
    "leaky": lambda: stax.LeakyRelu(0.3), "tanh": lambda: stax.Tanh(deg=12),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_equal_rows_give_equal_entries_in_deep_float32_networks(name):
  # Chaotic phase (W_std=2.5): correlations near 1 are pushed away from 1 at every
  # layer, so any rounding difference between a pair and its diagonal grows.
  v = np.random.RandomState(0).randn(1, 10)
  w = np.random.RandomState(1).randn(1, 10)
  x = np.concatenate([v, w, v, v]).astype(np.float32)
  net = deep(ACTIVATIONS[name], 30, W_std=2.5, b_std=0.1)
  diagonal = None
  for x1, x2 in ((x, None), (x, x), (x[:1], x[2:])):
    k = net.kernel_fn(x1, x2)
    rows2 = x1 if x2 is None else x2
    pairs = [(i, j) for i in range(len(x1)) for j in range(len(rows2))
             if np.array_equal(x1[i], rows2[j]) and np.array_equal(x1[i], v[0].astype(np.float32))]
    for kern in (k.nngp, k.ntk):
      kern = np.asarray(kern)
      assert np.all(np.isfinite(kern))
      assert len({kern[i, j] for i, j in pairs}) == 1, name
    entry = (np.asarray(k.nngp)[0, 0], np.asarray(k.ntk)[0, 0])
    diagonal = diagonal or entry
    if len(x1) == len(x):  # same batch: the same program, bit for bit
      assert entry == diagonal
    else:  # another batch size may vectorise the diagonal pass differently: ulps
      np.testing.assert_allclose(entry, diagonal, rtol=4e-7)
  full = net.kernel_fn(x, None)
  assert np.asarray(full.ntk)[0, 2] / np.asarray(full.ntk)[0, 0] == 1.0


def test_equal_rows_exact_at_depth_100_and_match_float64():
  v = np.random.RandomState(0).randn(1, 10)
  x = np.concatenate([v, v])
  net = deep(stax.Erf, 100, W_std=1.5, b_std=0.05)
  k32 = np.asarray(net.kernel_fn(x.astype(np.float32), None, "ntk"))
  assert k32[0, 1] == k32[0, 0] == k32[1, 1]
  with jax.enable_x64(True):
    k64 = np.asarray(net.kernel_fn(x, None, "ntk"))
  np.testing.assert_allclose(k32, k64, rtol=1e-3)


def test_batch_tiles_keep_the_exact_diagonal():
  # Tiles that straddle the diagonal see each input in x1 and in x2: they must give
  # the same entries as the unbatched kernel, for any tile size.
  x = np.random.RandomState(0).randn(40, 30).astype(np.float32)
  net = deep(stax.Relu, 5, W_std=1.5, b_std=0.05)
  full = np.asarray(net.kernel_fn(x, None, "ntk"))
  with jax.enable_x64(True):
    exact = np.asarray(net.kernel_fn(x.astype(np.float64), None, "ntk"))
  for bs in (7, 8, 13, 40):
    tiled = np.asarray(sharding.batch(net.kernel_fn, batch_size=bs, devices=jax.devices()[:1])(
        x, None, "ntk"))
    np.testing.assert_array_equal(np.diag(tiled), np.diag(full))
    rel = np.max(np.abs(np.diag(tiled) - np.diag(exact)) / np.diag(exact))
    assert rel < 1e-6, (bs, rel)


def test_kernel_of_a_batch_with_itself_is_exactly_symmetric():
  x = 1e-3 * np.random.RandomState(0).randn(12, 7).astype(np.float32)
  for act in (stax.Erf, stax.Relu, lambda: stax.Tanh(deg=10)):
    k = deep(act, 40, W_std=1.3, b_std=0.05).kernel_fn(x, None)
    for kern in (np.asarray(k.nngp), np.asarray(k.ntk)):
      np.testing.assert_array_equal(kern, kern.T)


def test_programs_of_bounded_length_give_the_single_program_values():
  # The (n1, n2) pass is compiled in programs of at most NONLINEAR_PER_PROGRAM
  # nonlinearities (compile time linear in depth); splitting must not change values.
  depth = 2 * layer_lib.NONLINEAR_PER_PROGRAM + 3
  net = stax.serial(stax.Dense(64, W_std=1.4, b_std=0.1),
                    *[stax.serial(stax.Gelu(), stax.Dense(64, W_std=1.4, b_std=0.1))
                      for _ in range(depth)])
  units, bounds = layer_lib._plan(net)  # pylint: disable=protected-access
  assert len(bounds) == 3 and bounds[-1][1] == len(units)
  x1 = np.random.RandomState(0).randn(5, 6)
  x2 = np.random.RandomState(1).randn(3, 6)
  with jax.enable_x64(True):
    k = net.kernel_fn(x1, x2)
    covs, _, _ = layer_lib.diagonal_pass(net, jnp.asarray(x1), jnp.asarray(x2))
    one = layer_lib.matrix_pass(net, jnp.asarray(x1), jnp.asarray(x2), True, covs)
    np.testing.assert_allclose(k.nngp, one.nngp, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, one.ntk, rtol=1e-12)


def test_overflow_raises_instead_of_nan():
  x = np.random.RandomState(0).randn(4, 5).astype(np.float32)
  net = deep(stax.Relu, 2, W_std=1.5, b_std=0.1)
  with pytest.raises(FloatingPointError, match="float32.*float64"):
    net.kernel_fn(x * 1e20, None)
  wide = deep(stax.Relu, 24, W_std=10.0, b_std=0.0)
  with pytest.raises(FloatingPointError, match="float32"):
    wide.kernel_fn(x, None, "ntk")
  with jax.enable_x64(True):
    k = wide.kernel_fn(x.astype(np.float64), None, "ntk")
    assert np.all(np.isfinite(np.asarray(k)))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_float32_agrees_with_float64_at_depth_30(name):
  # Gelu's derivative moment lost all accuracy in float32 once variances passed ~1e7
  # (1 - p/p1 cancelled): its depth-30 NTK was 35% off; every activation is now ~1e-6.
  x = np.random.RandomState(0).randn(6, 10)
  x[3] = x[0]
  for W_std, b_std in ((2.5, 0.1), (1.3, 0.05)):
    net = deep(ACTIVATIONS[name], 30, W_std=W_std, b_std=b_std)
    k32 = net.kernel_fn(x.astype(np.float32), None)
    with jax.enable_x64(True):
      k64 = net.kernel_fn(x, None)
    for a, b in ((k32.nngp, k64.nngp), (k32.ntk, k64.ntk)):
      a, b = np.asarray(a, np.float64), np.asarray(b)
      assert np.max(np.abs(a - b)) / np.max(np.abs(b)) < 2e-5, (name, W_std)


@pytest.mark.parametrize("case", ["erf_float64", "relu_float32_deep", "gelu_nngp_only"])
def test_symmetric_tiles_give_the_untiled_kernel(case, monkeypatch):
  # x2=None kernels of n >= 2 TILE points come from the tiles on and above the diagonal
  # (kernels.stax.symmetric_tiles). Shrunk so that 23 points make 3 x 3 tiles of 8 (the
  # last padded): the same values as one program, exactly symmetric, the exact diagonal.
  from kernels.stax import symmetric_tiles  # pylint: disable=g-import-not-at-top
  x = np.random.RandomState(0).randn(23, 6)
  x[17] = x[3]  # one input twice, in different tiles
  get, dtype, tol = ("nngp", "ntk"), np.float64, 1e-13
  if case == "erf_float64":
    net = deep(stax.Erf, 3, W_std=1.5, b_std=0.05)
  elif case == "relu_float32_deep":  # three programs per tile (NONLINEAR_PER_PROGRAM)
    net = deep(stax.Relu, 2 * layer_lib.NONLINEAR_PER_PROGRAM + 3, W_std=1.4, b_std=0.1)
    dtype, tol = np.float32, 2e-6
  else:
    net = deep(stax.Gelu, 2, W_std=1.3, b_std=0.1)
    get = ("nngp",)
  with jax.enable_x64(dtype == np.float64):
    xs = jnp.asarray(x, dtype)
    whole = net.kernel_fn(xs, None, get)
    monkeypatch.setattr(symmetric_tiles, "TILE", 8)
    monkeypatch.setattr(symmetric_tiles, "MIN_POINTS", 16)
    assert symmetric_tiles.layout(23) == (3, 8)
    calls, run = [], symmetric_tiles.symmetric_kernel
    monkeypatch.setattr(symmetric_tiles, "symmetric_kernel",
                        lambda *a: calls.append(1) or run(*a))
    tiled = net.kernel_fn(xs, None, get)
    assert calls == [1]
  for g, a, b in zip(get, whole, tiled):
    a, b = np.asarray(a), np.asarray(b)
    assert b.shape == (23, 23) and b.dtype == dtype
    np.testing.assert_array_equal(b, b.T)
    np.testing.assert_allclose(b, a, rtol=tol, atol=tol * np.abs(a).max(), err_msg=g)
    assert b[3, 17] == b[3, 3] == b[17, 17]


def test_symmetric_tiles_raise_on_overflow(monkeypatch):
  # Tiles check only the diagonal of the diagonal tiles (the kernel is positive
  # semi-definite): overflow must still raise, not return inf.
  from kernels.stax import symmetric_tiles  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(symmetric_tiles, "TILE", 8)
  monkeypatch.setattr(symmetric_tiles, "MIN_POINTS", 16)
  x = np.random.RandomState(0).randn(20, 5).astype(np.float32)
  with pytest.raises(FloatingPointError, match="float32"):
    deep(stax.Relu, 24, W_std=10.0, b_std=0.0).kernel_fn(x, None, "ntk")


def test_networks_with_a_quadrature_are_not_tiled(monkeypatch):
  # A quadrature's dual treats its two arguments apart; such x2=None kernels are the
  # symmetrised whole matrix, which tiles (one orientation per pair) would not reproduce.
  from kernels.stax import symmetric_tiles  # pylint: disable=g-import-not-at-top
  net = deep(lambda: stax.ElementwiseNumerical(jnp.tanh, deg=12), 2, W_std=1.3, b_std=0.1)
  x = np.random.RandomState(0).randn(23, 6).astype(np.float32)
  whole = np.asarray(net.kernel_fn(x, None, "nngp"))
  monkeypatch.setattr(symmetric_tiles, "TILE", 8)
  monkeypatch.setattr(symmetric_tiles, "MIN_POINTS", 16)
  calls = []
  monkeypatch.setattr(symmetric_tiles, "symmetric_kernel",
                      lambda *a: calls.append(a) or pytest.fail("tiled"))
  np.testing.assert_array_equal(np.asarray(net.kernel_fn(x, None, "nngp")), whole)
  assert not calls


@pytest.mark.parametrize("case", ["cnn_pools", "branches_masked_attention"])
def test_general_network_in_one_program_per_step_gives_the_one_program_kernel(
    case, monkeypatch):
  # From LARGE_KERNEL_ENTRIES on, each step of a spatial network is its own program (its
  # input buffers donated); shrunk to 0 here so that tiny inputs take that path: the
  # values of the single program, a symmetric x2=None kernel, overflow still raising.
  rng = np.random.RandomState(0)
  kwargs = {}
  if case == "cnn_pools":
    net = stax.serial(stax.Conv(3, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu(),
                      stax.AvgPool((2, 2)), stax.Conv(3, (2, 2), strides=(1, 2),
                                                      padding="CIRCULAR"), stax.Erf(),
                      stax.GlobalAvgPool(), stax.Dense(2))
    x1, x2 = rng.randn(3, 8, 6, 2), rng.randn(2, 8, 6, 2)
  else:
    attn = stax.GlobalSelfAttention(4, 3, 3, 2, W_key_std=1.1, W_value_std=1.2,
                                    W_query_std=0.9, W_out_std=1.3)
    net = stax.serial(stax.Conv(4, (2,), padding="SAME"), stax.FanOut(2),
                      stax.parallel(stax.serial(stax.Relu(), stax.Conv(4, (1,))), attn),
                      stax.FanInSum(),
                      stax.LayerNorm(axis=(1, 2)), stax.Conv(3, (3,)), stax.Relu())
    x1, x2 = rng.randn(3, 7, 2), rng.randn(2, 7, 2)
    x1[0, 5:], x2[1, 4:] = 7.5, 7.5  # padded sequences
    kwargs = dict(mask_constant=7.5)
  calls, run = [], layer_lib._general_segment_jit  # pylint: disable=protected-access
  monkeypatch.setattr(layer_lib, "_general_segment_jit",
                      lambda *a, **k: calls.append(a[3:5]) or run(*a, **k))
  with jax.enable_x64(True):
    for b in (None, x2):
      one = net.kernel_fn(x1, b, ("nngp", "ntk"), **kwargs)
      assert len(calls) == 1
      monkeypatch.setattr(layer_lib, "LARGE_KERNEL_ENTRIES", 0)
      steps = net.kernel_fn(x1, b, ("nngp", "ntk"), **kwargs)
      assert len(calls) > 3 and all(stop == start + 1 for start, stop in calls[1:])
      for a, s in zip(one, steps):
        np.testing.assert_allclose(s, a, rtol=1e-12, atol=1e-14 * np.abs(a).max())
        if b is None:
          np.testing.assert_array_equal(s, np.transpose(s, (1, 0, 3, 2)[:s.ndim]))
      monkeypatch.setattr(layer_lib, "LARGE_KERNEL_ENTRIES", 2 ** 22)
      calls.clear()
  monkeypatch.setattr(layer_lib, "LARGE_KERNEL_ENTRIES", 0)
  big = stax.serial(*[stax.Conv(3, (3, 3), padding="SAME", W_std=1e6), stax.Relu()] * 4)
  with pytest.raises(FloatingPointError, match="float32"):
    big.kernel_fn(rng.randn(2, 4, 4, 1).astype(np.float32), None, "nngp")
