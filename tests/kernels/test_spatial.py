"""Convolutional, pooling, attention and other non-dense layers: every view agrees.

Values against neural-tangents are in test_nt_reference.py; here the finite views
(apply_fn, the Flax module, empirical NTKs, optax learning rates) are checked
against each other and against kernel_fn, the representation plan, bad inputs,
residual depth counting, and convergence in width and in depth with fitted rates.
"""
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import flax_module, optim, stax
from kernels import parameterization as pz
from kernels.empirical import conditional_nngp_fn, empirical_ntk_fn
from kernels.slopes import loglog_fit
from kernels.stax import layer as layer_mod


def _cnn(w, p="ntk"):
  return stax.serial(
      stax.Conv(w, (3, 3), padding="SAME", W_std=1.5, b_std=0.1, parameterization=p), stax.Relu(),
      stax.AvgPool((2, 2), (2, 2)),
      stax.Conv(w, (3, 3), padding="SAME", W_std=1.4, b_std=0.1, parameterization=p), stax.Relu(),
      stax.GlobalAvgPool(), stax.Dense(1, 1.0, 0.1, parameterization=p))


def _attention(w):
  return stax.serial(
      stax.Dense(w, 1.3, 0.1), stax.GlobalSelfAttention(w, w, w, 2, W_key_std=1.2, b_std=0.1),
      stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, 1.0, 0.1))


VIEW_NETS = {
    "cnn_mup": (_cnn(8, pz.mup()), (3, 6, 6, 2)),
    "cnn_standard_circular_flatten": (stax.serial(
        stax.Conv(6, (3, 2), (2, 1), "CIRCULAR", 1.3, 0.1, parameterization="standard"),
        stax.Erf(), stax.Flatten(), stax.Dense(2, 1.0, 0.1, parameterization="standard")),
        (3, 5, 4, 2)),
    "conv1d_layernorm_sumpool": (stax.serial(
        stax.Conv(6, (3,), padding="SAME", W_std=1.2), stax.LayerNorm((1, 2)), stax.Gelu(),
        stax.SumPool((2,), (2,)), stax.Flatten(), stax.Dense(2)), (3, 6, 2)),
    "attention": (_attention(8), (3, 5, 2)),
    "fanin_repeat": (stax.serial(
        stax.Dense(8, 1.2, 0.1), stax.FanOut(2),
        stax.parallel(stax.serial(stax.Dense(8), stax.Relu()), stax.Dense(8)),
        stax.FanInConcat(), stax.Dense(8), stax.Sin(),
        stax.repeat(stax.serial(stax.Dense(8, 1.1), stax.Relu()), 3), stax.Dense(2)), (3, 4)),
}


@pytest.mark.parametrize("name", sorted(VIEW_NETS))
def test_finite_views_agree(name):
  net, shape = VIEW_NETS[name]
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  out_shape, params = net.init_fn(jax.random.PRNGKey(1), shape)
  y = net.apply_fn(params, x)
  assert y.shape == out_shape
  module = flax_module.to_flax(net)
  variables = module.init(jax.random.PRNGKey(2), x)
  if name not in ("fanin_repeat", "attention"):  # (W, b) pairs only: both directions
    np.testing.assert_allclose(module.apply(flax_module.to_flax_params(net, params), x), y,
                               rtol=1e-6, atol=1e-6)
  if "repeat" not in name:  # stacked repeat parameters: the module initialises its own
    back = flax_module.from_flax_params(net, variables, shape)
    np.testing.assert_allclose(module.apply(variables, x), net.apply_fn(back, x), rtol=1e-6,
                               atol=1e-6)
  lrs = optim.learning_rates(net, params)
  ntks = [empirical_ntk_fn(net.apply_fn, implementation=impl, learning_rates=lrs)(x, None, params)
          for impl in ("jacobian", "ntvp", "structured")]
  for other in ntks[1:]:  # structured: per-layer contractions for Conv; attention and repeat fall back
    np.testing.assert_allclose(other, ntks[0], rtol=2e-4, atol=1e-5)
  k = net.kernel_fn(x, None, ("nngp", "ntk"))
  assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))


