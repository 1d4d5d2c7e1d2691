"""Layers on activations whose channels are not last (neural-tangents' ``channel_axis``).

Values: tests/fixtures/nt_reference_layouts.json, computed by neural-tangents 0.6.5
itself (``benchmarks/nt_reference_layouts.py``): NCHW images through LayerNorm,
attention, Dense, Index, ImageResize, pooling and FanInConcat, an (n, H, C, W) layout,
padded NCW sequences with ``mask_constant``, neural-tangents' attention between
``standard`` Dense layers, and the width multipliers ``s`` of Dense and of the
convolutions. Here also: each channels-first network is the channels-last one with its activations transposed (the same kernels, the same
finite network for the same parameters), and a layer reading another axis than its
input's channels is a ValueError, as in neural-tangents (the finite layer would act on
a position axis while the kernel treats it as channels).
"""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import layer_specs
from kernels import stax
from kernels.empirical import empirical_ntk_fn

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "nt_reference_layouts.json"
RTOL = 1e-6
DATA = json.loads(FIXTURE.read_text())
TO_NCHW = dict(dimension_numbers=("NHWC", "HWIO", "NCHW"))
NCHW = dict(dimension_numbers=("NCHW", "HWIO", "NCHW"))


def _array(rows):
  if not isinstance(rows, list):
    return np.float64(float(rows))
  return np.array([_array(r) for r in rows], np.float64)


def _rel_err(ours, ref):
  return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-300))


def test_fixture_covers_the_intended_cases():
  assert DATA["dtype"] == "float64" and DATA["versions"]["neural_tangents"] == "0.6.5"
  names = [c["name"] for c in DATA["cases"]]
  for key in ("nchw_layernorm", "nchw_attention", "nchw_dense_on_channels", "nchw_dense_first",
              "nchw_index", "nchw_resize", "nchw_fanin_concat", "hcw_", "ncw_masked_avgpool",
              "ncw_masked_sumpool", "standard_dense_attention", "_width_multipliers",
              "unchained_width_multipliers", "standard_conv_width_multipliers",
              "conv_transpose_local_unchained", "_x2none", "_x2"):
    assert any(key in n for n in names), key


def test_matches_neural_tangents_float64():
  """Every fixture case (one test: the networks share compiled programs' warm-up)."""
  errors = {}
  with jax.enable_x64(True):
    for case in DATA["cases"]:
      _, _, kernel_fn = layer_specs.build(case["layers"], stax, {})
      x1 = jnp.asarray(case["x1"], jnp.float64)
      x2 = None if case["x2"] is None else jnp.asarray(case["x2"], jnp.float64)
      k = kernel_fn(x1, x2, ("nngp", "ntk"), **case["kwargs"])
      nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
      ref_nngp, ref_ntk = _array(case["nngp"]), _array(case["ntk"])
      assert nngp.shape == ref_nngp.shape and ntk.shape == ref_ntk.shape, case["name"]
      errors[case["name"]] = max(_rel_err(nngp, ref_nngp), _rel_err(ntk, ref_ntk))
  print("max relative error against neural-tangents:", max(errors.values()))
  bad = {n: e for n, e in errors.items() if not e <= RTOL}
  assert not bad, f"relative errors above {RTOL}: {bad}"


