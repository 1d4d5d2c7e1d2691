"""neural-tangents 0.6.5 side of the layout fixture; runs in the reference environment.

Executed by the reference python (see `benchmarks.reference_env`), never imported
by the project: it imports only neural-tangents, JAX, numpy, `layer_specs` and
`nt_reference` (whose network builder, JSON encoding and command line it uses).

  PYTHONPATH=benchmarks:. python benchmarks/nt_reference_layouts.py fixture \\
      --out tests/fixtures/nt_reference_layouts.json

Cases: layers reading activations whose channels are not last, through their
``channel_axis`` argument: NCHW images after convolutions writing NCHW (LayerNorm over
channels, positions and both; attention with summed and concatenated positional
embeddings; Dense on the channel axis, also as the first layer; Index; ImageResize;
pooling), the standard parameterization's width multipliers ``s`` of Dense and of
the convolutions, an
(n, H, C, W) layout (``channel_axis=-2``), and padded NCW sequences with
``mask_constant``, each with x2=None and with x2; and neural-tangents' attention
(which takes no parameterization) between ``standard`` Dense layers.
"""
import numpy as np

import nt_reference  # noqa: E402  (its builder, JSON encoding and command line, beside this script)
from nt_reference import conv

SEED = 20261202
MASK = 7.5  # as in the masked fixture: exactly representable, compared with ==
NCHW = ("NCHW", "OIHW", "NCHW")
HCW = ("NHCW", "HWIO", "NHCW")
NCW = ("NCH", "OIH", "NCH")
RELU, ERF, GELU = ["Relu", {}], ["Erf", {"a": 0.7, "b": 1.3, "c": 0.2}], ["Gelu", {}]


def dense(out_dim, W_std=1.0, b_std=None, channel_axis=-1):
  return ["Dense", dict(out_dim=out_dim, W_std=W_std, b_std=b_std, channel_axis=channel_axis)]


def sdense(out_dim, W_std, b_std, s):
  return ["Dense", dict(out_dim=out_dim, W_std=W_std, b_std=b_std, parameterization="standard",
                        s=list(s))]


def sconv(layer, out_chan, filter_shape, W_std, b_std, s, padding="SAME"):
  """A standard-parameterization convolution (Conv, ConvTranspose, ConvLocal) on NCHW
  activations with width multipliers ``s``."""
  return [layer, dict(out_chan=out_chan, filter_shape=list(filter_shape), padding=padding,
                      W_std=W_std, b_std=b_std, parameterization="standard",
                      dimension_numbers=list(NCHW), s=list(s))]


def attn(mech, pe="NONE", val_pe=False, n_pe=None, channel_axis=1):
  args = dict(n_chan_out=8, n_chan_key=4, n_chan_val=4, n_heads=2, W_key_std=1.1,
              W_value_std=1.2, W_query_std=0.9, W_out_std=1.3, b_std=0.1,
              attention_mechanism=mech, pos_emb_type=pe, val_pos_emb=val_pe, W_pos_emb_std=0.8,
              channel_axis=channel_axis)
  if n_pe is not None:
    args["n_chan_pos_emb"] = n_pe
  return ["GlobalSelfAttention", args]


def gap(channel_axis=1):
  return ["GlobalAvgPool", {"channel_axis": channel_axis}]