def test_conv_fan_in_counts_the_receptive_field_under_mup():
  net = stax.serial(stax.Conv(16, (3, 3), W_std=1.0, parameterization="mup"), stax.Relu(),
                    stax.Conv(32, (3, 2), W_std=1.0, parameterization="mup"), stax.Relu(),
                    stax.Flatten(), stax.Dense(1, parameterization="mup"))
  _, params = net.init_fn(jax.random.PRNGKey(0), (2, 8, 8, 3))
  lrs = optim.learning_rates(net, params)
  p = pz.mup()
  ctx = net.context()
  hidden = p.dense_scales(fan_in=16 * 3 * 2, fan_out=32, is_input=False, is_readout=False,
                          W_std=1.0, b_std=None)
  assert lrs[2][0] == pytest.approx(hidden.w_lr)  # SGD muP: lr * fan_in, fan_in = C k_h k_w
  assert lrs[2][0] == pytest.approx(16 * 3 * 2)
  s = net.layers[2].scales(16 * 3 * 2, (2,), ctx)
  assert s.w_mult == pytest.approx((16 * 3 * 2) ** -0.5)


def test_plan_builds_the_full_spatial_covariance_only_where_needed():
  flat = stax.serial(stax.Conv(4, (3, 3)), stax.Relu(), stax.Conv(4, (3, 3)), stax.Relu(),
                     stax.Flatten(), stax.Dense(1))
  _, full = layer_mod.spatial_plan(flat, False)
  assert not any(full)  # a flatten-only CNN never builds the full covariance
  gap = stax.serial(stax.Conv(4, (3, 3)), stax.Relu(), stax.AvgPool((2, 2)), stax.Conv(4, (3, 3)),
                    stax.Relu(), stax.Flatten(), stax.Dense(1))
  _, full = layer_mod.spatial_plan(gap, False)
  assert full == (True, True, True, False, False, False, False)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 7, 2))
  with jax.enable_x64(True):  # the diagonal plan gives the same numbers as the full one
    x = x.astype(jnp.float64)
    a = flat.kernel_fn(x, None, ("nngp", "ntk"))
    full_plan = stax.serial(*flat.layers[:4], stax.AvgPool((1, 1)), *flat.layers[4:])
    b = full_plan.kernel_fn(x, None, ("nngp", "ntk"))
  np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-12)
  np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-12)


@pytest.mark.parametrize("make,x_shape,match", [
    (lambda: stax.serial(stax.Conv(4, (3, 3)), stax.Relu()), (2, 6, 3), "filter_shape"),
    (lambda: stax.serial(stax.Conv(4, (5, 5)), stax.Relu()), (2, 4, 4, 3), "filter_shape"),
    (lambda: stax.serial(stax.Conv(4, (2, 2), (5, 1), "SAME")), (2, 4, 4, 3), "strides"),
    (lambda: stax.serial(stax.AvgPool((5, 1))), (2, 4, 4, 3), "window_shape"),
    (lambda: stax.serial(stax.Dense(4), stax.GlobalSelfAttention(4, 4, 4, 1)), (2, 3),
     "spatial axes"),
    (lambda: stax.serial(stax.Dense(4), stax.GlobalAvgPool()), (2, 3), "spatial axes"),
    (lambda: stax.serial(stax.Dense(4), stax.LayerNorm(axis=3)), (2, 3, 3), "axis"),
    (lambda: stax.serial(stax.Dense(4), stax.LayerNorm(axis=(1,))), (2, 3, 3), "axis"),
])
def test_bad_spatial_inputs_name_the_argument(make, x_shape, match):
  x = np.ones(x_shape, np.float32)
  with pytest.raises(ValueError, match=match):
    make().kernel_fn(x, None, "ntk")


