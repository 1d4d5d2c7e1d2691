"""neural-tangents 0.6.5 side of the fixtures and benchmarks; runs in the reference environment.

Executed by the reference python (see `benchmarks.reference_env`), never imported
by the project: it imports only neural-tangents, JAX, numpy and the pure-Python
`layer_specs` beside it.

  python benchmarks/nt_reference.py fixture --out tests/fixtures/nt_reference.json
  (or, from the main environment, ``python -m benchmarks.reference_env fixture``)
  python benchmarks/nt_reference.py serve      # JSON commands on stdin, replies on stdout

Networks are written as lists of layer specs, e.g.
``[["Dense", {"out_dim": 64, "W_std": 1.5, "b_std": 0.1, "parameterization": "standard"}],
["Relu", {}], ["FanOut", {"num": 2}], ["parallel", [[...], [...]]], ["FanInSum", {}]]``,
so that the same description can be built with `kernels.stax` by the tests.
"""
import argparse
import json
import os
import platform
import sys
import time
import traceback

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

import layer_specs  # noqa: E402  (benchmarks/layer_specs.py, beside this script)

REPLY_PREFIX = "@@reply "
FIXTURE_SEED = 20240611
N1, N2, D = 6, 5, 7
_FUNCTIONS = {"tanh": jnp.tanh, "sin": jnp.sin, "exp_decay": lambda r: jnp.exp(-r / 4)}


# ----------------------------------------------------------------------------
# Layer specs -> neural_tangents.stax


def build(spec):
  """Builds a neural_tangents.stax network from a list of layer specs."""
  return layer_specs.build(spec, stax, _FUNCTIONS)


# ----------------------------------------------------------------------------
# Fixture


def dense(out_dim, W_std=1.0, b_std=None, parameterization="ntk"):
  return ["Dense", dict(out_dim=out_dim, W_std=W_std, b_std=b_std,
                        parameterization=parameterization)]


ACTIVATIONS = {
    "relu": ["Relu", {}],
    "leaky_relu": ["LeakyRelu", {"alpha": 0.1}],
    "abrelu": ["ABRelu", {"a": -0.5, "b": 2.0}],
    "abs": ["Abs", {}],
    "erf": ["Erf", {"a": 0.7, "b": 1.3, "c": 0.2}],
    "gelu": ["Gelu", {}],
    "tanh_numerical": ["ElementwiseNumerical", {"fn": "tanh", "deg": 25}],
    "sin_numerical": ["ElementwiseNumerical", {"fn": "sin", "deg": 25}],
}


def mlp_spec(widths, act, param, W_std, b_std, out_dim=3):
  spec = []
  for w in widths:
    spec += [dense(w, W_std, b_std, param), act]
  return spec + [dense(out_dim, W_std, b_std, param)]


def fixture_architectures():
  """Named fully-connected descriptions that the fixture covers."""
  archs = {}
  for param in ("ntk", "standard"):
    widths = (64, 256) if param == "standard" else (512, 512)
    for b_std in (None, 0.1):
      for act_name, act in ACTIVATIONS.items():
        name = f"{param}_{'bias' if b_std else 'nobias'}_{act_name}_depth2"
        archs[name] = mlp_spec(widths, act, param, 1.5, b_std)
    for depth in (1, 2, 3, 4):
      widths = [32 * 2 ** i for i in range(depth)] if param == "standard" else [512] * depth
      archs[f"{param}_depth{depth}_bias_relu_wstd1.3"] = mlp_spec(
          widths, ACTIVATIONS["relu"], param, 1.3, 0.05)
    archs[f"{param}_linear_depth0"] = [dense(4, 0.9, 0.2, param)]
    archs[f"{param}_residual_identity"] = [
        dense(128, 1.2, 0.1, param), ["FanOut", {"num": 2}],
        ["parallel", [[ACTIVATIONS["relu"], dense(128, 1.4, 0.05, param)], [["Identity", {}]]]],
        ["FanInSum", {}], ACTIVATIONS["relu"], dense(2, 1.0, 0.1, param)]
    archs[f"{param}_residual_two_branches"] = [
        dense(64, 1.1, None, param), ACTIVATIONS["erf"], ["FanOut", {"num": 2}],
        ["parallel", [[dense(96, 1.0, 0.2, param)],
                      [dense(48, 1.3, None, param), ACTIVATIONS["gelu"],
                       dense(96, 0.8, 0.1, param)]]],
        ["FanInSum", {}], ACTIVATIONS["abrelu"], dense(5, 1.0, None, param)]
  return archs


