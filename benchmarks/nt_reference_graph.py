"""neural-tangents 0.6.5 side of the DotGeneral and Aggregate fixture; runs in the reference environment.

Executed by the reference python, never imported by the project: it imports only
neural-tangents, JAX, numpy, `layer_specs` and `nt_reference` (whose network builder,
JSON encoding and command line it uses).

  PYTHONPATH=benchmarks:. .venv-nt/bin/python benchmarks/nt_reference_graph.py fixture \\
      --out tests/fixtures/nt_reference_graph.json

Each case holds the network (layer specs; constant arrays as ``{"array": ...}``), the
inputs, the kernel keywords (``pattern`` for Aggregate, as ``{"tuple": [{"array":
pattern1}, {"array": pattern2}]}``) and neural-tangents' float64 NNGP and NTK.
"""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

import layer_specs  # noqa: E402  (benchmarks/layer_specs.py, beside this script)
import nt_reference  # noqa: E402  (its JSON encoding and command line, beside this script)

SEED = 20240613


def dense(out_dim, W_std=1.0, b_std=None):
  return ["Dense", dict(out_dim=out_dim, W_std=W_std, b_std=b_std, parameterization="ntk")]


def conv(out_chan, filter_shape, padding="VALID", W_std=1.0, b_std=None):
  return ["Conv", dict(out_chan=out_chan, filter_shape=list(filter_shape), padding=padding,
                       W_std=W_std, b_std=b_std, parameterization="ntk")]


def arr(a):
  return {"array": np.asarray(a).tolist()}


def dims(dn):
  return {"tuple": [[list(a) for a in pair] for pair in dn]}


def dot_general(lhs=None, rhs=None, dn=(((), ()), ((), ()))):
  args = dict(dimension_numbers=dims(dn))
  if lhs is not None:
    args["lhs"] = arr(lhs)
  if rhs is not None:
    args["rhs"] = arr(rhs)
  return ["DotGeneral", args]


def _inputs(rng, shape, n1=3, n2=2):
  x1 = rng.normal(size=(n1,) + shape)
  x2 = rng.normal(size=(n2,) + shape)
  x2[0] = x1[1]  # one input in both batches
  return x1, x2


def _grid_graph(rng, n, h, w):
  """Random directed subgraphs of the h x w grid with self loops, weights in [0.5, 1.5]."""
  a = np.zeros((n, h, w, h, w))
  for b in range(n):
    for i in range(h):
      for j in range(w):
        a[b, i, j, i, j] = 1.0
        for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)):
          if 0 <= i + di < h and 0 <= j + dj < w and rng.random() < 0.7:
            a[b, i, j, i + di, j + dj] = rng.uniform(0.5, 1.5)
  return a