def test_bad_arguments_name_themselves():
  for make, match in ((lambda: stax.Dropout(0.0), "rate"), (lambda: stax.Dropout(1.5), "rate"),
                      (lambda: stax.Dropout(0.5, "eval"), "mode"),
                      (lambda: stax.Conv(4, (3, 3), padding="FULL"), "padding"),
                      (lambda: stax.Conv(4, (3, 3), strides=(1,)), "strides"),
                      (lambda: stax.GlobalSelfAttention(4, 4, 4, 1, linear_scaling=False),
                       "linear_scaling"),
                      (lambda: stax.Monomial(7), "degree")):
    with pytest.raises(ValueError, match=match):
      make()
  net = stax.serial(stax.Conv(4, (3, 3)), stax.Relu())
  with pytest.raises(ValueError, match="x2 must have shape"):  # channels disagree
    net.kernel_fn(np.ones((2, 5, 5, 3)), np.ones((2, 5, 5, 2)), "nngp")


def test_serial_refuses_mixed_parameterizations_and_counts_residual_blocks():
  with pytest.raises(ValueError, match=r"mix parameterizations.*Dense at \(0,\).*Dense at \(2,\)"):
    stax.serial(stax.Dense(8, parameterization="ntk"), stax.Relu(),
                stax.Dense(1, parameterization="mup"))
  mixed = stax.serial(stax.Dense(8, parameterization="ntk"), stax.Relu(),
                      stax.Dense(1, parameterization="mup"), mixed_parameterizations=True)
  assert np.isfinite(mixed.kernel_fn(np.ones((2, 3)), None, "ntk")).all()
  # Attention reads only its logits' exponent: neural-tangents' GlobalSelfAttention()
  # (its "ntk", exponent 1/2) sits between "standard" layers (values against
  # neural-tangents: test_channel_axes.py), not between "mup" ones (exponent 1).
  attention = lambda **kw: stax.GlobalSelfAttention(4, 2, 2, 1, **kw)
  std = stax.serial(stax.Dense(4, parameterization="standard"), attention(), stax.Relu(),
                    stax.GlobalAvgPool(), stax.Dense(1, parameterization="standard"))
  assert np.isfinite(std.kernel_fn(np.ones((2, 3, 2)), None, "ntk")).all()
  with pytest.raises(ValueError, match=r"mix parameterizations.*GlobalSelfAttentionLayer at"):
    stax.serial(stax.Dense(4, parameterization="mup"), attention(), stax.Relu(),
                stax.GlobalAvgPool(), stax.Dense(1, parameterization="mup"))
  stax.serial(stax.Dense(4, parameterization="mup"), attention(parameterization="mup"),
              stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, parameterization="mup"))
  p = pz.depth_mup()

  def block():
    return stax.Residual(stax.serial(stax.Relu(), stax.Dense(8, parameterization=p)), p)

  net = stax.serial(stax.Dense(8, parameterization=p), *[block() for _ in range(4)], stax.Relu(),
                    stax.Dense(1, parameterization=p))
  assert net.context().num_residual == 4
  assert net.layers[1].branch_multiplier((1,), net.context()) == pytest.approx(0.5)
  stated = pz.depth_mup(9)
  with pytest.raises(ValueError, match="depth=9 but the network has 4 residual blocks"):
    bad = stax.serial(stax.Dense(8, parameterization=stated), *[stax.Residual(
        stax.serial(stax.Relu(), stax.Dense(8, parameterization=stated)), stated)
        for _ in range(4)], stax.Relu(), stax.Dense(1, parameterization=stated))
    bad.kernel_fn(np.ones((2, 3)), None, "ntk")
  one_over_l = pz.depth_mup(branch_exponent=1.0)
  with pytest.raises(ValueError, match="branch exponents"):
    stax.serial(stax.Dense(8, parameterization=p), block(), stax.Residual(
        stax.serial(stax.Relu(), stax.Dense(8, parameterization=one_over_l)), one_over_l))