def conv(out_chan, filter_shape, strides=None, padding="VALID", W_std=1.0, b_std=None,
         parameterization="ntk", dimension_numbers=None):
  args = dict(out_chan=out_chan, filter_shape=list(filter_shape), padding=padding, W_std=W_std,
              b_std=b_std, parameterization=parameterization)
  if strides is not None:
    args["strides"] = list(strides)
  if dimension_numbers is not None:
    args["dimension_numbers"] = list(dimension_numbers)
  return ["Conv", args]


def spatial_architectures():
  """Named networks on inputs with spatial axes: (spec, input kind, kernel_fn keywords).

  Input kinds: "image" (n, 6, 5, 2), "image_nchw" (n, 2, 6, 5), "seq" (n, 7, 3),
  "volume" (n, 4, 3, 3, 2); "vector" (n, 7) for the fully-connected uses of layers
  added with them.
  """
  archs = {}
  relu, erf, gelu = ACTIVATIONS["relu"], ACTIVATIONS["erf"], ACTIVATIONS["gelu"]
  for p in ("ntk", "standard"):
    archs[f"{p}_cnn_flatten"] = ([
        conv(16, (3, 3), None, "SAME", 1.5, 0.1, p), relu,
        conv(16, (2, 2), (2, 1), "VALID", 1.3, 0.05, p), erf,
        ["Flatten", {}], dense(3, 1.2, 0.1, p)], "image", {})
    archs[f"{p}_cnn_avgpool_gap"] = ([
        conv(8, (3, 3), None, "SAME", 1.4, 0.1, p), relu,
        ["AvgPool", {"window_shape": [2, 2], "strides": [2, 2]}],
        conv(8, (3, 3), None, "SAME", 1.2, None, p), relu,
        ["GlobalAvgPool", {}], dense(2, 1.0, 0.2, p)], "image", {})
    archs[f"{p}_cnn_circular_sumpool"] = ([
        conv(8, (3, 2), (2, 1), "CIRCULAR", 1.3, 0.1, p), gelu,
        ["SumPool", {"window_shape": [2, 3], "strides": [1, 2], "padding": "CIRCULAR"}],
        conv(8, (2, 2), None, "CIRCULAR", 1.1, 0.2, p), ACTIVATIONS["abrelu"],
        ["GlobalSumPool", {}], dense(2, 0.9, None, p)], "image", {})
    archs[f"{p}_conv1d_spatial_output"] = ([
        conv(8, (3,), (2,), "SAME", 1.5, 0.1, p), ACTIVATIONS["leaky_relu"],
        conv(4, (2,), None, "VALID", 1.2, 0.1, p)], "seq", {})
    archs[f"{p}_conv3d_flatten"] = ([
        conv(8, (2, 2, 2), None, "SAME", 1.4, 0.1, p), ACTIVATIONS["abs"],
        conv(8, (3, 2, 1), (1, 2, 1), "VALID", 1.3, None, p), relu,
        ["Flatten", {}], dense(2, 1.0, 0.1, p)], "volume", {})
  archs["ntk_cnn_avgpool_same_normalize_edges"] = ([
      conv(8, (3, 3), None, "SAME", 1.5, 0.1), relu,
      ["AvgPool", {"window_shape": [3, 2], "strides": [2, 2], "padding": "SAME",
                   "normalize_edges": True}],
      conv(8, (2, 2), None, "VALID", 1.2, 0.1), relu, ["Flatten", {}], dense(2)], "image", {})
  archs["ntk_cnn_avgpool_same"] = ([
      conv(8, (3, 3), None, "SAME", 1.5, 0.1), erf,
      ["AvgPool", {"window_shape": [3, 3], "strides": [1, 2], "padding": "SAME"}],
      ["GlobalAvgPool", {}], dense(2)], "image", {})
  archs["ntk_cnn_nchw"] = ([
      conv(8, (3, 2), None, "SAME", 1.5, 0.1, "ntk", ("NCHW", "OIHW", "NCHW")), relu,
      conv(8, (2, 3), (1, 2), "VALID", 1.3, 0.1, "ntk", ("NCHW", "HWIO", "NWHC")), relu,
      ["Flatten", {}], dense(2)], "image_nchw", {})
  archs["ntk_cnn_dense_on_channels"] = ([
      dense(8, 1.3, 0.1), relu, conv(8, (3, 3), None, "SAME", 1.2, 0.1), gelu,
      dense(6, 1.1, None), ACTIVATIONS["tanh_numerical"], ["GlobalAvgPool", {}],
      dense(2)], "image", {})
  archs["ntk_cnn_residual"] = ([
      conv(8, (3, 3), None, "SAME", 1.3, 0.1), ["FanOut", {"num": 2}],
      ["parallel", [[relu, conv(8, (3, 3), None, "SAME", 1.4, 0.05)], [["Identity", {}]]]],
      ["FanInSum", {}], relu, ["AvgPool", {"window_shape": [2, 2], "strides": [2, 2]}],
      ["Flatten", {}], dense(2)], "image", {})
  archs["ntk_cnn_layernorm"] = ([
      conv(8, (3, 3), None, "SAME", 1.3, 0.1), ["LayerNorm", {"axis": -1}], relu,
      conv(8, (3, 3), None, "SAME", 1.2, 0.1), ["LayerNorm", {"axis": [1, 2, 3]}], erf,
      ["GlobalAvgPool", {}], dense(2)], "image", {})
  archs["ntk_cnn_layernorm_one_spatial_axis"] = ([
      conv(8, (3, 3), None, "SAME", 1.3, 0.1), ["LayerNorm", {"axis": [2, 3]}], relu,
      ["Flatten", {}], dense(2)], "image", {})
  archs["ntk_cnn_dropout"] = ([
      conv(8, (3, 3), None, "SAME", 1.3, 0.1), relu, ["Dropout", {"rate": 0.8}],
      conv(8, (3, 3), None, "SAME", 1.2, 0.1), relu, ["GlobalAvgPool", {}],
      dense(2)], "image", {})
  archs["ntk_cnn_fanin_concat_prod"] = ([
      conv(8, (3, 3), None, "SAME", 1.3, 0.1), relu, ["FanOut", {"num": 3}],
      ["parallel", [[conv(8, (3, 3), None, "SAME", 1.2)],
                    [conv(4, (1, 1), None, "SAME", 1.5, 0.1)],
                    [conv(8, (2, 2), None, "SAME", 1.1)]]],
      ["FanInConcat", {}], conv(8, (2, 2), None, "SAME", 1.3, 0.1), relu, ["FanOut", {"num": 2}],
      ["parallel", [[conv(8, (3, 3), None, "SAME", 1.0)], [conv(8, (1, 1), None, "SAME", 1.4)]]],
      ["FanInProd", {}], ["Flatten", {}], dense(2)], "image", {})
  archs["ntk_mlp_layernorm_dropout"] = ([
      dense(64, 1.3, 0.1), ["LayerNorm", {}], relu, dense(64, 1.2, 0.1), relu,
      ["Dropout", {"rate": 0.6}], dense(2, 1.0, 0.1)], "vector", {})
  archs["ntk_mlp_fanin_concat_prod"] = ([
      dense(64, 1.3, 0.1), erf, ["FanOut", {"num": 2}],
      ["parallel", [[dense(32, 1.1, 0.1), relu], [dense(64, 1.4), gelu]]],
      ["FanInConcat", {}], ["FanOut", {"num": 2}],
      ["parallel", [[dense(16, 1.2, 0.1)], [dense(16, 0.9)]]], ["FanInProd", {}],
      dense(2)], "vector", {})
  archs["ntk_mlp_repeat"] = ([
      dense(32, 1.3, 0.1), relu, ["repeat", {"layer": [dense(32, 1.4, 0.05), relu], "n": 5}],
      dense(2, 1.0, 0.1)], "vector", {})
  archs["ntk_cnn_repeat"] = ([
      conv(8, (3, 3), None, "SAME", 1.3, 0.1), relu,
      ["repeat", {"layer": [conv(8, (3, 3), None, "SAME", 1.4, 0.05), relu,
                            conv(8, (3, 3), None, "SAME", 1.2, 0.1), relu], "n": 2}],
      ["GlobalAvgPool", {}], dense(2)], "image", {})
  def attn(mech, linear=True, pe="NONE", val_pe=False, n_pe=None, decay=None, b_std=0.1):
    args = dict(n_chan_out=16, n_chan_key=8, n_chan_val=8, n_heads=2, linear_scaling=linear,
                W_key_std=1.1, W_value_std=1.2, W_query_std=0.9, W_out_std=1.3, b_std=b_std,
                attention_mechanism=mech, pos_emb_type=pe, val_pos_emb=val_pe,
                W_pos_emb_std=0.8)
    if n_pe is not None:
      args["n_chan_pos_emb"] = n_pe
    if decay is not None:
      args["pos_emb_decay_fn"] = decay
    return ["GlobalSelfAttention", args]

  attention = {
      "softmax": attn("SOFTMAX"),
      "relu_pos_sum": attn("RELU", pe="SUM"),
      "abs_pos_concat_values": attn("ABS", pe="CONCAT", val_pe=True, n_pe=4),
      "identity_linear": attn("IDENTITY", b_std=None),
      "identity_sqrt_pos_sum": attn("IDENTITY", linear=False, pe="SUM"),
      "identity_sqrt_pos_concat_values": attn("IDENTITY", linear=False, pe="CONCAT",
                                              val_pe=True),
      "softmax_pos_decay": attn("SOFTMAX", pe="SUM", decay="exp_decay"),
  }
  for name, layer in attention.items():
    for kind in ("seq", "image"):
      archs[f"ntk_attention_{name}_{kind}"] = ([
          dense(16, 1.2, 0.1), layer, relu, ["GlobalAvgPool", {}], dense(2)], kind, {})
  archs["ntk_attention_spatial_output"] = ([
      conv(8, (2,), None, "SAME", 1.2, 0.1), attn("SOFTMAX", pe="SUM"), erf,
      attn("RELU")], "seq", {})
  archs.update(added_layer_architectures())
  for name, act in CLOSED_FORM_ACTIVATIONS.items():
    archs[f"ntk_cnn_gap_{name}"] = ([
        conv(8, (3, 3), None, "SAME", 1.1, 0.1), act, ["GlobalAvgPool", {}], dense(2)],
        "image", {})
    if name != "rectified_monomial2":  # neural-tangents: NaN at correlation 1 (arccos')
      archs[f"ntk_mlp_{name}"] = ([
          dense(32, 1.1, 0.1), act, dense(32, 0.9, 0.1), act, dense(2)], "vector", {})
  return archs


