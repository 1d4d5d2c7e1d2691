"""DotGeneral and Aggregate: float64 kernels against neural-tangents 0.6.5
(tests/fixtures/nt_reference_graph.json, written by benchmarks/nt_reference_graph.py),
the DotGeneral kernel against the map applied to the kernel of the network before it,
the Aggregate kernel against the empirical covariance of finite networks, and bad
inputs."""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import layer_specs
from kernels import stax

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "nt_reference_graph.json"
RTOL = 1e-6
CASES = json.loads(FIXTURE.read_text())["cases"]
# Each case compiles its own program: every network with x2, and x2=None for one network of
# each layer (the fixture holds all of them; benchmarks/nt_reference_graph.py).
X2NONE = ("dot_general_contract_image_lhs", "aggregate_seq_weighted")
SELECTED = [c for c in CASES if c["x2"] is not None or c["name"][:-len("_x2none")] in X2NONE]


def _rel_err(ours, ref):
  return float(np.max(np.abs(np.asarray(ours) - ref)) / np.max(np.abs(ref)))


def test_fixture_covers_both_layers():
  names = [c["name"] for c in CASES]
  for key in ("dot_general_scalar", "contract_seq_rhs", "contract_image_lhs", "batch_points",
              "mix_positions", "aggregate_seq_weighted", "aggregate_seq_binary",
              "aggregate_image_grid", "aggregate_image_one_axis", "aggregate_seq_sparse"):
    assert f"{key}" in " ".join(names), key
    assert any(key in n and n.endswith("_x2none") for n in names), key
  assert all(c["finite"] for c in CASES)


@pytest.mark.parametrize("case", SELECTED, ids=[c["name"] for c in SELECTED])
def test_matches_neural_tangents_float64(case):
  with jax.enable_x64(True):
    _, _, kernel_fn = layer_specs.build(case["layers"], stax, {}, jnp.asarray)
    kwargs = {k: layer_specs.decode(v, jnp.asarray) for k, v in case["kwargs"].items()}
    x1 = jnp.asarray(case["x1"], jnp.float64)
    x2 = None if case["x2"] is None else jnp.asarray(case["x2"], jnp.float64)
    k = kernel_fn(x1, x2, ("nngp", "ntk"), **kwargs)
    assert k.nngp.dtype == jnp.float64
    ref_nngp = np.array(case["nngp"], np.float64)
    ref_ntk = np.array(case["ntk"], np.float64)
    assert k.nngp.shape == ref_nngp.shape and k.ntk.shape == ref_ntk.shape
    errs = _rel_err(k.nngp, ref_nngp), _rel_err(k.ntk, ref_ntk)
    assert max(errs) <= RTOL, errs
    if x2 is None and case["name"].startswith("aggregate_seq_weighted"):
      # x2=None with (pattern1, None): the same graphs, an exactly symmetric kernel.
      k1 = kernel_fn(x1, None, ("nngp", "ntk"), pattern=(kwargs["pattern"][0], None))
      assert np.array_equal(k1.nngp, k1.nngp.T) and np.array_equal(k1.ntk, k1.ntk.T)
      assert _rel_err(k1.nngp, ref_nngp) <= RTOL and _rel_err(k1.ntk, ref_ntk) <= RTOL