def _pair(which):
  """(channels-first network, the same network channels last)."""
  def net(first):
    ax = dict(channel_axis=1) if first else {}
    conv_in = lambda n: stax.Conv(n, (2, 2), padding="SAME", b_std=0.1, **(TO_NCHW if first else {}))
    conv = lambda n: stax.Conv(n, (2, 2), padding="SAME", **(NCHW if first else {}))
    if which == "layernorm":
      body = [conv_in(6), stax.LayerNorm(axis=(1, 2, 3), **ax), stax.Relu(), conv(6),
              stax.LayerNorm(axis=1 if first else -1, **ax), stax.Erf(), conv(6),
              stax.LayerNorm(axis=(1, 3) if first else (2, 3), **ax)]
    elif which == "attention":
      body = [conv_in(6), stax.GlobalSelfAttention(6, 4, 4, 2, pos_emb_type="SUM", **ax),
              stax.Relu(), stax.GlobalSelfAttention(6, 4, 4, 2, attention_mechanism="RELU",
                                                    **ax)]
    elif which == "dense":
      body = [conv_in(6), stax.Relu(), stax.Dense(5, 1.2, 0.1, **ax), stax.Erf(),
              stax.Dense(4, **ax)]
    elif which == "index":
      crop = (slice(None), slice(None), slice(1, 3)) if first else (slice(None), slice(1, 3))
      row = (slice(None), slice(None), 1) if first else (slice(None), 1)
      body = [conv_in(6), stax.Relu(), stax.Index(crop, **ax), conv(6), stax.Relu(),
              stax.Index(row, **ax), stax.Dense(3, **ax), stax.Relu()]
    elif which == "resize":
      shape = (-1, -1, 7, 5) if first else (-1, 7, 5, -1)
      body = [conv_in(6), stax.Relu(), stax.ImageResize(shape, "linear", **ax), conv(6),
              stax.Relu()]
    elif which == "concat":
      body = [conv_in(6), stax.FanOut(2), stax.parallel(conv(4), stax.serial(stax.Relu(), conv(6))),
              stax.FanInConcat(1 if first else -1), conv(6), stax.Relu()]
    return stax.serial(*body, stax.GlobalAvgPool(**ax), stax.Dense(2))
  return net(True), net(False)


@pytest.mark.parametrize("which", ["layernorm", "attention", "dense", "index", "resize",
                                   "concat"])
def test_channels_first_is_channels_last_transposed(which):
  """The same kernels and the same finite network (parameters shared) for NCHW and NHWC
  activations; it was a ValueError for every layer here but pooling, and FanInConcat
  along NCHW channels concatenated image rows."""
  first, last = _pair(which)
  with jax.enable_x64(True):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 6, 2)))
    x2 = jnp.asarray(np.random.default_rng(1).normal(size=(2, 4, 6, 2)))
    for b in (None, x2):
      ka, kb = first.kernel_fn(x, b, ("nngp", "ntk")), last.kernel_fn(x, b, ("nngp", "ntk"))
      np.testing.assert_allclose(ka.nngp, kb.nngp, rtol=1e-12, atol=1e-14)
      np.testing.assert_allclose(ka.ntk, kb.ntk, rtol=1e-12, atol=1e-14)
    _, params = first.init_fn(jax.random.PRNGKey(0), x.shape)
    ya, yb = first.apply_fn(params, x), last.apply_fn(params, x)
    assert float(jnp.max(jnp.abs(yb))) > 1e-3
    np.testing.assert_allclose(ya, yb, rtol=1e-10, atol=1e-12)
    if which == "dense":  # Dense on channels 1 is not structured: NTK-vector products
      ea = empirical_ntk_fn(first.apply_fn, trace_axes=())(x, None, params)
      eb = empirical_ntk_fn(last.apply_fn, trace_axes=())(x, None, params)
      np.testing.assert_allclose(ea, eb, rtol=1e-10, atol=1e-12)


def test_masked_pooling_reads_channels_first():
  """Padded NCW sequences through AvgPool / GlobalAvgPool with channel_axis=1: the kernels
  and the finite outputs and masks of the channels-last network (it was a ValueError)."""
  mask = 7.5

  def net(first):
    ax = dict(channel_axis=1) if first else {}
    conv = stax.Conv(4, (2,), padding="SAME", b_std=0.1,
                     **(dict(dimension_numbers=("NHC", "HIO", "NCH")) if first else {}))
    return stax.serial(conv, stax.Relu(), stax.AvgPool((2,), padding="SAME", **ax),
                       stax.GlobalAvgPool(**ax), stax.Dense(2))
  with jax.enable_x64(True):
    x = np.random.default_rng(2).normal(size=(3, 5, 2))
    x[0, 3:] = mask
    x[2, 1:] = mask
    x = jnp.asarray(x)
    a, b = net(True), net(False)
    ka = a.kernel_fn(x, None, ("nngp", "ntk"), mask_constant=mask)
    kb = b.kernel_fn(x, None, ("nngp", "ntk"), mask_constant=mask)
    np.testing.assert_allclose(ka.nngp, kb.nngp, rtol=1e-12)
    np.testing.assert_allclose(ka.ntk, kb.ntk, rtol=1e-12)
    _, params = a.init_fn(jax.random.PRNGKey(0), x.shape)
    ya, yb = a.apply_fn(params, x, mask_constant=mask), b.apply_fn(params, x, mask_constant=mask)
    np.testing.assert_allclose(ya.masked_value, yb.masked_value, rtol=1e-12)
    np.testing.assert_array_equal(ya.mask, yb.mask)