def added_layer_architectures():
  """Networks of the layers added after the first spatial ones (same input kinds)."""
  archs = {}
  relu, erf = ACTIVATIONS["relu"], ACTIVATIONS["erf"]
  for axis in (1, -2):
    archs[f"ntk_cnn_fanin_concat_spatial_axis{axis}"] = ([
        conv(8, (3, 3), None, "SAME", 1.3, 0.1), relu, ["FanOut", {"num": 3}],
        ["parallel", [[conv(8, (3, 3), None, "SAME", 1.2, 0.1)],
                      [conv(8, (2, 2), None, "SAME", 1.5)],
                      [conv(8, (1, 1), None, "SAME", 1.1, 0.2)]]],
        ["FanInConcat", {"axis": axis}], relu, conv(8, (2, 2), (2, 1), "VALID", 1.2, 0.1), erf,
        ["GlobalAvgPool", {}], dense(2)], "image", {})
  archs["ntk_cnn_fanin_concat_spatial_unequal_flatten"] = ([
      conv(8, (3, 3), None, "SAME", 1.3, 0.1), relu, ["FanOut", {"num": 2}],
      ["parallel", [[conv(8, (2, 3), None, "SAME", 1.2, 0.1)],
                    [conv(8, (3, 1), None, "VALID", 1.4)]]],
      ["FanInConcat", {"axis": 1}], erf, ["Flatten", {}], dense(2)], "image", {})
  archs["ntk_conv1d_fanin_concat_spatial_output"] = ([
      conv(8, (2,), None, "SAME", 1.3, 0.1), ["FanOut", {"num": 2}],
      ["parallel", [[relu, conv(4, (3,), None, "VALID", 1.2, 0.1)],
                    [erf, conv(4, (2,), (2,), "SAME", 1.4)]]],
      ["FanInConcat", {"axis": -2}]], "seq", {})
  archs["ntk_conv1d_fanin_concat_spatial_diagonal_output"] = (
      archs["ntk_conv1d_fanin_concat_spatial_output"][0], "seq", {"diagonal_spatial": True})
  local = lambda *a: ["ConvLocal", conv(*a)[1]]
  for p in ("ntk", "standard"):
    archs[f"{p}_lcn_flatten"] = ([
        local(8, (3, 3), None, "SAME", 1.5, 0.1, p), relu,
        local(8, (2, 2), (2, 1), "VALID", 1.3, 0.05, p), erf,
        ["Flatten", {}], dense(3, 1.2, 0.1, p)], "image", {})
    archs[f"{p}_lcn_gap"] = ([
        conv(8, (3, 2), None, "SAME", 1.4, 0.1, p), relu,
        local(8, (3, 3), (2, 2), "CIRCULAR", 1.2, 0.2, p), relu,
        ["GlobalAvgPool", {}], dense(2, 1.0, 0.2, p)], "image", {})
    # neural-tangents 0.6.5 is wrong for ConvLocal with unequal strides after a Conv
    # (12% off a finite-width Monte Carlo that ours matches; test_layers_conv_local.py).
  archs["ntk_lcn1d_conv_spatial_output"] = ([
      local(8, (3,), (2,), "SAME", 1.5, 0.1), ACTIVATIONS["leaky_relu"],
      local(4, (2,), None, "VALID", 1.2, 0.1), erf, conv(4, (2,), None, "SAME", 1.1)], "seq", {})
  archs["ntk_lcn3d_flatten"] = ([
      local(8, (2, 2, 2), None, "SAME", 1.4, 0.1), ACTIVATIONS["abs"],
      local(4, (3, 2, 1), (1, 2, 1), "VALID", 1.3), relu, ["Flatten", {}], dense(2)],
      "volume", {})
  tconv = lambda *a: ["ConvTranspose", conv(*a)[1]]
  for p in ("ntk", "standard"):
    archs[f"{p}_tconv_flatten"] = ([
        conv(8, (2, 2), (2, 2), "VALID", 1.3, 0.1, p), relu,
        tconv(8, (3, 2), (2, 2), "SAME", 1.5, 0.1, p), erf,
        tconv(4, (2, 2), (1, 2), "VALID", 1.2, None, p), relu,
        ["Flatten", {}], dense(2, 1.0, 0.1, p)], "image", {})
  archs["ntk_tconv_circular_gap"] = ([
      tconv(8, (3, 3), (2, 1), "CIRCULAR", 1.3, 0.1), relu,
      tconv(8, (2, 3), (1, 2), "CIRCULAR", 1.2, 0.2), erf, ["GlobalAvgPool", {}],
      dense(2)], "image", {})
  archs["ntk_tconv1d_spatial_output"] = ([
      tconv(8, (3,), (2,), "SAME", 1.5, 0.1), ACTIVATIONS["gelu"],
      tconv(4, (2,), None, "VALID", 1.2, 0.1)], "seq", {})
  archs["ntk_tconv1d_circular_spatial_output"] = ([
      tconv(8, (4,), (2,), "CIRCULAR", 1.4, 0.1), relu,
      tconv(4, (3,), None, "CIRCULAR", 1.1)], "seq", {})
  archs["ntk_tconv3d_gap"] = ([
      tconv(8, (2, 2, 1), (2, 1, 2), "SAME", 1.4, 0.1), ACTIVATIONS["abs"],
      tconv(4, (1, 2, 2), None, "VALID", 1.3), relu, ["GlobalAvgPool", {}], dense(2)],
      "volume", {})
  index = lambda *idx: ["Index", {"idx": list(idx)}]
  archs["ntk_cnn_index_crop_gap"] = ([
      conv(8, (3, 3), None, "SAME", 1.3, 0.1), relu, index([None, None, None], [1, 5], [None, None, 2]),
      conv(8, (2, 2), None, "SAME", 1.2, 0.1), erf, ["GlobalAvgPool", {}], dense(2)], "image", {})
  archs["ntk_cnn_index_row_conv1d"] = ([
      conv(8, (3, 3), None, "SAME", 1.3, 0.1), relu, index([None, None, None], 2, "..."),
      conv(8, (2,), None, "SAME", 1.2, 0.1), relu, ["Flatten", {}], dense(2)], "image", {})
  archs["ntk_cnn_index_batch_reverse_spatial_output"] = ([
      conv(8, (2, 2), None, "SAME", 1.3, 0.1), ACTIVATIONS["gelu"],
      index([1, None, None], "...", [None, None, -1], [None, None, None]),
      conv(4, (2, 1), None, "VALID", 1.1)], "image", {})
  archs["ntk_seq_index_diagonal_output"] = ([
      conv(8, (2,), None, "SAME", 1.3, 0.1), relu, index("...", [None, -1], [None, None, None]),
      conv(4, (1,), None, "VALID", 1.1)], "seq", {"diagonal_spatial": True})
  resize = lambda shape, method, antialias=True: ["ImageResize", {
      "shape": list(shape), "method": method, "antialias": antialias}]
  # neural-tangents 0.6.5 resizes the wrong axes after a Conv (it keeps them reversed;
  # 33% off a finite-width Monte Carlo that ours matches): these resize before any Conv.
  archs["ntk_cnn_resize_up_linear_gap"] = ([
      dense(8, 1.3, 0.1), relu, resize((-1, 9, 7, -1), "linear"),
      conv(8, (2, 2), None, "SAME", 1.2, 0.1), erf, ["GlobalAvgPool", {}], dense(2)], "image", {})
  archs["ntk_cnn_resize_down_antialias_flatten"] = ([
      dense(8, 1.3, 0.1), relu, resize((-1, 4, -1, -1), "bilinear"),
      conv(8, (2, 2), None, "VALID", 1.2, 0.1), relu, ["Flatten", {}], dense(2)], "image", {})
  archs["ntk_seq_resize_nearest_spatial_output"] = ([
      conv(8, (2,), None, "SAME", 1.3, 0.1), ACTIVATIONS["gelu"], resize((-1, 11, -1), "nearest"),
      conv(4, (3,), None, "VALID", 1.1)], "seq", {})
  archs["ntk_seq_resize_down_no_antialias"] = ([
      conv(8, (2,), None, "SAME", 1.3, 0.1), relu, resize((-1, 4, -1), "linear", False),
      conv(4, (2,), None, "VALID", 1.1), erf, ["GlobalAvgPool", {}], dense(2)], "seq", {})
  return archs


