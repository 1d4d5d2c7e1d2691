"""Width multipliers ``s = (s_in, s_out)`` of Dense and the convolutions (Conv,
ConvTranspose, ConvLocal) under the standard parameterization.

neural-tangents' semantics (Sohl-Dickstein et al. 2020, Sec. 3): a layer has
``s_out * out_dim`` outputs (channels) and its NTK counts ``fan_in / s_in`` inputs, so a network
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
IMAGES = np.random.default_rng(4).normal(size=(3, 5, 4, 2))


def _mlp(width, s1=1, s2=1):
  std = dict(parameterization="standard")
  return stax.serial(stax.Dense(width, 1.3, 0.1, s=(1, s1), **std), stax.Relu(),
                     stax.Dense(width, 1.2, 0.2, s=(s1, s2), **std), stax.Erf(),
                     stax.Dense(1, 1.1, 0.1, s=(s2, 1), **std))


def _cnn(width, s1=1, s2=1, s3=1):
  """Conv -> ConvTranspose -> ConvLocal -> global pooling -> Dense, chained multipliers."""
  std = dict(parameterization="standard", padding="SAME")
  return stax.serial(stax.Conv(width, (2, 2), W_std=1.3, b_std=0.1, s=(1, s1), **std),
                     stax.Relu(),
                     stax.ConvTranspose(width, (2, 2), W_std=1.2, b_std=0.2, s=(s1, s2), **std),
                     stax.Erf(),
                     stax.ConvLocal(width, (2, 2), W_std=1.1, b_std=0.1, s=(s2, s3), **std),
                     stax.Relu(), stax.GlobalAvgPool(),
                     stax.Dense(1, 0.9, 0.1, parameterization="standard", s=(s3, 1)))


NETWORKS = {"mlp": (lambda w, *s: _mlp(w, *s[:2]), X),
            "cnn": (_cnn, IMAGES)}


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_chained_multipliers_give_the_kernels_of_the_narrow_network(kind):
  make, x = NETWORKS[kind]
  with jax.enable_x64(True):
    narrow = make(16).kernel_fn(x, None, ("nngp", "ntk"))
    scaled = make(16, 2, 3, 2).kernel_fn(x, None, ("nngp", "ntk"))
    wide = make(48).kernel_fn(x, None, ("nngp", "ntk"))
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


def test_finite_convolutions_have_s_out_times_more_channels():
  init_fn, apply_fn, _ = _cnn(4, 2, 3, 2)
  shape, params = init_fn(jax.random.PRNGKey(0), IMAGES.shape)
  assert shape == (3, 1)
  w = [p[0].shape for p in params if p != ()]
  # Conv (HWIO), ConvTranspose (HWIO), ConvLocal (H W, I = 4 * inputs, O), Dense.
  assert w == [(2, 2, 2, 8), (2, 2, 8, 12), (5, 4, 48, 8), (8, 1)]
  assert apply_fn(params, jnp.asarray(IMAGES, jnp.float32)).shape == (3, 1)


def test_empirical_ntk_of_the_wide_finite_cnn_approaches_the_kernel():
  """Conv layers of 16 x 32 = 512 actual channels: the mean empirical NTK over 12
  networks is within a few percent of kernel_fn's, which counts 32 channels (the plain
  width-512 kernel is many times larger). At 4 x 32 channels the error over 32 networks
  is 5%, as for a plain 128-channel network against its own kernel."""
  def cnn(width, m):
    std = dict(parameterization="standard", padding="SAME")
    return stax.serial(
        stax.Conv(width, (2, 2), W_std=1.3, b_std=0.1, s=(1, m), **std), stax.Relu(),
        stax.Conv(width, (2, 2), W_std=1.2, b_std=0.1, s=(m, m), **std), stax.Relu(),
        stax.GlobalAvgPool(), stax.Dense(1, 0.9, 0.1, parameterization="standard", s=(m, 1)))
  net = cnn(32, 16)
  ntk_fn = jax.jit(empirical_ntk_fn(net.apply_fn, implementation="structured"))
  x = jnp.asarray(IMAGES, jnp.float32)
  ntks = [ntk_fn(x, None, net.init_fn(jax.random.PRNGKey(seed), IMAGES.shape)[1])
          for seed in range(12)]
  theory = np.asarray(net.kernel_fn(IMAGES, None, "ntk"))
  rel = np.max(np.abs(np.mean(ntks, axis=0) - theory)) / np.max(np.abs(theory))
  plain = np.asarray(cnn(512, 1).kernel_fn(IMAGES, None, "ntk"))
  print(f"CNN: max relative error of the mean empirical NTK {rel:.3f}; "
        f"plain 512-channel kernel / kernel: {np.mean(plain / theory):.1f}")
  assert rel < 0.06
  assert np.mean(plain / theory) > 3


def test_bad_multipliers_are_value_errors():
  for s in [(0, 1), (1,), (1.5, 1), (True, 1), "ab"]:
    with pytest.raises(ValueError, match="pair of positive integers"):
      stax.Dense(3, parameterization="standard", s=s)
    with pytest.raises(ValueError, match="Conv: s must be a pair of positive integers"):
      stax.Conv(3, (2, 2), parameterization="standard", s=s)
  for p in ("ntk", "mup"):  # neural-tangents ignores s under "ntk": refused here
    with pytest.raises(ValueError, match="only to the standard parameterization"):
      stax.Dense(3, parameterization=p, s=(2, 2))
    with pytest.raises(ValueError, match="ConvLocal: .* only to the standard"):
      stax.ConvLocal(3, (2, 2), parameterization=p, s=(2, 2))
