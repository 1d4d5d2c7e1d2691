"""neural-tangents 0.6.5 side of the masked-input fixture; runs in the reference environment.

Executed by the reference python (see `benchmarks.reference_env`), never imported
by the project: it imports only neural-tangents, JAX, numpy, `layer_specs` and
`nt_reference` (whose network builder, JSON encoding and command line it uses).

  PYTHONPATH=benchmarks:. python benchmarks/nt_reference_masked.py fixture \
      --out tests/fixtures/nt_reference_masked.json

Cases: variable-length sequences padded with ``MASK`` and images with masked pixels
(every channel ``MASK``; one pixel with a single masked channel, which is zeroed but
not masked) through convolutions (paddings, strides), ConvLocal, ConvTranspose,
pooling, Flatten, attention, LayerNorm, FanInProd and FanInConcat (channels and
positions), each with x2=None and with x2; ``kernel_fn(x1, x2, get, mask_constant=MASK)``.
"""
import numpy as np

import nt_reference  # noqa: E402  (its builder, JSON encoding and command line, beside this script)
from nt_reference import conv, dense

SEED = 20240613
MASK = 7.5  # an atypical value, exactly representable: neural-tangents compares with ==
RELU = ["Relu", {}]
GAP = ["GlobalAvgPool", {}]


def attn(mech, linear=True, pe="NONE", val_pe=False, n_pe=None):
  args = dict(n_chan_out=8, n_chan_key=4, n_chan_val=4, n_heads=2, linear_scaling=linear,
              W_key_std=1.1, W_value_std=1.2, W_query_std=0.9, W_out_std=1.3, b_std=0.1,
              attention_mechanism=mech, pos_emb_type=pe, val_pos_emb=val_pe, W_pos_emb_std=0.8)
  if n_pe is not None:
    args["n_chan_pos_emb"] = n_pe
  return ["GlobalSelfAttention", args]


def architectures():
  """Named networks: (spec, input kind). Kinds: "seq" (n, 5, 2) with padded tails,
  "image" (n, 4, 3, 2) with masked pixels, "vector" (n, 4) with a masked point."""
  return {
      "conv_relu_gap_same_image": ([
          conv(4, (3, 2), None, "SAME", 1.3, 0.1), RELU, GAP, dense(2, 1.0, 0.1)], "image"),
      # VALID, then SAME with stride 2, then CIRCULAR; the output keeps its positions.
      "conv_valid_strided_circular_spatial_output_seq": ([
          conv(4, (2,), None, "VALID", 1.3, 0.1), RELU, conv(4, (3,), (2,), "SAME", 1.2, 0.2),
          ["Erf", {}], conv(3, (3,), None, "CIRCULAR", 1.1, 0.1)], "seq"),
      # AvgPool with SAME padding, normalize_edges True then False.
      "conv_avgpool_same_edges1_edges0_flatten_image": ([
          conv(4, (2, 2), None, "SAME", 1.3, 0.1), RELU,
          ["AvgPool", {"window_shape": [2, 2], "strides": [2, 1], "padding": "SAME",
                       "normalize_edges": True}],
          ["AvgPool", {"window_shape": [2, 2], "padding": "SAME", "normalize_edges": False}],
          ["Flatten", {}], dense(2, 1.0, 0.1)], "image"),
      "fanout_parallel_faninsum_sumpool_gsp_seq": ([
          conv(4, (3,), None, "SAME", 1.2, 0.1), ["FanOut", {"num": 2}],
          ["parallel", [[RELU, conv(4, (3,), None, "SAME", 1.4, 0.05)],
                        [["Gelu", {}], dense(4, 1.1, 0.2)]]],
          ["FanInSum", {}], RELU,
          ["SumPool", {"window_shape": [2], "strides": [1], "padding": "VALID"}],
          ["GlobalSumPool", {}], dense(2)], "seq"),
      "mlp_masked_point_vector": ([
          dense(8, 1.3, 0.1), RELU, dense(8, 1.2, 0.1), ["Erf", {}], dense(2, 1.0, 0.1)],
          "vector"),
      # LayerNorm over positions and channels, then over channels only.
      "layernorm_spatial_then_channels_flatten_seq": ([
          conv(4, (2,), None, "SAME", 1.2, 0.1), ["LayerNorm", {"axis": [1, 2]}], RELU,
          dense(4, 1.2, 0.3), ["LayerNorm", {"axis": -1}], RELU, ["Flatten", {}], dense(2)],
          "seq"),
      # SOFTMAX without, then with positional embeddings.
      "attention_softmax_then_softmax_pos_sum_gap_seq": ([
          dense(6, 1.2, 0.1), attn("SOFTMAX"), RELU, attn("SOFTMAX", pe="SUM"), RELU, GAP,
          dense(2)], "seq"),
      # ConvLocal: masks as Conv's (window centers), SAME then VALID with strides.
      "convlocal_same_valid_strided_flatten_image": ([
          ["ConvLocal", conv(4, (2, 2), None, "SAME", 1.3, 0.1)[1]], RELU,
          ["ConvLocal", conv(3, (2, 1), (1, 1), "VALID", 1.2, 0.2)[1]], ["Erf", {}],
          ["Flatten", {}], dense(2, 1.0, 0.1)], "image"),
      # ConvTranspose: masked where any input of the window is (SAME strided, then VALID).
      "convtranspose_same_strided_valid_gap_image": ([
          ["ConvTranspose", conv(4, (2, 2), (2, 1), "SAME", 1.3, 0.1)[1]], RELU,
          ["ConvTranspose", conv(3, (2, 2), None, "VALID", 1.2, 0.2)[1]], ["Erf", {}], GAP,
          dense(2, 1.0, 0.1)], "image"),
      # FanInProd: masked where every branch is.
      "fanout_parallel_faninprod_gap_seq": ([
          conv(4, (3,), None, "SAME", 1.2, 0.1), ["FanOut", {"num": 2}],
          ["parallel", [[RELU, conv(4, (2,), None, "SAME", 1.3, 0.1)],
                        [["Erf", {}], dense(4, 1.1, 0.2)]]],
          ["FanInProd", {}], dense(4, 1.2, 0.1), RELU, GAP, dense(2)], "seq"),
      # FanInConcat along channels (then a Dense, which reduces the channels of the mask).
      "fanout_parallel_faninconcat_channels_dense_gap_image": ([
          conv(4, (2, 2), None, "SAME", 1.2, 0.1), ["FanOut", {"num": 2}],
          ["parallel", [[RELU, conv(4, (3, 2), None, "SAME", 1.3, 0.1)],
                        [["Gelu", {}], dense(3, 1.1, 0.2)]]],
          ["FanInConcat", {"axis": -1}], dense(4, 1.2, 0.1), RELU, GAP, dense(2)], "image"),
      # FanInConcat along positions: each branch keeps its own mask.
      "fanout_parallel_faninconcat_positions_flatten_seq": ([
          conv(4, (2,), None, "SAME", 1.2, 0.1), ["FanOut", {"num": 2}],
          ["parallel", [[RELU, conv(4, (3,), None, "SAME", 1.3, 0.1)],
                        [["Erf", {}], conv(4, (2,), None, "VALID", 1.1, 0.2)]]],
          ["FanInConcat", {"axis": 1}], RELU, ["Flatten", {}], dense(2)], "seq"),
      # IDENTITY with linear scaling, then 1/sqrt(d) scaling with positional embeddings.
      "attention_identity_then_identity_sqrt_pos_sum_gap_seq": ([
          dense(6, 1.2, 0.1), attn("IDENTITY"), ["Erf", {}],
          attn("IDENTITY", linear=False, pe="SUM"), RELU, GAP, dense(2)], "seq"),
  }