CLOSED_FORM_ACTIVATIONS = {
    "sin": ["Sin", {"a": 1.2, "b": 0.8, "c": 0.3}],
    "cos": ["Cos", {"a": 0.9, "b": 1.1, "c": -0.2}],
    "sigmoid_like": ["Sigmoid_like", {}],
    "rbf": ["Rbf", {"gamma": 0.7}],
    "exp": ["Exp", {"a": 0.8, "b": 0.5}],
    "exp_normalized": ["ExpNormalized", {"gamma": 0.8, "shift": -1.0}],
    "gaussian": ["Gaussian", {"a": 1.1, "b": -0.6}],
    "monomial3": ["Monomial", {"degree": 3}],
    "rectified_monomial2": ["RectifiedMonomial", {"degree": 2}],
    "polynomial": ["Polynomial", {"coef": [0.1, -0.4, 0.3, 0.2]}],
    "hermite3": ["Hermite", {"degree": 3}],
    "sign": ["Sign", {}],
    "gabor": ["Gabor", {}],
}


def spatial_inputs(kind: str):
  """x1 with a zero and a repeated point; x2 with a copy of an x1 point and a multiple of one."""
  shapes = {"image": (6, 5, 2), "image_nchw": (2, 6, 5), "seq": (7, 3), "volume": (4, 3, 3, 2),
            "vector": (7,)}
  rng = np.random.default_rng(FIXTURE_SEED + sum(map(ord, kind)))
  x1 = rng.normal(size=(4,) + shapes[kind])
  x1[2] = 0.0
  x1[3] = x1[0]
  x2 = rng.normal(size=(3,) + shapes[kind])
  x2[0] = x1[1]
  x2[1] = -1.5 * x1[0]
  return x1, x2


