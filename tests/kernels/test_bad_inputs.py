"""Each bad input gets a ValueError or TypeError that names the argument."""
import jax
import numpy as np
import pytest

from kernels import optim, stax
from kernels import parameterization as pz
from kernels.empirical import empirical_ntk_fn
from kernels.monte_carlo import monte_carlo_kernel_fn

NET = stax.serial(stax.Dense(8, 1.4), stax.Relu(), stax.Dense(1))
X = np.ones((3, 4), np.float32)


@pytest.mark.parametrize("x1,x2,err,match", [
    (np.ones((3, 4)), np.ones((2, 5)), ValueError, "feature dimension"),
    (np.ones((3,)), None, ValueError, "x1 must have shape"),
    (np.ones((3, 4, 2)), np.ones((2, 4, 3)), ValueError, "x2 must have shape"),
    (np.ones((3, 4)), np.ones((2,)), ValueError, "x2 must have shape"),
    (np.array([[1.0, np.nan]]), None, ValueError, "x1 contains NaN"),
    (np.ones((2, 2)), np.array([[np.inf, 1.0]]), ValueError, "x2 contains NaN or inf"),
    (np.zeros((0, 4)), None, ValueError, "x1 must have at least one"),
    ("abc", None, TypeError, "x1"),
    (None, None, TypeError, "x1"),
    (np.array([["a", "b"]]), None, TypeError, "x1"),
])
def test_kernel_fn_inputs(x1, x2, err, match):
  with pytest.raises(err, match=match):
    NET.kernel_fn(x1, x2)


def test_get_names():
  with pytest.raises(ValueError, match="get"):
    NET.kernel_fn(X, None, "ntkk")


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(out_dim=0), ValueError, "out_dim"),
    (dict(out_dim=-3), ValueError, "out_dim"),
    (dict(out_dim=2.5), TypeError, "out_dim"),
    (dict(out_dim=4, W_std=-1.0), ValueError, "W_std"),
    (dict(out_dim=4, b_std=float("nan")), ValueError, "b_std"),
    (dict(out_dim=4, parameterization="mu-p"), ValueError, "parameterization"),
    (dict(out_dim=4, parameterization=3), TypeError, "parameterization"),
])
def test_dense_arguments(kwargs, err, match):
  with pytest.raises(err, match=match):
    stax.Dense(**kwargs)


def test_parameterization_arguments():
  with pytest.raises(ValueError, match="gamma0"):
    pz.mup(gamma0=0.0)
  with pytest.raises(ValueError, match="depth"):
    pz.depth_mup(depth=0)
  with pytest.raises(ValueError, match="Unknown parameterization"):
    pz.get("ntkk")


@pytest.mark.parametrize("net,match", [
    (stax.serial(stax.Relu(), stax.Dense(1)), "Gaussian pre-activations"),
    (stax.serial(stax.Dense(4), stax.Relu(), stax.Relu(), stax.Dense(1)), "Gaussian"),
    (stax.serial(stax.Dense(4), stax.FanOut(2), stax.parallel(stax.Identity(), stax.Identity()),
                 stax.FanInSum()), "independent branches"),
    (stax.serial(stax.Dense(4), stax.FanOut(2), stax.parallel(stax.Relu(), stax.Identity()),
                 stax.FanInSum()), "end in a Dense"),
    (stax.serial(stax.Dense(4), stax.FanOut(2)), "several branches"),
])
def test_layers_without_kernel(net, match):
  with pytest.raises(ValueError, match=match):
    net.kernel_fn(X)


def test_combinator_arguments():
  with pytest.raises(TypeError, match="argument 1"):
    stax.serial(stax.Dense(3), "relu")
  with pytest.raises(ValueError, match="num"):
    stax.FanOut(0)
  with pytest.raises(TypeError, match="activation"):
    stax.mlp([4], "relu")
  with pytest.raises(TypeError, match="fn must be callable"):
    stax.ElementwiseNumerical(3)


def test_apply_fn_inputs():
  _, params = NET.init_fn(jax.random.PRNGKey(0), (3, 4))
  with pytest.raises(ValueError, match="inputs have 5 features"):
    NET.apply_fn(params, np.ones((3, 5)))
  with pytest.raises(TypeError, match="inputs"):
    NET.apply_fn(params, "x")
  with pytest.raises(ValueError, match="input_shape"):
    NET.init_fn(jax.random.PRNGKey(0), (3, 0))


def test_empirical_and_monte_carlo_arguments():
  with pytest.raises(ValueError, match="implementation"):
    empirical_ntk_fn(NET.apply_fn, implementation="fast")
  with pytest.raises(ValueError, match="implementation"):  # neural-tangents' AUTO
    empirical_ntk_fn(NET.apply_fn, implementation=0)
  with pytest.raises(ValueError, match="structured"):
    empirical_ntk_fn(lambda p, x: x, implementation="structured")
  _, params = NET.init_fn(jax.random.PRNGKey(0), (3, 4))
  with pytest.raises(ValueError, match="trace_axes"):
    empirical_ntk_fn(NET.apply_fn, trace_axes=(0,))(X, None, params)
  with pytest.raises(ValueError, match="n_samples"):
    monte_carlo_kernel_fn(NET.init_fn, NET.apply_fn, jax.random.PRNGKey(0), 10, 3)
  with pytest.raises(TypeError, match="net"):
    optim.learning_rates("net", params)
