"""Masked inputs (neural-tangents' ``mask_constant``) through kernel_fn and apply_fn.

The reference values in tests/fixtures/nt_reference_masked.json were computed by
neural-tangents 0.6.5 itself (``benchmarks/nt_reference_masked.py``): padded sequences
and images with masked pixels through convolutions, ConvLocal, ConvTranspose, pooling,
Flatten, attention, LayerNorm, FanInProd and FanInConcat. The other tests check the finite network: a padded sequence gives the
outputs of the unpadded one, and the kernels are the finite network's covariances.
"""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import layer_specs
from kernels import stax
from kernels.kernel import MaskedArray

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "nt_reference_masked.json"
RTOL = 1e-6
MASK = 7.5


def _build(spec):
  return layer_specs.build(spec, stax, {})


def _array(rows):
  if not isinstance(rows, list):
    return np.float64(float(rows))
  return np.array([_array(r) for r in rows], np.float64)


def _max_rel_err(ours, ref):
  scale = max(np.max(np.abs(ref)), np.finfo(np.float64).tiny)
  return float(np.max(np.abs(ours - ref)) / scale)


DATA = json.loads(FIXTURE.read_text())


def test_fixture_covers_the_intended_cases():
  assert DATA["dtype"] == "float64" and DATA["versions"]["neural_tangents"] == "0.6.5"
  names = [c["name"] for c in DATA["cases"]]
  for key in ("conv_relu_gap", "valid_strided_circular_spatial_output", "edges1_edges0_flatten",
              "sumpool_gsp", "attention_softmax_then_softmax_pos_sum",
              "attention_identity_then_identity_sqrt_pos_sum", "layernorm_spatial_then_channels",
              "fanout_parallel_faninsum", "mlp_masked_point", "faninprod",
              "faninconcat_channels", "faninconcat_positions", "convlocal", "convtranspose",
              "_x2none", "_x2"):
    assert any(key in n for n in names), key


def test_matches_neural_tangents_float64():
  """Every fixture case (one test: the networks share compiled programs' warm-up)."""
  errors = {}
  with jax.enable_x64(True):
    for case in DATA["cases"]:
      _, _, kernel_fn = _build(case["layers"])
      x1 = jnp.asarray(case["x1"], jnp.float64)
      x2 = None if case["x2"] is None else jnp.asarray(case["x2"], jnp.float64)
      k = kernel_fn(x1, x2, ("nngp", "ntk"), **case["kwargs"])
      nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
      assert nngp.dtype == np.float64 and np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk))
      ref_nngp, ref_ntk = _array(case["nngp"]), _array(case["ntk"])
      assert nngp.shape == ref_nngp.shape and ntk.shape == ref_ntk.shape, case["name"]
      errors[case["name"]] = max(_max_rel_err(nngp, ref_nngp), _max_rel_err(ntk, ref_ntk))
  bad = {n: e for n, e in errors.items() if not e <= RTOL}
  assert not bad, f"relative errors above {RTOL}: {bad}"


def _pad(x, length, value=MASK):
  """Sequences (n, L, c) padded to ``length`` positions with ``value``."""
  return np.concatenate([x, np.full((x.shape[0], length - x.shape[1], x.shape[2]), value)], 1)


ATTENTION = dict(n_chan_out=6, n_chan_key=4, n_chan_val=4, n_heads=2, W_key_std=1.1,
                 W_value_std=1.2, W_query_std=0.9, W_out_std=1.3, b_std=0.1)


def _sequence_networks():
  return {
      "attention_softmax": stax.serial(
          stax.Dense(6, 1.2, 0.1), stax.GlobalSelfAttention(**ATTENTION), stax.Relu(),
          stax.GlobalAvgPool(), stax.Dense(2, 1.0, 0.1)),
      "attention_identity_conv_avgpool_residual": stax.serial(
          stax.Conv(6, (3,), padding="SAME", b_std=0.1),
          stax.GlobalSelfAttention(attention_mechanism="IDENTITY", **ATTENTION),
          stax.LayerNorm(), stax.Erf(), stax.AvgPool((3,), padding="SAME"),
          stax.Residual(stax.serial(stax.Conv(6, (3,), padding="SAME"), stax.Gelu(),
                                    stax.Conv(6, (3,), padding="SAME"))),
          stax.FanOut(2), stax.parallel(stax.Dense(5), stax.Conv(5, (1,))), stax.FanInSum(),
          stax.GlobalSumPool(), stax.Dense(2)),
      "fanin_prod_then_concat": stax.serial(
          stax.Conv(4, (3,), padding="SAME", b_std=0.1), stax.FanOut(2),
          stax.parallel(stax.Dense(4, 1.2, 0.1),
                        stax.serial(stax.Relu(), stax.Conv(4, (2,), padding="SAME"))),
          stax.FanInProd(), stax.Dense(4), stax.FanOut(2),
          stax.parallel(stax.Dense(3), stax.serial(stax.Erf(), stax.Conv(2, (1,)))),
          stax.FanInConcat(), stax.Dense(4), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(2)),
  }