def fixture_inputs():
  """x1 (6, 7) with a zero and a repeated row; x2 (5, 7) with a copy and a multiple of x1 rows."""
  rng = np.random.default_rng(FIXTURE_SEED)
  x1 = rng.normal(size=(N1, D))
  x1[3] = 0.0  # zero input
  x1[4] = x1[1]  # repeated input: correlation exactly 1 within x1
  x2 = rng.normal(size=(N2, D))
  x2[0] = x1[2]  # correlation exactly 1 across x1 and x2
  x2[1] = -2.0 * x1[0]  # correlation exactly -1, different norm
  return x1, x2


def kernel_cases(name, spec, x1, x2, kwargs=None):
  """The two fixture cases of one network (x2=None, then x2): its float64 NNGP and NTK as
  neural-tangents computes them; ``kwargs`` (kernel keywords, recorded when given)."""
  _, _, kernel_fn = build(spec)
  cases = []
  for with_x2 in (False, True):
    k = kernel_fn(jnp.asarray(x1), jnp.asarray(x2) if with_x2 else None, ("nngp", "ntk"),
                  **(kwargs or {}))
    nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
    case = dict(name=f"{name}_{'x2' if with_x2 else 'x2none'}", layers=spec, x1=x1.tolist(),
                x2=x2.tolist() if with_x2 else None)
    if kwargs is not None:
      case["kwargs"] = kwargs
    case.update(nngp=_jsonable(nngp), ntk=_jsonable(ntk),
                finite=bool(np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk))))
    cases.append(case)
  return cases