def test_repeat_equals_serial():
  block = stax.serial(stax.Conv(6, (3, 3), padding="SAME", W_std=1.3, b_std=0.1), stax.Relu())
  head = stax.Conv(6, (2, 2), padding="SAME", W_std=1.2)
  a = stax.serial(head, stax.repeat(block, 3), stax.GlobalAvgPool(), stax.Dense(1))
  b = stax.serial(head, block, block, block, stax.GlobalAvgPool(), stax.Dense(1))
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 5, 2))
  with jax.enable_x64(True):
    x = x.astype(jnp.float64)
    ka, kb = a.kernel_fn(x, None, ("nngp", "ntk")), b.kernel_fn(x, None, ("nngp", "ntk"))
    np.testing.assert_allclose(ka.nngp, kb.nngp, rtol=1e-12)
    np.testing.assert_allclose(ka.ntk, kb.ntk, rtol=1e-12)
    p = dataclasses.replace(pz.ntk(), branch_exponent=0.5)  # residual blocks counted inside
    res = stax.serial(stax.Relu(), stax.Conv(6, (3, 3), padding="SAME", W_std=1.3))
    c = stax.serial(head, stax.repeat(stax.Residual(res, p), 3), stax.GlobalAvgPool(),
                    stax.Dense(1))
    d = stax.serial(head, *[stax.Residual(res, p)] * 3, stax.GlobalAvgPool(), stax.Dense(1))
    assert c.context().num_residual == d.context().num_residual == 3
    np.testing.assert_allclose(c.kernel_fn(x, None, "ntk"), d.kernel_fn(x, None, "ntk"),
                               rtol=1e-12)


def _compile_seconds(net, x):
  steps = len(layer_mod.spatial_plan(net, False)[0])
  lowered = layer_mod._general_segment_jit.lower(net, True, False, 0, steps, x, None, None)  # pylint: disable=protected-access
  t0 = time.perf_counter()
  lowered.compile()
  return time.perf_counter() - t0


@pytest.mark.slow
def test_repeat_compile_time_does_not_grow_with_depth():
  x = jnp.ones((4, 6, 6, 2))
  times = {10: [], 100: []}
  for rep in range(3):  # alternated, medians: the machine is shared; new programs each time
    block = stax.serial(stax.Conv(4, (3, 3), padding="SAME", W_std=1.3 + 0.01 * rep),
                        stax.Relu())
    for n in (10, 100):
      net = stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.repeat(block, n),
                        stax.GlobalAvgPool(), stax.Dense(1))
      times[n].append(_compile_seconds(net, x))
  ratio = np.median(times[100]) / np.median(times[10])
  print(f"repeat compile time: 10 blocks {np.median(times[10]):.3f} s, 100 blocks "
        f"{np.median(times[100]):.3f} s, ratio {ratio:.2f}")
  assert ratio <= 1.5


def test_deep_stacks_stay_finite_in_float32():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 6, 2))
  conv = stax.serial(stax.Conv(4, (3, 3), padding="SAME", W_std=1.4, b_std=0.05),
                     stax.repeat(stax.serial(stax.Conv(4, (3, 3), padding="SAME", W_std=1.4,
                                                       b_std=0.05), stax.Relu()), 100),
                     stax.GlobalAvgPool(), stax.Dense(1))
  k = conv.kernel_fn(x, None, ("nngp", "ntk"))
  assert k.nngp.dtype == jnp.float32 and np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
  seq = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 2))
  attn = stax.serial(stax.Dense(4, 1.2), stax.repeat(stax.serial(
      stax.GlobalSelfAttention(4, 4, 4, 1, W_key_std=1.1, b_std=0.1), stax.Relu(),
      stax.Dense(4, 1.3, 0.1)), 100), stax.GlobalAvgPool(), stax.Dense(1))
  k = attn.kernel_fn(seq, None, ("nngp", "ntk"))
  assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))