@pytest.mark.parametrize("name", list(_sequence_networks()))
def test_padded_sequence_gives_the_unpadded_outputs(name):
  """apply_fn: padding a sequence with the mask constant changes neither the pooled
  outputs (attention never attends to padding; convolutions and pooling read it as
  zeros, as they read the edge; global pooling skips it) nor, for kernel_fn, its
  kernel with itself."""
  init_fn, apply_fn, kernel_fn = _sequence_networks()[name]
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    x = rng.normal(size=(3, 6, 2))
    _, params = init_fn(jax.random.PRNGKey(1), (1, 6, 2), jnp.float64)
    padded = np.concatenate([_pad(x[:1, :4], 6), _pad(x[1:2, :2], 6), x[2:]])
    apply = jax.jit(apply_fn, static_argnames="mask_constant")
    out = apply(params, jnp.asarray(padded), mask_constant=MASK)
    assert isinstance(out, MaskedArray)
    assert not np.any(np.asarray(out.mask))
    for i, n in enumerate((4, 2)):
      alone = apply(params, jnp.asarray(x[i:i + 1, :n]))
      np.testing.assert_allclose(np.asarray(out.masked_value[i]), np.asarray(alone[0]),
                                 rtol=1e-10, atol=1e-12)
    k_alone = kernel_fn(jnp.asarray(x[:1, :4]), None, ("nngp", "ntk"))
    k_pad = kernel_fn(jnp.asarray(padded[:1]), None, ("nngp", "ntk"), mask_constant=MASK)
    for g in ("nngp", "ntk"):
      np.testing.assert_allclose(np.asarray(getattr(k_pad, g)), np.asarray(getattr(k_alone, g)),
                                 rtol=1e-10)


def test_nan_mask_constant_and_output_masks():
  """NaN masks NaN entries; apply_fn's mask follows the layers (Conv: the window's
  center; Flatten: every feature), as neural-tangents'."""
  x = np.random.default_rng(2).normal(size=(2, 5, 3))
  x[0, 3:] = np.nan
  x[1, 1, 0] = np.nan  # one channel only: zeroed, not masked
  net = stax.serial(stax.Conv(4, (3,), strides=(2,), padding="SAME"), stax.Relu())
  _, params = net.init_fn(jax.random.PRNGKey(0), x.shape)
  out = net.apply_fn(params, jnp.asarray(x, jnp.float32), mask_constant=np.nan)
  # SAME, stride 2 over 5 positions: outputs centered on positions 0, 2, 4.
  np.testing.assert_array_equal(np.asarray(out.mask)[..., 0],
                                [[False, False, True], [False, False, False]])
  assert np.all(np.isfinite(np.asarray(out.masked_value)))
  k = net.kernel_fn(jnp.asarray(x, jnp.float32), None, "nngp", mask_constant=np.nan)
  assert np.all(np.isfinite(np.asarray(k)))
  np.testing.assert_array_equal(np.asarray(k)[0, :, 2], 0.0)  # pairs with a masked position
  flat = stax.serial(stax.Dense(2), stax.Flatten())
  _, p = flat.init_fn(jax.random.PRNGKey(0), x.shape)
  m = flat.apply_fn(p, jnp.asarray(x, jnp.float32), mask_constant=np.nan).mask
  np.testing.assert_array_equal(np.asarray(m), np.repeat([[0, 0, 0, 1, 1], [0] * 5], 2, 1))