def fixture_of(networks, description, seed, **extra):
  """A float64 fixture (the dict the tests read) of ``(name, spec, x1, x2, kwargs)``
  networks: each one's `kernel_cases`, with the versions that computed them."""
  jax.config.update("jax_enable_x64", True)
  cases = []
  for name, spec, x1, x2, kwargs in networks:
    cases += kernel_cases(name, spec, x1, x2, kwargs)
  return dict(description=description, dtype="float64", seed=seed, versions=versions(),
              cases=cases, **extra)


def make_fixture():
  jax.config.update("jax_enable_x64", True)
  x1, x2 = fixture_inputs()
  cases = []
  for name, spec in fixture_architectures().items():
    cases += kernel_cases(name, spec, x1, x2)
  for name, (spec, kind, kwargs) in spatial_architectures().items():
    cases += kernel_cases(name, spec, *spatial_inputs(kind), kwargs)
  return dict(
      description="neural-tangents 0.6.5 float64 NNGP/NTK of fully-connected, convolutional "
                  "and other networks (pooling, normalisation, dropout, fan-in, repeat); "
                  "regenerate with `python -m benchmarks.reference_env fixture`.",
      dtype="float64", seed=FIXTURE_SEED, versions=versions(), cases=cases)


def _jsonable(a):
  """Array as nested lists; NaN and inf as strings (JSON has no literal for them)."""
  a = np.asarray(a)
  if a.ndim == 0:
    return float(a) if np.isfinite(a) else str(a)
  return [_jsonable(v) for v in a]