@pytest.mark.parametrize("layer,match", [
    (stax.Dense(3), "Dense at"),
    (stax.LayerNorm(axis=1), "LayerNorm at"),
    (stax.AvgPool((1, 1)), "AvgPool at"),
    (stax.GlobalAvgPool(), "GlobalAvgPool at"),
    (stax.GlobalSelfAttention(4, 2, 2, 1), "GlobalSelfAttention at"),
    (stax.Conv(4, (1, 1)), "dimension_numbers whose lhs has C on axis 1"),
    (stax.Index((slice(None), slice(0, 1))), "Index at"),
])
def test_a_layer_reading_another_axis_than_the_channels_is_a_value_error(layer, match):
  """After a Conv writing NCHW, a layer left at channel_axis=-1 would contract or pool
  image columns in the finite network while the kernel treats them as channels (it was
  computed without complaint); neural-tangents refuses such networks too."""
  net = stax.serial(stax.Conv(4, (2, 2), **TO_NCHW), stax.Relu(), stax.Conv(4, (1, 1), **NCHW),
                    layer)
  with pytest.raises(ValueError, match=match):
    net.kernel_fn(jnp.ones((2, 3, 4, 2)), None, "nngp")
  mixed = stax.serial(stax.Conv(4, (2, 2), **TO_NCHW), stax.FanOut(2),
                      stax.parallel(stax.Conv(4, (1, 1), dimension_numbers=("NCHW", "HWIO",
                                                                            "NHWC")),
                                    stax.Identity()), stax.FanInConcat())
  with pytest.raises(ValueError, match="FanInConcat at .* different axes"):
    mixed.kernel_fn(jnp.ones((2, 3, 4, 2)), None, "nngp")
  # Square activations (4 x 4 x 4) sum or multiply NCHW with NHWC in the finite network.
  for fan_in, name in ((stax.FanInSum(), "FanInSum"), (stax.FanInProd(), "FanInProd")):
    square = stax.serial(stax.Conv(4, (1, 1), **TO_NCHW), stax.FanOut(2), stax.parallel(
        stax.Conv(4, (1, 1), dimension_numbers=("NCHW", "HWIO", "NHWC")),
        stax.Conv(4, (1, 1), **NCHW)), fan_in)
    with pytest.raises(ValueError, match=f"{name} at .* different axes"):
      square.kernel_fn(jnp.ones((2, 4, 4, 2)), None, "nngp")


def test_channel_axis_arguments_are_checked():
  for make in (lambda a: stax.LayerNorm(channel_axis=a), lambda a: stax.Dense(2, channel_axis=a),
               lambda a: stax.GlobalSelfAttention(4, 2, 2, 1, channel_axis=a),
               lambda a: stax.Index((slice(None),), channel_axis=a),
               lambda a: stax.ImageResize((-1, 2, -1), "linear", channel_axis=a)):
    for bad in (0, True, 1.0):
      with pytest.raises(ValueError, match="channel_axis"):
        make(bad)
  net = stax.serial(stax.Conv(4, (2, 2), **TO_NCHW), stax.LayerNorm(axis=(2, 3), channel_axis=1))
  with pytest.raises(ValueError, match="must include the channel axis 1"):
    net.kernel_fn(jnp.ones((2, 3, 4, 2)), None, "nngp")
  far = stax.serial(stax.Conv(4, (2, 2)), stax.Dense(3, channel_axis=5))
  with pytest.raises(ValueError, match="channel_axis=5 is not a non-batch axis"):
    far.kernel_fn(jnp.ones((2, 3, 4, 2)), None, "nngp")
