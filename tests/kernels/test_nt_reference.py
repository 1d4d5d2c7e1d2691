"""kernels.stax against neural-tangents 0.6.5: float64 NNGP and NTK of fully-connected,
convolutional and other networks (pooling, LayerNorm, Dropout, fan-in, repeat).

The reference values in tests/fixtures/nt_reference.json were computed by
neural-tangents itself (regenerate with ``python -m benchmarks.reference_env fixture``);
each case holds the network as a list of layer specs, the inputs and both kernels.
Where neural-tangents returns NaN (its quadrature divides 0/0 at a zero input
without bias) the kernels here must be finite instead.
"""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import layer_specs
from kernels import stax

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "nt_reference.json"
RTOL = 1e-6
_FUNCTIONS = {"tanh": jnp.tanh, "sin": jnp.sin, "exp_decay": lambda r: jnp.exp(-r / 4)}


def _load():
  return json.loads(FIXTURE.read_text())


def build(spec):
  """Builds a kernels.stax network from a list of ``[name, arguments]`` layer specs."""
  return layer_specs.build(spec, stax, _FUNCTIONS)


def _array(rows):
  """Nested lists (NaN and inf as strings) as a float64 array of any rank."""
  if not isinstance(rows, list):
    return np.float64(float(rows))
  return np.array([_array(r) for r in rows], np.float64)


def _exchanged(a):
  """``K[b, a, i', i]``: the kernel with its two inputs exchanged (any spatial layout)."""
  perm = [1, 0]
  for i in range(2, a.ndim, 2):
    perm += [i + 1, i] if i + 1 < a.ndim else [i]
  return np.transpose(a, perm)


def _max_rel_err(ours, ref):
  """max |ours - ref| / max|ref| over the entries where ref is finite."""
  ok = np.isfinite(ref)
  scale = max(np.max(np.abs(ref[ok])), np.finfo(np.float64).tiny)
  return float(np.max(np.abs(ours[ok] - ref[ok])) / scale)


CASES = _load()["cases"]


def test_fixture_covers_the_intended_cases():
  data = _load()
  assert data["dtype"] == "float64"
  assert data["versions"]["neural_tangents"] == "0.6.5"
  names = [c["name"] for c in CASES]
  for key in ("ntk_", "standard_", "_nobias_", "_bias_", "residual", "depth1", "depth4",
              "_x2none", "_x2", "numerical", "gelu", "erf", "abs", "abrelu", "leaky_relu",
              "cnn_flatten", "avgpool", "sumpool", "circular", "conv1d", "conv3d", "nchw",
              "normalize_edges", "layernorm", "dropout", "fanin_concat_prod", "repeat",
              "spatial_output", "fanin_concat_spatial", "lcn", "lcn3d", "tconv", "tconv1d",
              "tconv3d", "index", "resize"):
    assert any(key in n for n in names), key


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_neural_tangents_float64(case):
  with jax.enable_x64(True):
    _, _, kernel_fn = build(case["layers"])
    x1 = jnp.asarray(case["x1"], jnp.float64)
    x2 = None if case["x2"] is None else jnp.asarray(case["x2"], jnp.float64)
    k = kernel_fn(x1, x2, ("nngp", "ntk"), **case.get("kwargs", {}))
    nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
  assert nngp.dtype == np.float64 and ntk.dtype == np.float64
  assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk))
  ref_nngp, ref_ntk = _array(case["nngp"]), _array(case["ntk"])
  if case["x2"] is None:
    # Ours is exactly symmetric: the symmetric part of neural-tangents' (whose Gauss-Hermite
    # quadrature treats its two arguments differently, an asymmetry of ~1e-4 at deg 25).
    assert np.array_equal(nngp, _exchanged(nngp)) and np.array_equal(ntk, _exchanged(ntk))
    ref_nngp = (ref_nngp + _exchanged(ref_nngp)) / 2
    ref_ntk = (ref_ntk + _exchanged(ref_ntk)) / 2
  assert nngp.shape == ref_nngp.shape and ntk.shape == ref_ntk.shape
  err_nngp, err_ntk = _max_rel_err(nngp, ref_nngp), _max_rel_err(ntk, ref_ntk)
  assert err_nngp <= RTOL and err_ntk <= RTOL, (
      f"relative error nngp {err_nngp:.3e}, ntk {err_ntk:.3e}")