# ----------------------------------------------------------------------------
# Benchmarks (served one command at a time so the caller can interleave timings)


def versions():
  import jaxlib  # pylint: disable=g-import-not-at-top
  return dict(neural_tangents=nt.__version__, jax=jax.__version__, jaxlib=jaxlib.__version__,
              numpy=np.__version__, python=platform.python_version())


def _restore_jax_aliases():
  """Two names that neural-tangents' structured derivatives read from ``jax.interpreters.ad``.

  jax 0.4.30 and later dropped the aliases ``ad.source_info_util`` and ``ad.config``
  (the modules themselves remain), so implementation 3 fails with an
  AttributeError; restoring the two aliases lets it run unchanged on jax 0.5.3.
  """
  import jax.interpreters.ad as ad  # pylint: disable=g-import-not-at-top
  from jax._src import source_info_util  # pylint: disable=g-import-not-at-top
  if not hasattr(ad, "source_info_util"):
    ad.source_info_util = source_info_util
  if not hasattr(ad, "config"):
    ad.config = jax.config


def empirical_cnn_fn(arch):
  """``f(params, x)`` of a CNN given as data, with the parameters and semantics of Flax's
  ``nn.Conv`` (NHWC, HWIO kernel, bias) and ``nn.Dense``: ``arch = {"convs": [[features,
  [kh, kw], padding], ...], "out": k}``, each conv followed by ReLU, then the mean over
  positions and a Dense readout."""
  def f(params, x):
    p = params["params"]
    for i, (_, _, padding) in enumerate(arch["convs"]):
      layer = p[f"Conv_{i}"]
      x = jax.lax.conv_general_dilated(x, layer["kernel"], (1, 1), padding,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
      x = jax.nn.relu(x + layer["bias"])
    x = jnp.mean(x, axis=(1, 2))
    return x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
  return f



def _kernel_times(fn, x, repeats):
  """Seconds of ``repeats`` calls of ``fn(x, None, get=("nngp", "ntk"))``, and the last
  call's kernels."""
  times, k = [], None
  for _ in range(repeats):
    t0 = time.perf_counter()
    k = jax.block_until_ready(fn(x, None, get=("nngp", "ntk")))
    times.append(time.perf_counter() - t0)
  return times, k

class Server:
  """State of the benchmark commands between calls."""

  def __init__(self):
    self.kernel = None
    self.empirical = {}

  # -- infinite-width kernels --
  def kernel_setup(self, inputs_npz, depth, width, W_std, b_std, activation="Relu",
                   activation_kwargs=None):
    x = jnp.asarray(np.load(inputs_npz)["x"], jnp.float32)
    layers = []
    for _ in range(depth):
      layers += [stax.Dense(width, W_std=W_std, b_std=b_std),
                 getattr(stax, activation)(**(activation_kwargs or {}))]
    layers.append(stax.Dense(1, W_std=W_std, b_std=b_std))
    _, _, kernel_fn = stax.serial(*layers)
    fn = jax.jit(kernel_fn, static_argnames=("get",))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(x, None, get=("nngp", "ntk")))
    first = time.perf_counter() - t0
    self.kernel = (fn, x)
    return dict(first_call_s=first, devices=str(jax.devices()))

  def kernel_time(self, repeats=1):
    return _kernel_times(*self.kernel, repeats)[0]

  def kernel_values(self, m, out_npz):
    fn, x = self.kernel
    k = fn(x[:m], None, get=("nngp", "ntk"))
    np.savez(out_npz, nngp=np.asarray(k.nngp), ntk=np.asarray(k.ntk))
    return out_npz

  # -- any network written as layer specs --
  def spec_setup(self, spec, inputs_npz, dtype="float32", batch_size=0, warmup_n=0):
    """Compiles ``kernel_fn`` of a layer-spec network on the stored inputs (first call timed).

    With ``batch_size`` > 0 the kernel is computed in tiles by ``nt.batch`` (host storage).
    With ``warmup_n`` > 0 the first call is on the first ``warmup_n`` inputs only (one
    tile: it compiles the tile program that every later call runs).
    """
    x = jnp.asarray(np.load(inputs_npz)["x"], dtype)
    _, _, kernel_fn = build(spec)
    if batch_size:
      fn = nt.batch(kernel_fn, batch_size=batch_size, store_on_device=False)
    else:
      fn = jax.jit(kernel_fn, static_argnames=("get",))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(x[:warmup_n] if warmup_n else x, None, get=("nngp", "ntk")))
    first = time.perf_counter() - t0
    self.spec = (fn, x)
    self.spec_last = None
    return dict(first_call_s=first)

  def spec_time(self, repeats=1):
    """Seconds of ``repeats`` calls on all the inputs; the last result is kept for
    `spec_values`."""
    times, self.spec_last = _kernel_times(*self.spec, repeats)
    return times

  def spec_values(self, out_npz):
    """The kernels of the last timed call (computed now if there was none)."""
    fn, x = self.spec
    k = self.spec_last if self.spec_last is not None else fn(x, None, get=("nngp", "ntk"))
    np.savez(out_npz, nngp=np.asarray(k.nngp), ntk=np.asarray(k.ntk))
    return out_npz

  # -- empirical NTK --
  def empirical_setup(self, params_npz, inputs_npz, depth, width, out_dim, W_std, b_std,
                      implementation, trace_axes=(), name=None):
    """Compiles ahead of time (not timed); the first execution is then a valid timing.
    Stored under ``name`` (default: the implementation) for `empirical_time`."""
    x = jnp.asarray(np.load(inputs_npz)["x"], jnp.float32)
    layers = []
    for _ in range(depth):
      layers += [stax.Dense(width, W_std=W_std, b_std=b_std), stax.Relu()]
    layers.append(stax.Dense(out_dim, W_std=W_std, b_std=b_std))
    _, apply_fn, _ = stax.serial(*layers)
    z = np.load(params_npz)
    params = []
    for i in range(depth + 1):
      params.append((jnp.asarray(z[f"W{i}"]), jnp.asarray(z[f"b{i}"])))
      if i < depth:
        params.append(())
    params = tuple(params)
    if implementation == 3:
      _restore_jax_aliases()
    ntk_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=tuple(trace_axes), vmap_axes=0,
                                 implementation=implementation)
    t0 = time.perf_counter()
    compiled = jax.jit(lambda x, p: ntk_fn(x, None, p)).lower(x, params).compile()
    self.empirical[implementation if name is None else name] = (compiled, x, params)
    return dict(compile_s=time.perf_counter() - t0)

  def empirical_time(self, implementation, repeats=1):
    fn, x, params = self.empirical[implementation]
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(fn(x, params))
      times.append(time.perf_counter() - t0)
    return times

  def empirical_values(self, implementation, out_npz):
    fn, x, params = self.empirical[implementation]
    np.savez(out_npz, ntk=np.asarray(fn(x, params)))
    return out_npz

  def empirical_fn_setup(self, name, arch, params_npz, inputs_npz, implementation):
    """As `empirical_setup` for a JAX function given as data (`empirical_cnn_fn`), its
    parameters stored flat as ``"a/b/c"`` keys of a nested dictionary (Flax's layout)."""
    x = jnp.asarray(np.load(inputs_npz)["x"], jnp.float32)
    params = {}
    for key, value in np.load(params_npz).items():
      *outer, leaf = key.split("/")
      d = params
      for k in outer:
        d = d.setdefault(k, {})
      d[leaf] = jnp.asarray(value)
    if implementation == 3:
      _restore_jax_aliases()
    ntk_fn = nt.empirical_ntk_fn(empirical_cnn_fn(arch), trace_axes=(), vmap_axes=0,
                                 implementation=implementation)
    t0 = time.perf_counter()
    compiled = jax.jit(lambda x, p: ntk_fn(x, None, p)).lower(x, params).compile()
    self.empirical[name] = (compiled, x, params)
    return dict(compile_s=time.perf_counter() - t0)

  def versions(self):
    return versions()


