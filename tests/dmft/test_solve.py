"""dmft.solve reads the kernels.stax description: one network, its DMFT, its kernel, its ensembles."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dmft
from dmft import core
from dmft import data
from dmft import network
from kernels import parameterization as pz
from kernels import slopes
from kernels import stax

P, STEPS, LR = 8, 20, 0.5


@pytest.fixture(scope="module")
def task():
  return data.synthetic(n_train=P, n_test=4, dim=5, seed=3)


def _mlp(act, depth, gamma0=1.0, width=64, p=None):
  p = p or pz.mup(gamma0)
  layers = [stax.Dense(width, parameterization=p), act]
  for _ in range(depth - 1):
    layers += [stax.Dense(width, parameterization=p), act]
  return stax.serial(*layers, stax.Dense(1, parameterization=p))


def _lazy_gd(ntk_train, ntk_test_train, y, lr, steps):
  """f(t+1) = f(t) + lr/P NTK (y - f(t)) (Jacot et al. 2018, eq. 8 in discrete time)."""
  f, ft, out, out_t = np.zeros_like(y), np.zeros(ntk_test_train.shape[0]), [], []
  for _ in range(steps + 1):
    out.append(f.copy())
    out_t.append(ft.copy())
    err = y - f
    f = f + lr / len(y) * ntk_train @ err
    ft = ft + lr / len(y) * ntk_test_train @ err
  return np.array(out), np.array(out_t)


def test_read_takes_everything_from_the_description():
  p = pz.depth_mup(3, gamma0=0.5)
  act = stax.Erf()
  net = stax.serial(stax.Dense(32, W_std=1.5, parameterization=p),
                    *[stax.Residual(stax.serial(act, stax.Dense(32, W_std=0.8,
                                                                parameterization=p)),
                                    parameterization=p) for _ in range(3)],
                    act, stax.Dense(1, W_std=2.0, parameterization=p))
  arch = network.read(net)
  assert (arch.kind, arch.depth, arch.n_blocks, arch.width) == ("residual", 4, 3, 32)
  assert arch.activation == act and arch.gamma0 == 0.5
  assert (arch.input_std, arch.W_std, arch.readout_std) == (1.5, 0.8, 2.0)
  assert arch.branch_multiplier == pytest.approx(3 ** -0.5)
  wide = network.with_width(net, 256)
  assert network.read(wide) == dataclass_replace(arch, width=256)
  stated = pz.depth_mup(9)
  blocks = [stax.Residual(stax.serial(act, stax.Dense(8, parameterization=stated)),
                          parameterization=stated) for _ in range(4)]
  with pytest.raises(ValueError, match="depth=9 but the network has 4"):
    network.read(stax.serial(stax.Dense(8, parameterization=stated), *blocks, act,
                             stax.Dense(1, parameterization=stated)))
  lin = network.read(_mlp(stax.ABRelu(1.0, 1.0), 3))
  assert lin.linear and lin.kind == "deep" and lin.depth == 3


@pytest.mark.parametrize("kind", ["deep", "residual", "linear", "two_layer"])
def test_kernel_network_has_the_ntk_of_every_gamma0_and_width(kind):
  """The initial-kernel programs compile for `network.kernel_network`: it must have the
  NTK of the network at any gamma0 and width, and be the same static argument for all."""
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 5), jnp.float64)
    canon = set()
    for gamma0, width in ((0.1, 16), (1.0, 64), (3.0, 512)):
      if kind == "residual":
        p = pz.depth_mup(gamma0=gamma0, branch_exponent=0.7)
        net = stax.serial(
            stax.Dense(width, W_std=1.3, parameterization=p),
            *[stax.Residual(stax.serial(stax.Erf(), stax.Dense(width, W_std=0.8,
                                                              parameterization=p)),
                            parameterization=p) for _ in range(3)],
            stax.Erf(), stax.Dense(1, W_std=1.7, parameterization=p))
      else:
        act = {"deep": stax.Gelu(), "linear": stax.ABRelu(1.0, 1.0),
               "two_layer": stax.Relu()}[kind]
        net = _mlp(act, 1 if kind == "two_layer" else 3, gamma0=gamma0, width=width)
      arch = network.read(net)
      k_net, k_arch = network.kernel_network(arch)
      want = net.kernel_fn(x, None, "ntk")
      got = k_net.kernel_fn(x, None, "ntk")
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
      assert (k_arch.kind, k_arch.depth, k_arch.linear) == (arch.kind, arch.depth, arch.linear)
      assert k_arch.branch_multiplier == pytest.approx(arch.branch_multiplier, rel=1e-15)
      canon.add((k_net, k_arch))
    assert len(canon) == 1  # one static argument, one compiled program


def dataclass_replace(obj, **kw):
  import dataclasses  # pylint: disable=g-import-not-at-top
  return dataclasses.replace(obj, **kw)


@pytest.mark.parametrize("net,word", [
    (_mlp(stax.Relu(), 2, p=pz.ntk()), "no feature-learning limit"),
    (_mlp(stax.Relu(), 2, p=pz.standard()), "no feature-learning limit"),
    (stax.serial(stax.Dense(8, parameterization="mup"), stax.Relu(),
                 stax.Dense(8, parameterization="mup"), stax.Erf(),
                 stax.Dense(1, parameterization="mup")), "activations differ"),
    (stax.serial(stax.Dense(8, b_std=0.1, parameterization="mup"), stax.Relu(),
                 stax.Dense(1, parameterization="mup")), "b_std"),
    (stax.serial(stax.Dense(8, parameterization="mup"), stax.Relu(),
                 stax.Dense(2, parameterization="mup")), "out_dim=2"),
    (stax.serial(stax.Dense(8, parameterization="mup"), stax.FanOut(2),
                 stax.parallel(stax.Relu(), stax.Erf()), stax.FanInSum(),
                 stax.Dense(1, parameterization="mup")), "contains"),
    (stax.serial(stax.Dense(8, parameterization="mup"), stax.Relu(), stax.Relu(),
                 stax.Dense(1, parameterization="mup")), "follow each other"),
])
def test_networks_outside_the_dmft_are_refused_with_what_is_supported(task, net, word):
  x, y, _, _ = task
  with pytest.raises(ValueError, match=word) as err:
    dmft.solve(net, x, y, steps=2)
  print(err.value)


@pytest.mark.slow
def test_an_iteration_that_blows_up_is_an_error_not_a_result():
  """(A finite width-512 network trains on this task at lr = 1: loss 0.5 -> 5e-4.)"""
  x, y, _, _ = data.synthetic(n_train=10, n_test=5, dim=5, seed=1)
  net = network.build(512, depth=2, activation="relu", gamma0=1.0)
  with pytest.raises(dmft.NonConvergenceError, match="diverged after"):
    dmft.solve(net, x, y, lr=1.0, steps=20, n_samples=512, raise_on_nonconvergence=False)


def test_unknown_option_is_named(task):
  x, y, _, _ = task
  with pytest.raises(ValueError, match="n_response"):
    dmft.solve(_mlp(stax.Relu(), 1), x, y, steps=2, n_response=8)


@pytest.mark.parametrize("act,depth", [
    (stax.ElementwiseNumerical(lambda z: jnp.sin(z) + 0.3 * z, deg=40), 1),
    (stax.Gelu(), 2),
])
def test_lazy_limit_of_any_activation_is_the_networks_kernel_gradient_descent(task, act, depth):
  """gamma0 -> 0: the DMFT of net is gradient descent with net.kernel_fn's NTK, to
  the Monte Carlo error the solver reports."""
  x, y, xt, _ = task
  net = _mlp(act, depth, gamma0=1e-3)
  steps = 10
  res = dmft.solve(net, x, y, lr=LR, steps=steps, X_test=xt, n_samples=2048)
  ntk = np.asarray(net.kernel_fn(x, None, "ntk"))
  ntk_tx = np.asarray(net.kernel_fn(xt, x, "ntk"))
  f, ft = _lazy_gd(ntk, ntk_tx, np.asarray(y), LR, steps)
  np.testing.assert_allclose(res.ntk[0], ntk, rtol=2e-4, atol=2e-5)
  loss = 0.5 * np.mean((f - np.asarray(y)) ** 2, axis=1)
  bound = 4 * res.mc_error + 1e-4
  print(f"{act.name}: max |loss - lazy loss| {np.max(np.abs(res.loss - loss)):.2e}, "
        f"max 4 se + 1e-4 {np.max(bound):.2e}")
  assert np.all(np.abs(res.loss - loss) <= bound)
  if depth == 1:  # exact control variate on every prediction
    np.testing.assert_allclose(res.f_test, ft, atol=2e-3)
  assert res.info["architecture"]["depth"] == depth


def test_residual_multiplier_is_the_one_the_network_applies(task):
  """The DMFT reads Residual.multiplier: a depth_mup(2) net at gamma0 -> 0 follows its kernel."""
  x, y, _, _ = task
  net = network.build(16, depth=3, activation="relu", gamma0=1e-3, residual=True)
  res = dmft.solve(net, x, y, lr=LR, steps=10, n_samples=2048)
  assert res.info["branch_multiplier"] == pytest.approx(2 ** -0.5)
  ntk = np.asarray(net.kernel_fn(x, None, "ntk"))
  np.testing.assert_allclose(res.ntk[0], ntk, rtol=2e-4, atol=2e-5)
  f, _ = _lazy_gd(ntk, ntk[:1], np.asarray(y), LR, 10)
  loss = 0.5 * np.mean((f - np.asarray(y)) ** 2, axis=1)
  assert np.all(np.abs(res.loss - loss) <= 4 * res.mc_error + 1e-4)


def test_ensemble_of_the_same_net(task):
  """train_ensemble(net) trains the described network: at init its empirical NTK
  averages to kernel_fn's, and its width is the one substituted."""
  x, y, _, _ = task
  net = _mlp(stax.Erf(), 2, width=7)
  ens = dmft.train_ensemble(net, x, y, width=1024, n_seeds=8, steps=2, lr=LR)
  assert ens.width == 1024
  ref = np.asarray(net.kernel_fn(x, None, "ntk"))
  rel = np.linalg.norm(ens.ntk_initial.mean(0) - ref) / np.linalg.norm(ref)
  print(f"relative distance of the width-1024 ensemble NTK to kernel_fn: {rel:.3g}")
  assert rel < 0.05
  with pytest.raises(ValueError, match="read from net"):
    dmft.train_ensemble(net, x, y, depth=3)