def cases():
  """(name, layer specs, x1, x2, patterns of x1 and x2 or None, Aggregate implementation)."""
  rng = np.random.default_rng(SEED)
  out = []

  # DotGeneral: a scalar on a fully-connected network.
  x1, x2 = _inputs(rng, (4,))
  out.append(("dot_general_scalar_fc", [dense(5, 1.3, 0.1), ["Relu", {}],
                                        dot_general(rhs=-1.7), dense(2, 1.0, 0.2)],
              x1, x2, None))
  # Contraction of the positions of a sequence with a vector (rhs).
  x1, x2 = _inputs(rng, (5, 2))
  out.append(("dot_general_contract_seq_rhs",
              [conv(6, (2,), W_std=1.2, b_std=0.1), ["Relu", {}],
               dot_general(rhs=[1.0, -1.0, 2.0, 0.5], dn=(((1,), (0,)), ((), ()))),
               dense(4, 1.1, 0.05), ["Erf", {"a": 1.0, "b": 1.0, "c": 0.0}], dense(2)],
              x1, x2, None))
  # Contraction of both axes of an image with a matrix (lhs).
  x1, x2 = _inputs(rng, (4, 3, 2))
  out.append(("dot_general_contract_image_lhs",
              [conv(5, (2, 2), padding="SAME", W_std=1.4),
               dot_general(lhs=rng.normal(size=(4, 3)), dn=(((0, 1), (1, 2)), ((), ()))),
               ["Relu", {}], dense(3, 1.0, 0.1)], x1, x2, None))
  # Per-point, per-position weights (batching the batch and position axes, no contraction).
  x1, x2 = _inputs(rng, (4, 2), n2=3)
  out.append(("dot_general_batch_points_positions",
              [conv(6, (2,), padding="SAME", W_std=1.2, b_std=0.1),
               dot_general(rhs=rng.normal(size=(3, 4)), dn=(((), ()), ((0, 1), (0, 1)))),
               ["Relu", {}], ["Flatten", {}], dense(2)], x1, x2, None))
  # Per-point mixing of the positions (batch axis batched, positions contracted, new free axis).
  x1, x2 = _inputs(rng, (4, 2), n2=3)
  out.append(("dot_general_mix_positions_lhs",
              [conv(6, (2,), W_std=1.2, b_std=0.1),
               dot_general(lhs=rng.normal(size=(3, 5, 3)), dn=(((2,), (1,)), ((0,), (0,)))),
               ["Relu", {}], ["GlobalAvgPool", {}], dense(2, 1.0, 0.1)], x1, x2, None))

  # Aggregate on sequences: a weighted non-symmetric graph, twice.
  x1, x2 = _inputs(rng, (5, 2))
  p1, p2 = rng.normal(size=(3, 5, 5)), rng.normal(size=(2, 5, 5))
  out.append(("aggregate_seq_weighted",
              [dense(6, 1.2, 0.1), ["Aggregate", {}], ["Relu", {}], dense(4, 1.3, 0.05),
               ["Aggregate", {}], ["GlobalAvgPool", {}], dense(2)], x1, x2, (p1, p2, "DENSE")))
  # Aggregate on sequences: a binary directed graph.
  x1, x2 = _inputs(rng, (6, 3))
  p1 = (rng.random((3, 6, 6)) < 0.4).astype(float)
  p2 = (rng.random((2, 6, 6)) < 0.4).astype(float)
  out.append(("aggregate_seq_binary",
              [dense(5, 1.5), ["Aggregate", {"aggregate_axis": 1}], ["Erf", {"a": 1.0, "b": 1.0, "c": 0.0}],
               ["Flatten", {}], dense(2, 1.0, 0.1)], x1, x2, (p1, p2, "DENSE")))
  # Aggregate on 2D grids (both spatial axes), after a convolution.
  x1, x2 = _inputs(rng, (3, 2, 2))
  p1, p2 = _grid_graph(rng, 3, 3, 2), _grid_graph(rng, 2, 3, 2)
  out.append(("aggregate_image_grid",
              [conv(5, (2, 2), padding="SAME", W_std=1.3, b_std=0.1),
               ["Aggregate", {}], ["Relu", {}], ["Flatten", {}], dense(2)], x1, x2,
              (p1, p2, "DENSE")))
  # Aggregate along one axis of an image (rows of each column aggregated alike).
  x1, x2 = _inputs(rng, (3, 4, 2))
  p1, p2 = rng.normal(size=(3, 4, 4)), rng.normal(size=(2, 4, 4))
  out.append(("aggregate_image_one_axis",
              [dense(4, 1.2), ["Aggregate", {"aggregate_axis": [2]}], ["Relu", {}],
               dense(3, 1.0, 0.1), ["GlobalAvgPool", {}]], x1, x2, (p1, p2, "DENSE")))
  # SPARSE arcs on sequences: repeated arcs and padding (a negative head).
  x1, x2 = _inputs(rng, (5, 2))
  s1 = rng.integers(0, 5, size=(3, 7, 1, 2))
  s2 = rng.integers(0, 5, size=(2, 7, 1, 2))
  s1[0, 1] = s1[0, 0]  # a repeated arc
  s1[1, -1, 0, 1] = -1  # padding
  s2[1, -2:, 0, 1] = -1
  out.append(("aggregate_seq_sparse",
              [dense(6, 1.2, 0.1), ["Aggregate", {"implementation": "SPARSE"}], ["Relu", {}],
               dense(4), ["GlobalAvgPool", {}]], x1, x2, (s1, s2, "SPARSE")))
  return out


def make_fixture():
  jax.config.update("jax_enable_x64", True)
  out = []
  for name, spec, x1, x2, graphs in cases():
    _, _, kernel_fn = layer_specs.build(spec, stax, {}, jnp.asarray)
    for with_x2 in (False, True):
      kwargs = {}
      if graphs is not None:
        p1, p2, _ = graphs
        kwargs["pattern"] = {"tuple": [arr(p1), arr(p2 if with_x2 else p1)]}
      decoded = {k: layer_specs.decode(v, jnp.asarray) for k, v in kwargs.items()}
      k = kernel_fn(jnp.asarray(x1), jnp.asarray(x2) if with_x2 else None, ("nngp", "ntk"),
                    **decoded)
      nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
      out.append(dict(
          name=f"{name}_{'x2' if with_x2 else 'x2none'}", layers=spec, x1=x1.tolist(),
          x2=x2.tolist() if with_x2 else None, kwargs=kwargs, nngp=nt_reference._jsonable(nngp),
          ntk=nt_reference._jsonable(ntk),
          finite=bool(np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk)))))
  return dict(
      description="neural-tangents 0.6.5 float64 NNGP/NTK of networks with DotGeneral and "
                  "Aggregate (dense and sparse graphs); regenerate with "
                  "`PYTHONPATH=benchmarks:. .venv-nt/bin/python benchmarks/nt_reference_graph.py "
                  "fixture --out tests/fixtures/nt_reference_graph.json`.",
      dtype="float64", seed=SEED, versions=nt_reference.versions(), cases=out)


if __name__ == "__main__":
  nt_reference.main(fixture=make_fixture, description=__doc__)