def test_dot_general_kernel_is_the_map_of_the_kernel_before_it():
  """Conv -> DotGeneral mixing the positions of each point with its own matrix G_n:
  the kernel is exactly sum_{q,q'} G_a(p,q) K(q,q') G_b(p',q') of the Conv kernel, and the
  finite layer is lax.dot_general."""
  rng = np.random.default_rng(0)
  x1, x2, G = rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 2, 4))
  x2[1] = x1[0]
  conv = stax.Conv(6, (2,), W_std=1.3, b_std=0.2)
  dn = (((2,), (1,)), ((0,), (0,)))
  mix = stax.DotGeneral(lhs=G, dimension_numbers=dn)
  assert mix == stax.DotGeneral(lhs=G.copy(), dimension_numbers=[[[2], [1]], [[0], [0]]])
  assert hash(mix) == hash(stax.DotGeneral(lhs=G.copy(), dimension_numbers=dn))
  net = stax.serial(conv, mix)
  with jax.enable_x64(True):
    k_conv = conv.kernel_fn(x1, x2, ("nngp", "ntk"))
    km = net.kernel_fn(x1, x2, ("nngp", "ntk"))
    for ours, before in ((km.nngp, k_conv.nngp), (km.ntk, k_conv.ntk)):
      want = np.einsum("apq,abqr,bsr->abps", G, np.asarray(before), G)
      np.testing.assert_allclose(ours, want, rtol=1e-12, atol=1e-14)
    # The finite network: init_fn's shape and apply_fn's values.
    shape, params = net.init_fn(jax.random.PRNGKey(4), x1.shape)
    y = net.apply_fn(params, x1)
    h = np.asarray(conv.apply_fn(params[0], x1))
  assert shape == y.shape == (3, 2, 6)
  np.testing.assert_allclose(y, np.einsum("npq,nqc->npc", G, h), rtol=1e-12)


def test_aggregate_kernel_is_the_covariance_of_finite_networks():
  """Dense(width) -> Aggregate: the outputs are Gaussian with covariance A1^T K A2 in every
  channel; over M draws of width w the mean of y1 y2 estimates it from N = M w independent
  products, whose standard deviation is sqrt((K11 K22 + K12^2) / N) (Isserlis); every
  entry must lie within 5 of them (two-sided, 64 entries: false alarm < 4e-5)."""
  m_draws, width = 200, 64
  rng = np.random.default_rng(1)
  x = rng.normal(size=(4, 4, 3))  # points 0, 1 against points 2, 3
  pattern = rng.normal(size=(4, 4, 4))
  pattern[3] = np.eye(4)[::-1]  # one permutation graph
  net = stax.serial(stax.Dense(width, W_std=1.5, b_std=0.3), stax.Aggregate())
  with jax.enable_x64(True):
    k_all = np.asarray(net.kernel_fn(x, None, "nngp", pattern=(pattern, None)))

    def draw(key):
      _, params = net.init_fn(key, x.shape)
      return net.apply_fn(params, x, pattern=pattern)

    keys = jax.random.split(jax.random.PRNGKey(2), m_draws)
    y = np.asarray(jax.jit(jax.vmap(draw))(keys))
  assert k_all.shape == (4, 4, 4, 4)
  k = k_all[:2, 2:]
  emp = np.einsum("mapc,mbqc->abpq", y[:, :2], y[:, 2:]) / (m_draws * width)
  v = np.einsum("aapp->ap", k_all)
  sd = np.sqrt((v[:2, None, :, None] * v[None, 2:, None, :] + k ** 2) / (m_draws * width))
  z = np.abs(emp - k) / sd
  assert z.max() < 5, z.max()


def test_aggregate_apply_dense_and_sparse():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
  a = rng.normal(size=(2, 4, 4)).astype(np.float32)
  y = stax.Aggregate(aggregate_axis=2).apply_fn((), x, pattern=a)
  np.testing.assert_allclose(y, np.einsum("nhic,nij->nhjc", x, a), rtol=1e-5, atol=1e-5)
  b = rng.normal(size=(2, 3, 4, 3, 4)).astype(np.float32)
  y = stax.Aggregate().apply_fn((), x, pattern=b)
  np.testing.assert_allclose(y, np.einsum("nhwc,nhwij->nijc", x, b), rtol=1e-5, atol=1e-5)
  # Sparse arcs (tail, head): a repeated arc counts twice, a negative head is padding.
  arcs = np.array([[[0, 1], [0, 1], [2, 0], [3, -1]], [[1, 1], [3, 2], [2, 3], [0, 0]]])
  ys = stax.Aggregate(aggregate_axis=2, implementation="SPARSE").apply_fn((), x, pattern=arcs)
  dense = np.zeros((2, 4, 4), np.float32)
  for n, edges in enumerate(arcs):
    for s, r in edges:
      if r >= 0:
        dense[n, s, r] += 1
  np.testing.assert_allclose(ys, np.einsum("nhic,nij->nhjc", x, dense), rtol=1e-5, atol=1e-5)


