"""Dense's width multipliers ``s = (s_in, s_out)`` under the standard parameterization.

neural-tangents' semantics (Sohl-Dickstein et al. 2020, Sec. 3): a layer has
``s_out * out_dim`` outputs and its NTK counts ``fan_in / s_in`` inputs, so a network
whose multipliers chain (each ``s_in`` the previous ``s_out``) has the kernels of the
network without them, while its finite layers are wider. Values against neural-tangents:
tests/kernels/test_channel_axes.py (fixture cases ``standard_*width_multipliers*``).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import stax
from kernels.empirical import empirical_ntk_fn

X = np.random.default_rng(3).normal(size=(5, 6))


def _mlp(width, s1=1, s2=1):
  std = dict(parameterization="standard")
  return stax.serial(stax.Dense(width, 1.3, 0.1, s=(1, s1), **std), stax.Relu(),
                     stax.Dense(width, 1.2, 0.2, s=(s1, s2), **std), stax.Erf(),
                     stax.Dense(1, 1.1, 0.1, s=(s2, 1), **std))


def test_chained_multipliers_give_the_kernels_of_the_narrow_network():
  with jax.enable_x64(True):
    narrow = _mlp(16).kernel_fn(X, None, ("nngp", "ntk"))
    scaled = _mlp(16, 2, 3).kernel_fn(X, None, ("nngp", "ntk"))
    wide = _mlp(48).kernel_fn(X, None, ("nngp", "ntk"))
    narrow, scaled, wide = (jax.tree.map(np.asarray, k) for k in (narrow, scaled, wide))
  np.testing.assert_allclose(scaled.nngp, narrow.nngp, rtol=1e-12)
  np.testing.assert_allclose(scaled.ntk, narrow.ntk, rtol=1e-12)
  # The standard NTK grows with the width: the multipliers are not a no-op.
  assert np.max(np.abs(wide.ntk / narrow.ntk - 1)) > 0.5


def test_finite_layers_are_s_out_times_wider():
  init_fn, apply_fn, _ = _mlp(16, 2, 3)
  shape, params = init_fn(jax.random.PRNGKey(0), X.shape)
  assert shape == (5, 1)
  assert [p[0].shape for p in params if p != ()] == [(6, 32), (32, 48), (48, 1)]
  assert apply_fn(params, jnp.asarray(X, jnp.float32)).shape == (5, 1)


@pytest.mark.parametrize("implementation", ["structured", "ntvp"])
def test_empirical_ntk_of_the_wide_finite_network_approaches_the_kernel(implementation):
  """Actual widths 512 (s_out = 4 times out_dim = 128): the mean empirical NTK over 8
  networks is within a few percent of kernel_fn's, which counts 128 hidden units; the
  same finite widths without multipliers have an NTK about four times larger."""
  net = _mlp(128, 4, 4)
  ntk_fn = jax.jit(empirical_ntk_fn(net.apply_fn, implementation=implementation))
  x = jnp.asarray(X, jnp.float32)
  ntks = [ntk_fn(x, None, net.init_fn(jax.random.PRNGKey(seed), X.shape)[1])
          for seed in range(8)]
  mean = np.mean(ntks, axis=0)
  theory = np.asarray(net.kernel_fn(X, None, "ntk"))
  rel = np.max(np.abs(mean - theory)) / np.max(np.abs(theory))
  plain = np.asarray(_mlp(512).kernel_fn(X, None, "ntk"))
  print(f"{implementation}: max relative error of the mean empirical NTK {rel:.3f}; "
        f"plain width-512 kernel / kernel: {np.mean(plain / theory):.2f}")
  assert rel < 0.05
  assert np.mean(plain / theory) > 3


def test_bad_multipliers_are_value_errors():
  for s in [(0, 1), (1,), (1.5, 1), (True, 1), "ab"]:
    with pytest.raises(ValueError, match="pair of positive integers"):
      stax.Dense(3, parameterization="standard", s=s)
  for p in ("ntk", "mup"):  # neural-tangents ignores s under "ntk": refused here
    with pytest.raises(ValueError, match="only to the standard parameterization"):
      stax.Dense(3, parameterization=p, s=(2, 2))