def serve(server=None):
  """Answers one JSON command per stdin line with one ``@@reply`` JSON line on stdout.

  ``server`` (default a `Server`) answers each command by its method of that name;
  `nt_reference_predict.py` serves its own through this loop.
  """
  server = Server() if server is None else server
  for line in sys.stdin:
    if not line.strip():
      continue
    request = json.loads(line)
    command = request.pop("command")
    try:
      reply = dict(result=getattr(server, command)(**request))
    except Exception:  # pylint: disable=broad-except
      reply = dict(error=traceback.format_exc())
    sys.stdout.write(REPLY_PREFIX + json.dumps(reply) + "\n")
    sys.stdout.flush()


def main(fixture=None, server=None, description=__doc__):
  """The command line: ``fixture``, ``versions`` or ``serve`` (of another script's pieces too)."""
  parser = argparse.ArgumentParser(description=description.splitlines()[0])
  parser.add_argument("command", choices=("fixture", "versions", "serve"))
  parser.add_argument("--out", help="where to write the JSON result")
  args = parser.parse_args()
  if args.command == "serve":
    serve(server() if server else None)
    return
  result = (fixture or make_fixture)() if args.command == "fixture" else versions()
  text = json.dumps(result, separators=(",", ":"))
  if args.out:
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, args.out)
  else:
    print(text)


if __name__ == "__main__":
  main()