def test_bad_inputs():
  x = jnp.ones((2, 4, 3))
  agg = stax.serial(stax.Dense(3), stax.Aggregate())
  p = jnp.ones((2, 4, 4))
  with pytest.raises(ValueError, match="pattern"):
    agg.kernel_fn(x)
  with pytest.raises(ValueError, match="pattern"):
    agg.apply_fn(agg.init_fn(jax.random.PRNGKey(0), x.shape)[1], x)
  with pytest.raises(ValueError, match="pattern"):
    agg.kernel_fn(x, pattern=p)  # not a pair
  with pytest.raises(ValueError, match="pattern"):
    agg.kernel_fn(x, x, pattern=(p, None))
  with pytest.raises(ValueError, match=r"pattern\[0\] must have shape"):
    agg.kernel_fn(x, pattern=(jnp.ones((2, 3, 3)), None))
  with pytest.raises(ValueError, match=r"pattern\[1\] must have shape"):
    agg.kernel_fn(x, x, pattern=(p, jnp.ones((3, 4, 4))))
  with pytest.raises(ValueError, match="pattern"):
    stax.Aggregate(implementation="SPARSE").kernel_fn(x, pattern=(p, None))  # float arcs
  with pytest.raises(ValueError, match="implementation"):
    stax.Aggregate(implementation="CSR")
  with pytest.raises(ValueError, match="aggregate_axis"):
    stax.Aggregate(aggregate_axis=-1).kernel_fn(x, pattern=(p, None))
  with pytest.raises(ValueError, match="channel_axis"):
    stax.Aggregate(channel_axis=1)
  with pytest.raises(ValueError, match="at most one of lhs and rhs"):
    stax.DotGeneral(lhs=1.0, rhs=2.0)
  with pytest.raises(ValueError, match="dimension_numbers"):
    stax.DotGeneral(rhs=1.0, dimension_numbers=((1, 0), ((), ())))
  with pytest.raises(ValueError, match="dimension_numbers"):
    stax.DotGeneral(rhs=jnp.ones(3), dimension_numbers=(((2,), (0,)), ((), ()))).kernel_fn(x)
  with pytest.raises(ValueError, match="dimension_numbers"):  # the batch axis contracted
    stax.DotGeneral(rhs=jnp.ones(2), dimension_numbers=(((0,), (0,)), ((), ()))).kernel_fn(x)
  with pytest.raises(ValueError, match="dimension_numbers"):  # sizes 4 and 5 paired
    stax.DotGeneral(rhs=jnp.ones(5), dimension_numbers=(((1,), (0,)), ((), ()))).kernel_fn(x)
  with pytest.raises(ValueError, match="dimension_numbers"):  # channels no longer last
    stax.DotGeneral(rhs=jnp.ones((4, 2)), dimension_numbers=(((1,), (0,)), ((), ()))).kernel_fn(x)
  with pytest.raises(ValueError, match="dimension_numbers"):  # the batch axis moved
    stax.DotGeneral(lhs=jnp.ones((2, 4)), dimension_numbers=(((1,), (1,)), ((), ()))).kernel_fn(x)
  with pytest.raises(ValueError, match="points"):  # per-point map, x1 and x2 of other sizes
    stax.DotGeneral(rhs=jnp.ones((2, 4)), dimension_numbers=(((), ()), ((0, 1), (0, 1)))
                    ).kernel_fn(x, x[:1])
  with pytest.raises(ValueError, match="dimension_numbers"):
    stax.DotGeneral(rhs=jnp.ones(5), dimension_numbers=(((1,), (0,)), ((), ()))).init_fn(
        jax.random.PRNGKey(0), x.shape)