def architectures():
  """Named networks: (spec, input kind, kernel keywords)."""
  c1 = {"channel_axis": 1}
  return {
      "nchw_layernorm_all_channels_positions": ([
          conv(6, (3, 2), None, "SAME", 1.3, 0.1, "ntk", NCHW),
          ["LayerNorm", {"axis": [1, 2, 3], **c1}], RELU,
          conv(6, (2, 2), None, "SAME", 1.2, 0.1, "ntk", NCHW), ["LayerNorm", {"axis": 1, **c1}],
          ERF, conv(6, (2, 3), None, "SAME", 1.1, 0.2, "ntk", NCHW),
          ["LayerNorm", {"axis": [1, 3], **c1}], RELU, gap(), dense(2, 1.0, 0.1)], "nchw", c1),
      "nchw_attention_pos_sum_then_concat": ([
          conv(6, (2, 2), None, "SAME", 1.2, 0.1, "ntk", NCHW), attn("SOFTMAX", pe="SUM"), RELU,
          attn("RELU", pe="CONCAT", val_pe=True, n_pe=3), GELU, gap(), dense(2)], "nchw", c1),
      "nchw_dense_on_channels_avgpool_flatten": ([
          conv(6, (3, 3), None, "SAME", 1.3, 0.1, "ntk", NCHW), RELU, dense(5, 1.2, 0.1, 1),
          GELU, ["AvgPool", {"window_shape": [2, 2], "strides": [1, 2], "padding": "SAME",
                             **c1}], ["Flatten", {}], dense(2)], "nchw", c1),
      "nchw_dense_first_layer": ([
          dense(6, 1.4, 0.1, 1), RELU, conv(6, (2, 2), None, "VALID", 1.2, 0.1, "ntk", NCHW),
          ERF, gap(), dense(2)], "nchw", c1),
      "nchw_index_crop_then_row": ([
          conv(6, (2, 2), None, "SAME", 1.3, 0.1, "ntk", NCHW), RELU,
          ["Index", {"idx": [[None, None, None], [None, None, None], [1, 4]], **c1}],
          conv(6, (2, 2), None, "SAME", 1.2, 0.1, "ntk", NCHW), RELU,
          ["Index", {"idx": ["...", 2], **c1}], dense(4, 1.1, 0.1, 1), ERF, gap(), dense(2)],
          "nchw", c1),
      "nchw_resize_linear": ([
          dense(6, 1.3, 0.1, 1), RELU,
          ["ImageResize", {"shape": [-1, -1, 7, 3], "method": "linear", **c1}],
          conv(6, (2, 2), None, "SAME", 1.2, 0.1, "ntk", NCHW), ERF, gap(), dense(2)], "nchw",
          c1),
      # FanInConcat along the channels (axis 1), then along a position axis (axis 2).
      "nchw_fanin_concat_channels_then_rows": ([
          conv(6, (2, 2), None, "SAME", 1.3, 0.1, "ntk", NCHW), ["FanOut", {"num": 2}],
          ["parallel", [[conv(4, (2, 2), None, "SAME", 1.2, 0.1, "ntk", NCHW)],
                        [RELU, conv(6, (3, 2), None, "SAME", 1.4, None, "ntk", NCHW)]]],
          ["FanInConcat", {"axis": 1}], conv(6, (2, 2), None, "SAME", 1.2, 0.1, "ntk", NCHW),
          RELU, ["FanOut", {"num": 2}],
          ["parallel", [[conv(6, (2, 2), None, "SAME", 1.1, 0.1, "ntk", NCHW)],
                        [conv(6, (1, 2), None, "SAME", 1.3, 0.2, "ntk", NCHW)]]],
          ["FanInConcat", {"axis": 2}], ERF, gap(), dense(2)], "nchw", c1),
      # neural-tangents' attention (no parameterization argument) between standard Dense
      # layers, channels last.
      "standard_dense_attention_seq": ([
          ["Dense", dict(out_dim=6, W_std=1.3, b_std=0.1, parameterization="standard")],
          attn("SOFTMAX", pe="SUM", channel_axis=-1), RELU,
          ["Dense", dict(out_dim=5, W_std=1.2, b_std=0.2, parameterization="standard")], ERF,
          gap(-1), ["Dense", dict(out_dim=2, W_std=1.1, parameterization="standard")]], "seq",
          {}),
      # Width multipliers s = (s_in, s_out) of the standard parameterization: finite layers
      # s_out times wider than out_dim, kernels of the narrower network.
      "standard_dense_width_multipliers_mlp": ([
          sdense(8, 1.3, 0.1, (1, 2)), RELU, sdense(6, 1.2, 0.2, (2, 3)), ERF,
          sdense(2, 1.1, 0.1, (3, 1))], "flat", {}),
      # Multipliers that do not chain (neural-tangents' formula still defines the kernel):
      # these change it, so they check the formula, not only that s is accepted.
      "standard_dense_unchained_width_multipliers": ([
          sdense(8, 1.3, 0.1, (2, 3)), RELU, sdense(6, 1.2, 0.2, (1, 2)), ERF,
          sdense(2, 1.1, 0.1, (4, 1))], "flat", {}),
      "standard_conv_then_dense_width_multipliers": ([
          conv(5, (2, 2), None, "SAME", 1.3, 0.1, "standard", NCHW), RELU, ["Flatten", {}],
          sdense(6, 1.2, 0.1, (1, 4)), GELU, sdense(2, 0.9, None, (4, 1))], "nchw", c1),
      # Convolutions with width multipliers: chained (the narrow CNN's kernels), then
      # unchained through a transposed and a locally connected convolution. (ConvLocal
      # keeps s_out = 1: neural-tangents 0.6.5's ConvLocal gives itself out_chan channels
      # whatever s_out, so its kernels after s_out > 1 are not those of its own layer.)
      "standard_conv_width_multipliers_cnn": ([
          sconv("Conv", 4, (2, 2), 1.3, 0.1, (1, 2)), RELU,
          sconv("Conv", 3, (3, 2), 1.2, 0.2, (2, 3)), ERF, gap(),
          sdense(2, 1.1, 0.1, (3, 1))], "nchw", c1),
      "standard_conv_transpose_local_unchained_width_multipliers": ([
          sconv("Conv", 4, (2, 2), 1.3, 0.1, (1, 3)), RELU,
          sconv("ConvTranspose", 3, (2, 2), 1.2, 0.2, (2, 2)), GELU,
          sconv("ConvLocal", 3, (2, 2), 1.1, 0.1, (3, 1), "VALID"), RELU, ["Flatten", {}],
          sdense(2, 0.9, None, (1, 1))], "nchw", c1),
      # Channels in the middle, (n, H, C, W): channel_axis=-2 throughout.
      "hcw_layernorm_attention_pool": ([
          conv(6, (2, 2), None, "SAME", 1.3, 0.1, "ntk", HCW),
          ["LayerNorm", {"axis": [1, 2], "channel_axis": -2}], RELU,
          attn("SOFTMAX", pe="SUM", channel_axis=-2), ERF,
          ["SumPool", {"window_shape": [2, 2], "channel_axis": -2}], ["Flatten", {}]], "hcw", {"channel_axis": -2}),
      # Padded NCW sequences: masks through pooling, LayerNorm, attention and Dense.
      "ncw_masked_avgpool_layernorm_attention_gap": ([
          conv(6, (2,), None, "SAME", 1.3, 0.1, "ntk", NCW), RELU,
          ["AvgPool", {"window_shape": [2], "padding": "SAME", **c1}],
          conv(6, (2,), None, "SAME", 1.2, 0.1, "ntk", NCW), ["LayerNorm", {"axis": [1, 2], **c1}],
          ERF, attn("SOFTMAX", pe="SUM"), RELU, dense(5, 1.1, 0.2, 1), RELU, gap(),
          dense(2)], "ncw_masked", {"channel_axis": 1, "mask_constant": MASK}),
      "ncw_masked_sumpool_global_sum": ([
          conv(6, (3,), None, "SAME", 1.3, 0.1, "ntk", NCW), GELU,
          ["SumPool", {"window_shape": [2], "strides": [2], "padding": "SAME", **c1}],
          ["GlobalSumPool", c1], dense(2, 1.0, 0.1)], "ncw_masked",
          {"channel_axis": 1, "mask_constant": MASK}),
  }