def _relative_errors(make, x, widths, seeds):
  exact = make(widths[0]).kernel_fn(x, None, ("nngp", "ntk"))
  errs = {"nngp": [], "ntk": []}
  for w in widths:
    net = make(w)
    nngp_fn = conditional_nngp_fn(net.apply_fn)
    e_nngp, e_ntk = [], []
    for s in range(seeds):
      _, params = net.init_fn(jax.random.PRNGKey(100 * w + s), x.shape)
      lrs = optim.learning_rates(net, params)
      ntk = empirical_ntk_fn(net.apply_fn, learning_rates=lrs)(x, None, params)
      nngp = nngp_fn(x, None, params)
      e_nngp.append(np.linalg.norm(nngp - exact.nngp) / np.linalg.norm(exact.nngp))
      e_ntk.append(np.linalg.norm(ntk - exact.ntk) / np.linalg.norm(exact.ntk))
    errs["nngp"].append(np.mean(e_nngp))
    errs["ntk"].append(np.mean(e_ntk))
  return errs


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cnn", "attention"])
def test_finite_networks_approach_the_kernel_at_rate_one_over_sqrt_width(kind):
  widths = [16, 32, 64, 128, 256]
  if kind == "cnn":
    x, make = jax.random.normal(jax.random.PRNGKey(0), (4, 6, 6, 2)), _cnn
  else:
    x, make = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 3)), _attention
  errs = _relative_errors(make, x, widths, seeds=4)
  for name, e in errs.items():
    fit = loglog_fit(widths, e)
    print(f"{kind} {name}: relative error {['%.3g' % v for v in e]} at widths {widths}; {fit}")
    assert -0.8 < fit.slope < -0.3, (name, str(fit))


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_residual_cnn_kernels_converge_in_depth(alpha):
  p = dataclasses.replace(pz.ntk(), branch_exponent=alpha)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 5, 2))

  def net(blocks):
    block = stax.serial(stax.Relu(), stax.Conv(4, (3, 3), padding="SAME", W_std=1.4,
                                               b_std=0.1))
    return stax.serial(stax.Conv(4, (3, 3), padding="SAME", W_std=1.2),
                       stax.repeat(stax.Residual(block, p), blocks), stax.Relu(),
                       stax.GlobalAvgPool(), stax.Dense(1))

  with jax.enable_x64(True):
    x = x.astype(jnp.float64)
    depths = [2, 4, 8, 16, 32]
    ks = {L: net(L).kernel_fn(x, None, ("nngp", "ntk")) for L in depths + [64]}
  change = [float(np.linalg.norm(ks[2 * L].ntk - ks[L].ntk) / np.linalg.norm(ks[L].ntk))
            for L in depths]
  fit = loglog_fit(depths, change)
  print(f"branch L^-{alpha}: |K_2L - K_L| / |K_L| = {['%.3g' % c for c in change]} at L = "
        f"{depths}; {fit}")
  assert fit.slope < -0.5 and change[-1] < 0.1


