"""Symmetry, positive semi-definiteness, get semantics, jit and composition identities."""
import dataclasses
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import Kernel, stax
from kernels import parameterization as pz

NETS = {
    "relu": stax.serial(stax.Dense(64, 1.4, 0.1), stax.Relu(), stax.Dense(64, 1.4, 0.1),
                        stax.Relu(), stax.Dense(1, 1.0, 0.1)),
    "erf_standard": stax.serial(stax.Dense(32, 1.2, 0.2, parameterization="standard"), stax.Erf(),
                                stax.Dense(3, 1.0, 0.1, parameterization="standard")),
    "gelu_mup": stax.mlp([128, 128], stax.Gelu(), 2, parameterization="mup", W_std=1.4),
    # ntk widths with 1/sqrt(L) branches, L = 2 blocks counted by the network.
    "residual": stax.serial(stax.Dense(32, 1.0, 0.1),
                            stax.Residual(stax.serial(stax.Relu(), stax.Dense(32, 1.4)),
                                          dataclasses.replace(pz.ntk(), branch_exponent=0.5)),
                            stax.Residual(stax.serial(stax.Relu(), stax.Dense(32, 1.4)),
                                          dataclasses.replace(pz.ntk(), branch_exponent=0.5)),
                            stax.Relu(), stax.Dense(1)),
}


@pytest.fixture
def data():
  rng = np.random.RandomState(0)
  return rng.randn(12, 6).astype(np.float32), rng.randn(7, 6).astype(np.float32)


@pytest.mark.parametrize("name", sorted(NETS))
def test_symmetric_and_psd(name, data):
  x1, x2 = data
  kfn = NETS[name].kernel_fn
  k = kfn(x1, None, ("nngp", "ntk"))
  for m in k:
    np.testing.assert_allclose(m, m.T, rtol=1e-6, atol=1e-6)
    eig = np.linalg.eigvalsh(np.asarray(m, np.float64))
    assert eig.min() >= -1e-5 * eig.max(), (name, eig.min(), eig.max())
  k12 = kfn(x1, x2, ("nngp", "ntk"))
  k21 = kfn(x2, x1, ("nngp", "ntk"))
  np.testing.assert_allclose(k12.nngp, k21.nngp.T, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(k12.ntk, k21.ntk.T, rtol=1e-5, atol=1e-6)
  # Off-diagonal block of the joint kernel equals the cross kernel.
  joint = kfn(np.concatenate([x1, x2]), None, "ntk")
  np.testing.assert_allclose(joint[:12, 12:], k12.ntk, rtol=2e-4, atol=1e-5)


def test_get_semantics(data):
  x1, x2 = data
  kfn = NETS["relu"].kernel_fn
  k = kfn(x1, x2)
  assert isinstance(k, Kernel) and k.nngp.shape == (12, 7) and k.ntk.shape == (12, 7)
  ntk = kfn(x1, x2, "ntk")
  assert isinstance(ntk, jax.Array) and ntk.shape == (12, 7)
  both = kfn(x1, x2, ("ntk", "nngp"))
  assert isinstance(both, tuple) and both._fields == ("ntk", "nngp")
  np.testing.assert_allclose(both.ntk, k.ntk)
  nngp_only = kfn(x1, x2, ("nngp",))
  np.testing.assert_allclose(nngp_only.nngp, k.nngp)


def test_kernel_fn_under_jit_and_vmap(data):
  x1, _ = data
  kfn = NETS["relu"].kernel_fn
  direct = kfn(x1, None, "nngp")
  jitted = jax.jit(lambda x: kfn(x, None, "nngp"))(x1)
  np.testing.assert_allclose(jitted, direct, rtol=1e-6)
  # Gradient of a kernel entry with respect to the inputs is finite.
  g = jax.grad(lambda x: kfn(x, None, "ntk")[0, 1])(x1)
  assert np.all(np.isfinite(g))


def test_mup_ntk_equals_ntk_parameterization_and_is_gamma0_free(data):
  """Under mup the learning-rate-weighted NTK is the NTK-parameterization NTK (Yang & Hu 2021, Sec. 3)."""
  x1, x2 = data
  ref = stax.mlp([256, 256], stax.Relu(), 1, parameterization="ntk", W_std=1.4).kernel_fn
  for g in (1.0, 0.1, 7.0):
    kfn = stax.mlp([256, 256], stax.Relu(), 1, parameterization=pz.mup(g), W_std=1.4).kernel_fn
    k = kfn(x1, x2)
    np.testing.assert_allclose(k.ntk, ref(x1, x2, "ntk"), rtol=2e-5)
    # The output variance vanishes like 1/(gamma0^2 N): mean-field readout.
    np.testing.assert_allclose(k.nngp * 256 * g ** 2, ref(x1, x2, "nngp"), rtol=2e-5)


def test_standard_ntk_depends_on_widths_ntk_does_not(data):
  x1, _ = data
  def ntk(p, w):
    return stax.serial(stax.Dense(w, 1.3, 0.1, parameterization=p), stax.Relu(), stax.Dense(1, 1.0, 0.1, parameterization=p)
                       ).kernel_fn(x1, None, "ntk")
  np.testing.assert_allclose(ntk("ntk", 16), ntk("ntk", 4096), rtol=1e-6)
  a, b = ntk("standard", 16), ntk("standard", 4096)
  # The readout's weight gradient contributes width * nngp: it grows with the width.
  assert float(jnp.mean(b)) > 50 * float(jnp.mean(a))


def test_fanout_parallel_sum_equals_residual():
  rng = np.random.RandomState(3)
  x = rng.randn(5, 4)
  block = stax.serial(stax.Relu(), stax.Dense(16, 1.3, 0.1))
  head = stax.Dense(16, 1.0, 0.1)
  a = stax.serial(head, stax.FanOut(2), stax.parallel(stax.Identity(), block), stax.FanInSum(),
                  stax.Relu(), stax.Dense(1))
  b = stax.serial(head, stax.Residual(block, "ntk"), stax.Relu(), stax.Dense(1))
  ka, kb = a.kernel_fn(x), b.kernel_fn(x)
  np.testing.assert_allclose(ka.nngp, kb.nngp, rtol=1e-6)
  np.testing.assert_allclose(ka.ntk, kb.ntk, rtol=1e-6)


def test_layers_are_data():
  a = stax.serial(stax.Dense(8, 1.5), stax.Relu(), stax.Dense(1))
  b = stax.serial(stax.Dense(8, 1.5), stax.Relu(), stax.Dense(1))
  assert a == b and hash(a) == hash(b)
  init_fn, apply_fn, kernel_fn = a
  assert callable(init_fn) and callable(apply_fn) and callable(kernel_fn)
  roles = a.context().roles
  assert roles[(0,)].is_input and not roles[(0,)].is_readout
  assert roles[(2,)].is_readout and not roles[(2,)].is_input