def inputs(kind: str):
  """x1 (4, ...) with a repeated point and x2 (3, ...) with a copy and a multiple of x1's;
  padded sequences (lengths 5, 3, 2, 4 and 5, 1, 3) for the masked kind."""
  rng = np.random.default_rng(SEED + sum(map(ord, kind)))
  shapes = {"nchw": (2, 5, 4), "hcw": (5, 2, 4), "ncw_masked": (2, 5), "seq": (5, 3),
            "flat": (6,)}
  x1 = rng.normal(size=(4,) + shapes[kind])
  x2 = rng.normal(size=(3,) + shapes[kind])
  x1[3] = x1[0]
  x2[0] = x1[1]
  x2[1] = -1.5 * x1[2]
  if kind == "ncw_masked":
    for x, lengths in ((x1, (5, 3, 2, 4)), (x2, (5, 1, 3))):
      for i, n in enumerate(lengths):
        x[i, :, n:] = MASK
  return x1, x2


def make_fixture():
  return nt_reference.fixture_of(
      ((name, spec, *inputs(kind), kwargs)
       for name, (spec, kind, kwargs) in architectures().items()),
      description="neural-tangents 0.6.5 float64 NNGP/NTK of layers whose channel_axis is "
                  "not last (NCHW, NHCW, masked NCW) and of Dense and convolutions with width "
                  "multipliers s; "
                  "regenerate with "
                  "`PYTHONPATH=benchmarks:. python benchmarks/nt_reference_layouts.py fixture "
                  "--out tests/fixtures/nt_reference_layouts.json` in the reference environment.",
      seed=SEED, mask_constant=MASK)


if __name__ == "__main__":
  nt_reference.main(fixture=make_fixture, description=__doc__)