@pytest.mark.slow
def test_kernel_is_the_masked_finite_network_covariance():
  """Monte Carlo: the NNGP of masked images (Conv, CIRCULAR AvgPool, LayerNorm over
  positions, attention, Flatten) is the covariance of the finite network's outputs,
  masked outputs read as zero (one wide network: error ~ width^-1/2)."""
  width = 1024
  net = stax.serial(
      stax.Conv(width, (2, 2), padding="SAME", W_std=1.3, b_std=0.2), stax.Relu(),
      stax.AvgPool((2, 2), padding="CIRCULAR"), stax.Conv(width, (2, 2), padding="SAME"),
      stax.LayerNorm(axis=(1, 2, 3)), stax.Erf(),
      stax.GlobalSelfAttention(width, 4 * width, width, 1, attention_mechanism="IDENTITY",
                               pos_emb_type="SUM", b_std=0.1),
      stax.Flatten())
  x = np.random.default_rng(3).normal(size=(3, 3, 3, 2))
  x[0, 2] = MASK
  x[1, :, 0] = MASK
  x[2, 1, 1, 1] = MASK
  with jax.enable_x64(True):
    x = jnp.asarray(x)
    k = np.asarray(net.kernel_fn(x, None, "nngp", mask_constant=MASK))
    ests = []
    for seed in range(2):
      _, params = net.init_fn(jax.random.PRNGKey(seed), x.shape, jnp.float64)
      y = np.asarray(net.apply_fn(params, x, mask_constant=MASK).unmasked())
      ests.append(y @ y.T / y.shape[1])
  err = np.max(np.abs(np.mean(ests, 0) - k)) / np.max(np.abs(k))
  assert err < 0.08, (err, k, np.mean(ests, 0))


@pytest.mark.parametrize("layer", [
    stax.ConvTranspose(2, (2,), padding="CIRCULAR"), stax.Index(stax.Slice[:, :2])])
def test_layers_without_masks_refuse_mask_constant(layer):
  net = stax.serial(stax.Dense(3), layer)
  x = jnp.ones((2, 4, 3))
  _, params = net.init_fn(jax.random.PRNGKey(0), x.shape)
  with pytest.raises(ValueError, match="mask_constant is not supported by"):
    net.kernel_fn(x, None, "nngp", mask_constant=0.0)
  with pytest.raises(ValueError, match="mask_constant is not supported by"):
    net.apply_fn(params, x, mask_constant=0.0)


@pytest.mark.parametrize("bad", ["0", True, [1.0], {}])
def test_bad_mask_constant(bad):
  net = stax.serial(stax.Dense(3), stax.Relu(), stax.GlobalAvgPool())
  x = jnp.ones((2, 4, 3))
  with pytest.raises(ValueError, match="mask_constant must be a real number"):
    net.kernel_fn(x, None, "nngp", mask_constant=bad)
  _, params = net.init_fn(jax.random.PRNGKey(0), x.shape)
  with pytest.raises(ValueError, match="mask_constant must be a real number"):
    net.apply_fn(params, x, mask_constant=bad)


def test_no_mask_constant_changes_nothing():
  net = stax.serial(stax.Conv(3, (2,), padding="SAME"), stax.Relu(), stax.GlobalAvgPool())
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 4, 3)), jnp.float32)
  k = net.kernel_fn(x, None, "nngp")
  np.testing.assert_array_equal(np.asarray(net.kernel_fn(x, None, "nngp", mask_constant=None)),
                                np.asarray(k))
  assert net.kernel_fn(x).mask1 is None
  # A constant that no entry equals: the same kernel.
  np.testing.assert_allclose(np.asarray(net.kernel_fn(x, None, "nngp", mask_constant=123.0)),
                             np.asarray(k), rtol=1e-6)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_transpose_masks_an_output_where_any_input_of_its_window_is(padding):
  # neural-tangents' ConvTranspose mask: the transposed convolution of the mask with a
  # filter of ones (all window axes at once) is nonzero; ours runs one axis at a time.
  x = np.random.default_rng(0).normal(size=(2, 4, 3, 2))
  x[0, 1, 2] = MASK
  x[1, 3, :] = MASK
  x[1, 0, 0, 1] = MASK  # one channel only: the pixel stays unmasked
  net = stax.ConvTranspose(3, (2, 3), strides=(2, 1), padding=padding)
  _, params = net.init_fn(jax.random.PRNGKey(0), x.shape)
  out = net.apply_fn(params, jnp.asarray(x), mask_constant=MASK)
  pixels = np.all(x == MASK, axis=-1, keepdims=True).astype(np.float32)
  expected = jax.lax.conv_transpose(pixels, np.ones((2, 3, 1, 1), np.float32), (2, 1), padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC")) > 0
  mask = np.broadcast_to(np.asarray(out.mask), out.masked_value.shape[:-1] + (1,))
  assert mask.shape == expected.shape and np.any(expected) and not np.all(expected)
  np.testing.assert_array_equal(mask, np.asarray(expected))
