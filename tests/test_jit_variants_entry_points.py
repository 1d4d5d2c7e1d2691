"""The jitted entry points of every package give the same values with jit and with jit made
a no-op (chex.fake_jit), so a shape or dtype bug hidden by tracing shows up.

(`kernel_fn`/`apply_fn` are checked in tests/kernels/test_jit_variants.py, the DMFT core's
pieces in tests/dmft/test_solve.py.)
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import empirical
from kernels import predict
from kernels import stax
from scaling import lbfgs


def both(fn):
  """fn() under jit and under chex.fake_jit."""
  jitted = fn()
  with chex.fake_jit():
    eager = fn()
  return jitted, eager


def _close(a, b, rtol=1e-5, atol=1e-6):
  jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=rtol, atol=atol),
                         a, b)


def test_predict_functions():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((6, 3)).astype(np.float32)
  k = x @ x.T / 3 + 0.5 * np.eye(6, dtype=np.float32)
  y = rng.standard_normal((6, 2)).astype(np.float32)
  kt = rng.standard_normal((3, 6)).astype(np.float32) * 0.3

  def run():
    fn = predict.gradient_descent_mse(k, y, learning_rate=0.5)
    out = [fn(np.array([0.0, 1.0, 10.0]), 0.0, 0.0, kt), fn(None, 0.0, 0.0, kt),
           fn(steps=np.array([1, 5]), fx_train_0=0.0)]
    gp = predict.gp_inference(k, y, diag_reg=1e-3)
    out.append(gp("nngp", kt, np.eye(3, dtype=np.float32)))
    return out

  jitted, eager = both(run)
  chex.assert_shape(jitted[0], [(3, 6, 2), (3, 3, 2)])  # (train, test) at three times
  _close(jitted, eager)


def test_empirical_ntk():
  net = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(2))
  x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
  _, params = net.init_fn(jax.random.PRNGKey(0), x.shape)

  def run():
    return [empirical.empirical_ntk_fn(net.apply_fn, implementation=impl)(x, None, params)
            for impl in (1, 3)]  # neural-tangents: JACOBIAN_CONTRACTION, STRUCTURED

  jitted, eager = both(run)
  chex.assert_shape(jitted, [(4, 4), (4, 4)])
  _close(jitted, eager)
  _close(jitted[0], jitted[1])  # two exact orders of one contraction


def _quadratic(p, target):
  return jnp.sum((p - target) ** 2 * jnp.arange(1.0, 4.0))


def test_batched_lbfgs():
  x0s = jnp.asarray(np.random.default_rng(2).standard_normal((3, 3)), jnp.float32)
  target = jnp.asarray([1.0, -2.0, 0.5])
  jitted, eager = both(lambda: lbfgs.batched_lbfgs(_quadratic, x0s, (target,), max_iter=50))
  _close(jitted.x, eager.x, atol=1e-5)
  np.testing.assert_allclose(jitted.x, np.broadcast_to(target, (3, 3)), atol=1e-4)


def test_dmft_two_layer_solve():
  import dmft  # pylint: disable=g-import-not-at-top
  from dmft import data  # pylint: disable=g-import-not-at-top
  x, y, _, _ = data.synthetic(n_train=4, n_test=1, dim=3, seed=0)
  net = stax.serial(stax.Dense(64, parameterization="mup"), stax.Erf(),
                    stax.Dense(1, parameterization="mup"))
  jitted, eager = both(lambda: dmft.solve(net, x, y, lr=0.5, steps=4, n_samples=64, seed=0))
  _close(jitted.loss, eager.loss)
  _close(jitted.ntk, eager.ntk)


def test_lm_train_step():
  from lm import train  # pylint: disable=g-import-not-at-top
  cfg = train.default_config()
  cfg.model.update(width=16, depth=1, n_heads=2, seq_len=8)
  cfg.data.update(vocab_size=16, order=1)
  mc = train.model_config(cfg)
  tokens = jnp.asarray(np.random.default_rng(3).integers(0, 16, (4, 9)), jnp.int32)

  def run():
    state = train.init_state(cfg, mc, seed=0)
    grad_fn = jax.jit(jax.value_and_grad(train.loss_fn, argnums=1), static_argnums=(0, 4))
    loss, grads = grad_fn(mc, state.params, state.scales, tokens, 0)
    return loss, grads

  # (Parameters after an Adam step are not compared: its first update g / (|g| + eps)
  # amplifies the rounding of gradients that nearly cancel.)
  (loss, grads), (loss_eager, grads_eager) = both(run)
  assert np.isfinite(loss)
  np.testing.assert_allclose(loss, loss_eager, rtol=1e-5)
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(grads))
  _close(grads, grads_eager, rtol=1e-3, atol=1e-4 * scale)