@pytest.mark.slow
def test_three_hidden_layer_tanh_dmft_against_ensembles(task):
  """A network with no closed-form kernel: finite mup ensembles approach the DMFT as
  the width grows; the fitted exponent of the loss distance is printed."""
  x, y, _, _ = task
  steps, lr = 10, 1.0
  net = _mlp(stax.Tanh(), 3, gamma0=1.0)
  theory = dmft.solve(net, x, y, lr=lr, steps=steps, n_samples=4096, seed=1)
  widths = [128, 256, 512, 1024]
  dist = []
  for e in dmft.train_widths(net, x, y, widths, n_seeds=16, steps=steps, lr=lr, ntk=False):
    dist.append(float(np.mean(np.abs(e.f_train.mean(0) - theory.f_train))))
  fit = slopes.loglog_fit(widths, dist)
  print(f"|mean f_N - f_DMFT| against N: {dist}; {fit}")
  assert dist[-1] < dist[0]
  assert fit.slope < -0.3


@pytest.fixture(params=["jit", "no_jit"])
def maybe_jit(request):
  """Runs a test with jax.jit, and with jit made a no-op by chex.fake_jit()."""
  if request.param == "jit":
    yield jax.jit
  else:
    with chex.fake_jit():
      yield jax.jit


def test_core_error_signal_with_and_without_jit(maybe_jit):
  """With a fixed NTK and lazy increments the error signal is the lazy GD error."""
  rng = np.random.default_rng(0)
  a = rng.standard_normal((5, 5))
  ntk = jnp.asarray(a @ a.T / 5 + np.eye(5), jnp.float32)
  y = jnp.asarray(rng.standard_normal(5), jnp.float32)
  lr, steps = 0.5, 6
  err = np.zeros((steps + 1, 5), np.float32)
  err[0] = y
  for t in range(steps):
    err[t + 1] = err[t] - lr / 5 * np.asarray(ntk) @ err[t]
  delta = jnp.asarray(err[:steps])
  inc = jnp.asarray(-(err[1:] - err[:-1]))
  ntks = jnp.broadcast_to(ntk, (steps, 5, 5))
  out = maybe_jit(core.error_signal, static_argnums=4)(inc, ntks, delta, y, lr)
  chex.assert_shape(out, (steps, 5))
  np.testing.assert_allclose(out, err[:steps], rtol=1e-5, atol=1e-6)


