"""GlobalSelfAttention under muP: logits q.k / d with independent queries and keys
(Yang et al. 2022, "Tensor Programs V", Sec. 4) vanish at infinite width, so the
kernel is that of uniform attention (SOFTMAX) or of no attention at all (IDENTITY,
RELU, ABS); checked against finite-width Monte Carlo with fitted rates."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import flax_module, stax
from kernels import parameterization as pz
from kernels.empirical import empirical_ntk_fn

STDS = dict(W_key_std=1.3, W_query_std=1.2, W_value_std=1.1, W_out_std=1.2, b_std=0.1)


def _x(shape=(3, 4, 3), seed=0):
  return jax.random.normal(jax.random.PRNGKey(seed), shape)


def test_softmax_kernel_is_uniform_averaging_over_positions():
  x = _x((3, 2, 3, 2))
  layer = stax.GlobalSelfAttention(16, 8, 8, 2, parameterization="mup", **STDS)
  k = layer.kernel_fn(x, None, ("nngp", "ntk"))
  xs = np.asarray(x, np.float64).reshape(3, 6, 2)
  mean_cov = np.einsum("aic,bjc->ab", xs, xs) / (2 * 36)  # mean over every pair of positions
  ov2, b2 = (1.1 * 1.2) ** 2, 0.1 ** 2
  nngp = ov2 * mean_cov + b2
  # Values and output projection each add the NNGP less the bias; the input NTK is zero.
  ntk = b2 + 2 * (nngp - b2)
  np.testing.assert_allclose(k.nngp, np.broadcast_to(nngp[:, :, None, None, None, None],
                                                     k.nngp.shape), rtol=1e-5)
  np.testing.assert_allclose(k.ntk, np.broadcast_to(ntk[:, :, None, None, None, None],
                                                    k.ntk.shape), rtol=1e-5)


@pytest.mark.parametrize("mech", ["IDENTITY", "RELU", "ABS"])
def test_other_mechanisms_vanish_at_infinite_width(mech):
  x = _x()
  layer = stax.GlobalSelfAttention(16, 8, 8, 2, attention_mechanism=mech,
                                   parameterization="mup", **STDS)
  k = layer.kernel_fn(x, None, ("nngp", "ntk"))
  np.testing.assert_allclose(k.nngp, 0.1 ** 2 * np.ones(k.nngp.shape), rtol=1e-6)
  np.testing.assert_allclose(k.ntk, 0.1 ** 2 * np.ones(k.ntk.shape), rtol=1e-6)


def test_mup_logits_read_the_parameterization_scale():
  """Queries are their own weights, and logits are scaled by attention_scale (1/d), so
  custom exponents change the finite layer; exponents below 1/2 are refused."""
  layer = stax.GlobalSelfAttention(4, 8, 4, 1, parameterization="mup", **STDS)
  _, params = layer.init_fn(jax.random.PRNGKey(0), (2, 3, 5))
  assert params[0] is not None and params[0].shape == params[1].shape  # W_query, W_key
  assert layer._logit_scale(5) == pytest.approx(1.2 * 1.3 / 5 * pz.attention_scale(pz.mup(), 8))
  tied = stax.GlobalSelfAttention(4, 8, 4, 1, **STDS)
  assert tied.init_fn(jax.random.PRNGKey(0), (2, 3, 5))[1][0] is None
  p34 = dataclasses.replace(pz.mup(), attention_exponent=0.75)
  assert stax.GlobalSelfAttention(4, 8, 4, 1, parameterization=p34)._logit_scale(5) == \
      pytest.approx(8 ** -0.75 / 5)
  with pytest.raises(ValueError, match="parameterization"):
    stax.GlobalSelfAttention(4, 8, 4, 1, parameterization=dataclasses.replace(
        pz.mup(), attention_exponent=0.25))
  # linear_scaling=False is neural-tangents' rule only under 1/sqrt(d) parameterizations.
  stax.GlobalSelfAttention(4, 8, 4, 1, linear_scaling=False, parameterization="mup")
  with pytest.raises(ValueError, match="linear_scaling"):
    stax.GlobalSelfAttention(4, 8, 4, 1, linear_scaling=False)


def test_mup_attention_views_agree():
  net = stax.GlobalSelfAttention(3, 4, 4, 2, parameterization="mup", **STDS)
  x = _x((2, 3, 2))
  _, params = net.init_fn(jax.random.PRNGKey(1), x.shape)
  module = flax_module.to_flax(net)
  variables = module.init(jax.random.PRNGKey(2), x)
  back = flax_module.from_flax_params(net, variables, x.shape)
  np.testing.assert_allclose(module.apply(variables, x), net.apply_fn(back, x), rtol=1e-6,
                             atol=1e-6)
  a = empirical_ntk_fn(net.apply_fn, implementation="jacobian")(x, None, params)
  b = empirical_ntk_fn(net.apply_fn, implementation="ntvp")(x, None, params)
  np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)


def _mc_nngp(layer, x, n_samples):
  def one(key):
    _, p = layer.init_fn(key, x.shape)
    y = layer.apply_fn(p, x)
    return jnp.einsum("aic,bjc->abij", y, y) / y.shape[-1]
  keys = jax.random.split(jax.random.PRNGKey(1), n_samples)
  return jax.lax.map(one, keys, batch_size=30).mean(0)


@pytest.mark.slow
def test_finite_width_monte_carlo_converges_to_the_kernel():
  """Finite muP attention (128 output channels, 60 draws) against the kernel at key widths
  d = 16 and 1024: the distance falls with d (logits O(d^-1/2), their effect O(1/d)); the
  kernel of neural-tangents' tied 1/d attention (softmax of the covariance) stays far."""
  x = _x()
  errs = {}
  for mech in ("SOFTMAX", "RELU"):
    for d in (16, 1024):
      layer = stax.GlobalSelfAttention(128, d, 64, 1, attention_mechanism=mech,
                                       parameterization="mup", **STDS)
      k = layer.kernel_fn(x, None, "nngp")
      errs[mech, d] = float(jnp.max(jnp.abs(_mc_nngp(layer, x, 60) - k)))
  scale = float(jnp.max(stax.GlobalSelfAttention(256, 32, 64, 1, parameterization="mup",
                                                 **STDS).kernel_fn(x, None, "nngp")))
  tied = stax.GlobalSelfAttention(256, 32, 64, 1, **STDS).kernel_fn(x, None, "nngp")
  ours = stax.GlobalSelfAttention(256, 32, 64, 1, parameterization="mup",
                                  **STDS).kernel_fn(x, None, "nngp")
  assert errs["SOFTMAX", 1024] < 0.1 * scale
  assert errs["SOFTMAX", 1024] < errs["SOFTMAX", 16] / 3
  assert float(jnp.max(jnp.abs(tied - ours))) > 0.5 * scale
  # No attention left: the finite layer's excess falls as 1/d (64x in d, >= 16x here).
  assert errs["RELU", 1024] < errs["RELU", 16] / 16
