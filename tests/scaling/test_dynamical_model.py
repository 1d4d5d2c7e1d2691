"""Dynamical random-feature model: bottleneck scalings against simulation."""
import jax
import numpy as np
import pytest

from scaling import dynamical_model as dm

A, B = 1.5, 1.5


def test_exponents_and_compute_optimal_theory():
  ex = dm.bottleneck_exponents(A, B)
  assert ex["time"] == pytest.approx(1 / 3)
  assert ex["compute_model"] == pytest.approx(0.4)
  out = dm.compute_optimal(np.geomspace(1e3, 1e6, 6), a=A, b=B)
  slope = np.polyfit(np.log(out["C"]), np.log(out["N_opt"]), 1)[0]
  loss_slope = np.polyfit(np.log(out["C"]), np.log(out["loss_opt"]), 1)[0]
  print("theory N* slope", slope, "loss slope", loss_slope)
  assert slope == pytest.approx(ex["compute_model"], abs=0.06)
  assert -loss_slope == pytest.approx(ex["compute_loss"], abs=0.05)
  with pytest.raises(ValueError, match="a > 1"):
    dm.bottleneck_exponents(0.5, 2.0)


@pytest.mark.slow
def test_simulation_follows_bottlenecks():
  m = 1024
  ts = np.geomspace(1, 6, 4)  # time-limited: before N, P bottlenecks bind
  sim, _ = dm.simulate(jax.random.key(0), a=A, b=B, N=384, P=768, M=m,
                       times=ts, num_draws=3)
  theory = dm.theory_loss(ts, 384, 768, a=A, b=B, M=m)
  rel = sim / theory - 1
  print("time-limited rel diff", np.round(rel, 3))
  assert np.all(np.abs(rel) < 0.08)
  t_slope = np.polyfit(np.log(ts), np.log(sim), 1)[0]
  # Model- and data-limited: t -> infinity, the other resource 8x-64x larger,
  # and M = 2048 features so that the truncated tail does not bend the slope.
  ns = np.array([16, 32, 64, 128])
  sim_n = [dm.simulate(jax.random.key(1), a=A, b=B, N=int(n), P=1024, M=2048,
                       times=[1e7], num_draws=3)[0][0] for n in ns]
  n_slope = np.polyfit(np.log(ns), np.log(sim_n), 1)[0]
  ps = np.array([16, 32, 64, 128])
  sim_p = [dm.simulate(jax.random.key(2), a=A, b=B, N=512, P=int(p), M=2048,
                       times=[1e7], num_draws=3)[0][0] for p in ps]
  p_slope = np.polyfit(np.log(ps), np.log(sim_p), 1)[0]
  print(f"slopes: time {t_slope:.3f} (theory {-(A - 1) / B:.3f}), model "
        f"{n_slope:.3f}, data {p_slope:.3f} (theory {-(A - 1):.3f})")
  assert t_slope == pytest.approx(-(A - 1) / B, abs=0.1)
  assert n_slope == pytest.approx(-(A - 1), abs=0.1)
  assert p_slope == pytest.approx(-(A - 1), abs=0.1)


def test_limits_reduce_to_closed_forms():
  # Model-limited kappa solves its defining equation; with N -> M it vanishes.
  kappa = dm.projection_kappa(50, b=B, M=2000)
  lam = np.arange(1, 2001.0)**(-B)
  assert np.sum(lam / (lam + kappa)) == pytest.approx(50, rel=1e-9)
  assert dm.projection_kappa(1999.9, b=B, M=2000) < 1e-6
  # The deterministic equivalent falls like N^-(a-1), the model bottleneck.
  ns = np.array([64, 128, 256, 512, 1024])
  losses = [dm.model_limited_loss(int(n), a=A, b=B, M=10**6) for n in ns]
  assert np.polyfit(np.log(ns), np.log(losses), 1)[0] == pytest.approx(
      -(A - 1), abs=0.02)
  with pytest.raises(ValueError, match="P > N \\+ 1"):
    dm.model_limited_loss(40, a=A, b=B, M=4000, P=41)
  # Time-limited loss at t = 0 is the full target power.
  assert dm.time_limited_loss(0.0, a=A, b=B, M=100) == pytest.approx(
      np.sum(np.arange(1, 101.0)**(-A)))


@pytest.mark.slow
def test_model_and_data_limits_match_simulation():
  """Exact t -> inf limits against gradient flow; the bottleneck form is 2x off."""
  for n in (32, 64):
    sim, per = dm.simulate(jax.random.key(0), a=A, b=B, N=n, P=32 * n,
                           M=64 * n, times=[1e9], num_draws=8)
    theory = dm.model_limited_loss(n, a=A, b=B, M=64 * n, P=32 * n)
    crude = float(dm.theory_loss(1e9, n, 32 * n, a=A, b=B, M=64 * n))
    se = per.std() / np.sqrt(per.shape[0]) / sim[0]
    print(f"model-limited N={n}: sim/theory - 1 = {sim[0] / theory - 1:+.3f} "
          f"(s.e. {se:.3f}); bottleneck form ratio {sim[0] / crude:.2f}")
    assert sim[0] == pytest.approx(theory, rel=max(0.08, 3 * se))
    assert sim[0] / crude > 1.5
  sim, per = dm.simulate(jax.random.key(1), a=A, b=B, N=512 * 64, P=32, M=64,
                         times=[1e9], num_draws=48)
  theory = float(dm.data_limited_loss(32, a=A, b=B, M=64))
  se = per.std() / np.sqrt(per.shape[0]) / sim[0]
  print(f"data-limited P=32: sim/theory - 1 = {sim[0] / theory - 1:+.3f} "
        f"(s.e. {se:.3f})")
  assert sim[0] == pytest.approx(theory, rel=max(0.08, 3 * se))