def test_damped_fixed_point_with_and_without_jit(maybe_jit):
  """x = cos(x) by damped iteration: the Dottie number, to tolerance."""
  def update(x, count):
    new = jnp.cos(x)
    return new, count + 1, jnp.abs(new - x) / jnp.abs(new)

  fn = maybe_jit(lambda x0: core.damped_fixed_point(
      update, x0, jnp.zeros((), jnp.int32), damping=0.7, tol=1e-6, max_iterations=200))
  x, count, it, res, stalled = fn(jnp.asarray(1.0, jnp.float32))
  assert float(res) <= 1e-6 and int(it) == int(count) < 200 and not bool(stalled)
  assert float(x) == pytest.approx(0.7390851, abs=1e-5)


def _wandering(x, count):
  """A map that settles to within 2% of 0.5 and then alternates there (a noise floor)."""
  new = 0.5 + 0.5 ** (count + 1.0) + 0.01 * (-1.0) ** count
  return new, count + 1, jnp.abs(new - x) / jnp.abs(new)


def test_damped_fixed_point_stops_when_stalled_at_its_floor(maybe_jit):
  run = lambda floor: maybe_jit(lambda x0: core.damped_fixed_point(
      _wandering, x0, jnp.zeros((), jnp.float32), damping=1.0, tol=1e-4,
      max_iterations=200, floor=floor, patience=10))(jnp.asarray(2.0, jnp.float32))
  _, _, it, res, stalled = run(0.05)
  # The residual reaches the floor within a few iterations, then never improves by 10%.
  assert bool(stalled) and 10 < int(it) < 40 and 1e-4 < float(res) <= 0.05
  _, _, it, res, stalled = run(None)  # without a floor: every iteration is spent
  assert not bool(stalled) and int(it) == 200
  _, _, it, _, stalled = run(1e-3)  # a floor below the wander is never reached
  assert not bool(stalled) and int(it) == 200