@pytest.mark.parametrize("spatial", [False, True])
def test_same_inputs_given_twice_are_x2_none(spatial):
  """kernel_fn(x, x) is kernel_fn(x, None) (neural-tangents' x1_is_x2): with Dropout in
  train mode the diagonal keeps its 1/rate (it was 2.0 against 4.0 at rate 0.5)."""
  if spatial:
    net = stax.serial(stax.Conv(4, (2, 2), padding="SAME"), stax.Relu(), stax.Dropout(0.5),
                      stax.Flatten(), stax.Dense(1))
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 2))
  else:
    net = stax.serial(stax.Dense(8, 1.0, None), stax.Erf(), stax.Dropout(0.5),
                      stax.Dense(1, 1.0, None))
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 3))
  kernel_fn = net[2]
  alone = kernel_fn(x, None, ("nngp", "ntk"))
  for x2 in (x, np.array(x), jnp.array(x) + 0.0):
    twice = kernel_fn(x, x2, ("nngp", "ntk"))
    np.testing.assert_allclose(twice.nngp, alone.nngp, rtol=1e-6)
    np.testing.assert_allclose(twice.ntk, alone.ntk, rtol=1e-6)
  # Other inputs: independent masks, no 1/rate on the diagonal.
  other = kernel_fn(x, x + 1e-3, "nngp")
  assert np.all(np.diag(other) < 0.75 * np.diag(alone.nngp))


def test_summed_positional_embedding_needs_the_input_channels():
  """neural-tangents' and our own apply_fn fail to add the embedding; kernel_fn returned
  a kernel of no network."""
  def net(c):
    return stax.serial(stax.Dense(c), stax.GlobalSelfAttention(
        n_chan_out=4, n_chan_key=4, n_chan_val=3, n_heads=1, attention_mechanism="ABS",
        pos_emb_type="SUM", val_pos_emb=True, n_chan_pos_emb=4), stax.Flatten(),
        stax.Dense(2))
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 6, 2))
  for fn in (lambda n: n[2](x, None, "nngp"), lambda n: n[0](jax.random.PRNGKey(0), x.shape)):
    with pytest.raises(ValueError, match="n_chan_pos_emb=4"):
      fn(net(3))
  assert net(4)[2](x, None, "nngp").shape == (2, 2)


@pytest.mark.parametrize("window", [(2, 2), (2, 3)])
def test_pooling_reads_channels_first_activations(window):
  """AvgPool / SumPool / GlobalAvgPool with channel_axis=1 after a Conv writing NCHW: the
  same finite network and the same kernels as the channels-last one (equal to
  neural-tangents' to 1e-15 in float64, measured side by side); it was a ValueError."""
  def net(nchw):
    dn = dict(dimension_numbers=("NHWC", "HWIO", "NCHW")) if nchw else {}
    dn2 = dict(dimension_numbers=("NCHW", "HWIO", "NCHW")) if nchw else {}
    ax = dict(channel_axis=1) if nchw else {}
    return stax.serial(stax.Conv(3, (2, 2), padding="SAME", **dn), stax.AvgPool(window, **ax),
                       stax.Relu(), stax.Conv(2, (2, 2), padding="SAME", **dn2),
                       stax.SumPool((1, 1), **ax), stax.Relu(), stax.GlobalAvgPool(**ax),
                       stax.Dense(1))
  with jax.enable_x64(True):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 6, 2)))
    a, b = net(True), net(False)
    ka, kb = a.kernel_fn(x, None, ("nngp", "ntk")), b.kernel_fn(x, None, ("nngp", "ntk"))
    np.testing.assert_allclose(ka.nngp, kb.nngp, rtol=1e-13)
    np.testing.assert_allclose(ka.ntk, kb.ntk, rtol=1e-13)
    _, params = a.init_fn(jax.random.PRNGKey(0), x.shape)
    np.testing.assert_allclose(a.apply_fn(params, x), b.apply_fn(params, x), rtol=1e-12)
    # As the first layer, it states the raw inputs' channel axis.
    first = stax.serial(stax.AvgPool(window, channel_axis=1), stax.Flatten(), stax.Dense(1))
    last = stax.serial(stax.AvgPool(window), stax.Flatten(), stax.Dense(1))
    xt = jnp.moveaxis(x, -1, 1)
    np.testing.assert_allclose(first.kernel_fn(xt, None, "nngp"),
                               last.kernel_fn(x, None, "nngp"), rtol=1e-13)
  with pytest.raises(ValueError, match="channel_axis"):
    stax.AvgPool((2, 2), channel_axis=0)