def inputs(kind: str):
  """x1 (3, ...) and x2 (2, ...) with masked entries set to MASK."""
  rng = np.random.default_rng(SEED + sum(map(ord, kind)))
  shapes = {"seq": (5, 2), "image": (4, 3, 2), "vector": (4,)}
  x1 = rng.normal(size=(3,) + shapes[kind])
  x2 = rng.normal(size=(2,) + shapes[kind])
  if kind == "seq":  # lengths 5, 3, 2 and 4, 1
    for x, lengths in ((x1, (5, 3, 2)), (x2, (4, 1))):
      for i, n in enumerate(lengths):
        x[i, n:] = MASK
  elif kind == "image":
    x1[0, 3, :] = MASK  # a masked row
    x1[1, 0, 0] = MASK
    x1[1, 2, 1] = MASK
    x1[2, 1, 2, 0] = MASK  # one channel only: zeroed, the pixel stays unmasked
    x2[0, :, 2] = MASK  # a masked column
    x2[1, 1, 1] = MASK
  else:
    x1[1] = MASK  # a fully masked point
    x1[2, 0] = MASK  # one masked feature: zeroed
    x2[0, 3] = MASK
  return x1, x2


def make_fixture():
  kwargs = dict(mask_constant=MASK)
  return nt_reference.fixture_of(
      ((name, spec, *inputs(kind), kwargs) for name, (spec, kind) in architectures().items()),
      description="neural-tangents 0.6.5 float64 NNGP/NTK of masked inputs (mask_constant): "
                  "padded sequences and images with masked pixels through convolutions, ConvLocal, "
                  "ConvTranspose, "
                  "pooling, Flatten, attention, LayerNorm, FanInProd and FanInConcat; "
                  "regenerate with "
                  "`PYTHONPATH=benchmarks:. python benchmarks/nt_reference_masked.py fixture "
                  "--out tests/fixtures/nt_reference_masked.json` in the reference environment.",
      seed=SEED, mask_constant=MASK)


if __name__ == "__main__":
  nt_reference.main(fixture=make_fixture, description=__doc__)
