"""The public surface: neural-tangents idioms, keyword checks, hyperparameters as data."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernels
from kernels import parameterization as pz
from kernels import stax
from kernels.empirical import empirical_kernel_fn, empirical_nngp_fn, empirical_ntk_fn

X = np.random.RandomState(0).randn(5, 3).astype(np.float32)


def test_package_exposes_its_modules():
  for name in ("predict", "empirical", "monte_carlo", "sharding", "optim", "stax",
               "parameterization", "flax_module"):
    assert hasattr(kernels, name), name


def test_layers_index_like_neural_tangents_triples():
  net = stax.serial(stax.Dense(16, W_std=1.3), stax.Relu(), stax.Dense(1))
  assert len(net) == 3
  init_fn, apply_fn, kernel_fn = net
  assert net[0] == init_fn and net[1] == apply_fn and net[2] == kernel_fn
  np.testing.assert_array_equal(net[2](X, None, "nngp"), kernel_fn(X, None, "nngp"))
  assert net[-1] == kernel_fn


def test_kernel_fn_keywords():
  net = stax.serial(stax.Dense(16), stax.Relu(), stax.Dense(1))
  with pytest.raises(TypeError, match="gett"):
    net.kernel_fn(X, None, gett="ntk")
  for kw in (dict(channel_axis=0), dict(batch_axis=1), dict(mask_constant="0")):
    with pytest.raises(ValueError, match=list(kw)[0]):
      net.kernel_fn(X, None, "ntk", **kw)
  # neural-tangents' defaults mean what this project does: accepted. For (n, d) inputs
  # diagonal_batch (its default True) and diagonal_spatial change no nngp or ntk.
  for kw in (dict(channel_axis=-1, batch_axis=0, diagonal_spatial=False),
             dict(diagonal_batch=True), dict(diagonal_batch=False), dict(diagonal_spatial=True)):
    k = net.kernel_fn(X, None, "ntk", **kw)
    np.testing.assert_array_equal(k, net.kernel_fn(X, None, "ntk"))


def test_apply_fn_keywords():
  net = stax.serial(stax.Dense(16), stax.Relu(), stax.Dense(1))
  _, params = net.init_fn(jax.random.PRNGKey(0), X.shape)
  y = net.apply_fn(params, X, rng=jax.random.PRNGKey(1))  # no stochastic layer: unused
  np.testing.assert_array_equal(y, net.apply_fn(params, X))
  with pytest.raises(TypeError, match="mask"):
    net.apply_fn(params, X, mask=1)


@pytest.mark.parametrize("build,err,match", [
    (lambda: stax.Erf(a=float("nan")), ValueError, "a must be a finite"),
    (lambda: stax.Erf(b="x"), TypeError, "b must be"),
    (lambda: stax.ABRelu(float("nan"), 1.0), ValueError, "a must be a finite"),
    (lambda: stax.ABRelu(0.0, float("inf")), ValueError, "b must be a finite"),
    (lambda: stax.LeakyRelu("a"), TypeError, "alpha"),
    (lambda: stax.Gelu(approximate="yes"), TypeError, "approximate"),
    (lambda: pz.depth_mup(2.5), ValueError, "depth must be a positive integer"),
    (lambda: pz.depth_mup(4, branch_exponent=2.0), ValueError, "branch_exponent"),
    (lambda: stax.ElementwiseNumerical(jnp.sin, deg=400), ValueError, "deg must be at most"),
    (lambda: stax.ElementwiseNumerical(jnp.log), ValueError, "fn is not finite"),
    (lambda: stax.ElementwiseNumerical(jnp.sqrt), ValueError, "fn is not finite"),
    (lambda: stax.ElementwiseNumerical(lambda x: x.reshape(-1, 1)), ValueError, "shape"),
    (lambda: stax.Dense(4, W_std=jnp.ones(3)), TypeError, "W_std"),
])
def test_bad_hyperparameters_are_refused_with_their_name(build, err, match):
  with pytest.raises(err, match=match):
    build()


def test_largest_quadrature_is_finite():
  net = stax.serial(stax.Dense(8), stax.ElementwiseNumerical(jnp.sin, deg=250), stax.Dense(1))
  k = net.kernel_fn(X, None, "ntk")
  assert np.all(np.isfinite(np.asarray(k)))


@pytest.mark.parametrize("make", [
    lambda: empirical_ntk_fn(stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1)).apply_fn),
    lambda: empirical_nngp_fn(stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1)).apply_fn),
])
def test_empirical_kernels_name_missing_params(make):
  with pytest.raises(TypeError, match="params"):
    make()(X, None, None)
  kfn = empirical_kernel_fn(stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1)).apply_fn)
  with pytest.raises(TypeError, match="params"):
    kfn(X, None, "ntk")


def _net(w, b, a):
  return stax.serial(stax.Dense(64, W_std=w, b_std=b), stax.Erf(a=a),
                     stax.Dense(64, W_std=w, b_std=b), stax.Relu(), stax.Dense(1, W_std=w))


def test_kernels_are_differentiable_in_hyperparameters():
  # Marginal-likelihood fits of W_std and b_std need d kernel / d hyperparameter:
  # jax.grad through kernel_fn equals central differences (float64).
  with jax.enable_x64(True):
    x = X.astype(np.float64)

    def loss(params):
      w, b, a = params
      k = _net(w, b, a).kernel_fn(x, None, ("nngp", "ntk"))
      return jnp.sum(k.ntk) + jnp.sum(k.nngp ** 2)

    p0 = jnp.asarray([1.3, 0.2, 0.8])
    g = jax.grad(loss)(p0)
    eps = 1e-6
    fd = [(loss(p0.at[i].add(eps)) - loss(p0.at[i].add(-eps))) / (2 * eps) for i in range(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    # and under jit, with the same values as the cached, static path
    jitted = jax.jit(lambda w: _net(w, 0.2, 0.8).kernel_fn(x, None, "ntk"))(1.3)
    np.testing.assert_allclose(jitted, _net(1.3, 0.2, 0.8).kernel_fn(x, None, "ntk"), rtol=1e-12)


def test_dense_takes_neural_tangents_axes_and_width_multipliers():
  """neural-tangents' Dense(out_dim, W_std, b_std, batch_axis, channel_axis,
  parameterization, s): code passing the defaults runs unchanged (channel_axis=1 of
  (n, d) inputs is their last axis; other channel axes: test_channel_axes.py; s:
  test_width_multipliers.py); a batch axis other than the first, or s under the NTK
  parameterization, is a ValueError naming the argument."""
  # neural-tangents' positional order: out_dim, W_std, b_std, batch_axis, channel_axis,
  # parameterization, s.
  net = stax.serial(stax.Dense(16, 1.5, 0.1, 0, -1, "standard", (1, 1)), stax.Relu(),
                    stax.Dense(1, parameterization="standard", s=(1, 1)))
  ref = stax.serial(stax.Dense(16, 1.5, 0.1, parameterization="standard"), stax.Relu(),
                    stax.Dense(1, parameterization="standard"))
  np.testing.assert_array_equal(net.kernel_fn(X, None, "ntk"), ref.kernel_fn(X, None, "ntk"))
  one = stax.serial(stax.Dense(16, 1.5, 0.1, parameterization="standard", channel_axis=1),
                    stax.Relu(),
                    stax.Dense(1, parameterization="standard", channel_axis=1))
  np.testing.assert_allclose(one.kernel_fn(X, None, "ntk"), ref.kernel_fn(X, None, "ntk"), rtol=1e-5)
  for kw in (dict(batch_axis=1), dict(channel_axis=0), dict(s=(2, 1))):
    with pytest.raises(ValueError, match=list(kw)[0]):
      stax.Dense(4, **kw)
