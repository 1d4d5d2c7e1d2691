"""The sweep runner, the coordinate check and the command-line programs."""
import pathlib
import subprocess
import sys
import threading

import jax
import ml_collections
import numpy as np
import pytest

from kernels import runs as io
from lm import coord_check
from lm import sweep
from lm import train

ROOT = pathlib.Path(__file__).resolve().parents[2]


def tiny():
  c = train.default_config()
  c.model.update(width=16, depth=1, n_heads=2, seq_len=8)
  c.data.update(vocab_size=16, order=1)
  c.batch_size, c.steps, c.log_every, c.eval_every = 8, 12, 1, 6
  return c


def test_grid_member_equals_a_plain_run():
  """Each (lr, seed) of the vmapped grid is the run train.train does with that lr and seed."""
  c = tiny()
  c.seed = 1  # held-out batches come from cfg.seed in both
  r = sweep.train_grid(c, [3e-3, 3e-2], [1])
  c.lr = 3e-2
  plain = [x["eval_loss"] for x in train.train(c, progress=False) if "eval_loss" in x]
  print(plain, r["eval_loss"][:, 1, 0])
  np.testing.assert_allclose(r["eval_loss"][:, 1, 0], plain, rtol=2e-5)
  assert r["eval_steps"] == [6, 12]
  assert sweep.optimum_index(r["eval_loss"][-1]) in (0, 1)


def test_run_jobs_skips_finished_and_uses_every_device(tmp_path):
  """One worker per device, each taking jobs in turn: with at least as many jobs as
  devices, every device runs one. The first jobs wait for each other (a barrier of one
  per device), so no worker can take them all and the check is deterministic; a runner
  that used fewer devices would leave the barrier broken and the test failed."""
  devices = jax.devices()
  assert len(devices) >= 2  # tests/conftest.py: two host devices
  rd = io.RunDir(tmp_path)
  ran, lock = [], threading.Lock()
  barrier = threading.Barrier(len(devices), timeout=60)

  def job(i):
    def f(device):
      placed = jax.numpy.zeros(()).devices()  # jobs run under their worker's device
      with lock:
        ran.append((i, device.id, {d.id for d in placed}))
      if i < len(devices):
        barrier.wait()
      return dict(value=i * i)
    return f
  jobs = {f"j{i}": job(i) for i in range(6)}
  out = sweep.run_jobs(jobs, rd, progress=False)
  assert {k: v["value"] for k, v in out.items()} == {f"j{i}": i * i for i in range(6)}
  assert sorted(i for i, _, _ in ran) == list(range(6))
  assert {d for _, d, _ in ran} == {d.id for d in devices}
  assert all(placed == {d} for _, d, placed in ran)
  ran.clear()
  again = sweep.run_jobs(jobs, rd, progress=False)  # everything recorded: nothing reruns
  assert ran == [] and again == out
  # Fewer jobs than devices: one worker per job, on the first devices.
  solo = sweep.run_jobs({"only": job(10)}, io.RunDir(tmp_path / "solo"), progress=False)
  assert solo["only"]["value"] == 100 and [d for _, d, _ in ran] == [devices[0].id]


def _grid_record(lrs, opt_index, base, n_evals=3, seeds=2, diverge_above=None):
  """A `sweep.as_record` of a loss-vs-rate table with its optimum at ``opt_index``:
  loss = base / eval + 0.1 (i - opt)^2 + a seed offset of +-1e-3; rates above
  ``diverge_above`` (an index) diverged in seed 0."""
  i = np.arange(len(lrs))[None, :, None]
  e = np.arange(1, n_evals + 1)[:, None, None]
  s = np.array([-1e-3, 1e-3][:seeds])[None, None, :]
  loss = base / e + 0.1 * (i - opt_index) ** 2 + s
  diverged = np.zeros((len(lrs), seeds), bool)
  if diverge_above is not None:
    diverged[diverge_above + 1:, 0] = True
    loss = np.where(diverged[None], np.inf, loss)
  return sweep.as_record(dict(lrs=list(lrs), seeds=list(range(seeds)),
                              eval_steps=list(10 * np.arange(1, n_evals + 1)),
                              eval_loss=loss, train_loss=loss[-1], diverged=diverged))


def test_transfer_analysis_finds_the_optimum_drift_exactly():
  """Known optimum per width: muP holds it (drift 0), SP moves it two grid steps down and
  has a diverged member (recorded as null) and a width where wider is not better."""
  from lm import transfer  # pylint: disable=g-import-not-at-top
  cfg = ml_collections.ConfigDict(dict(parameterizations=("sp", "mup"), sizes=(32, 64, 128),
                                       axis="width"))
  lrs = [0.01 * 2.0 ** k for k in range(-3, 4)]  # 7 rates
  opt = {"sp": (4, 3, 2), "mup": (3, 3, 3)}
  base = {"sp": (2.0, 1.9, 1.95), "mup": (2.0, 1.9, 1.8)}
  records = {f"{p}_width{w}": _grid_record(lrs, opt[p][j], base[p][j],
                                           diverge_above=5 if p == "sp" else None)
             for p in opt for j, w in enumerate(cfg.sizes)}
  assert records["sp_width32"]["eval_loss"][0][6][0] is None  # inf written as null
  rep = transfer.analyse(cfg, records)
  assert rep["mup"]["optimum_index"] == [3, 3, 3] and rep["mup"]["drift_steps"] == 0
  assert rep["mup"]["optimum_lr"] == [lrs[3]] * 3
  assert rep["sp"]["optimum_index"] == [4, 3, 2] and rep["sp"]["drift_steps"] == 2
  assert not rep["sp"]["optimum_at_grid_edge"] and not rep["mup"]["optimum_at_grid_edge"]
  np.testing.assert_allclose(rep["mup"]["best_loss"], np.array(base["mup"]) / 3, atol=1e-12)
  assert rep["mup"]["larger_is_better_every_eval"]
  assert not rep["sp"]["larger_is_better_every_eval"]
  # an optimum at the grid's edge is flagged; a size with every member diverged has none
  records["mup_width128"] = _grid_record(lrs, 6, 1.8)
  records["sp_width128"] = _grid_record(lrs, 2, 1.95, seeds=1, diverge_above=-1)
  rep = transfer.analyse(cfg, records)
  assert rep["mup"]["optimum_index"] == [3, 3, 6] and rep["mup"]["drift_steps"] == 3
  assert rep["mup"]["optimum_at_grid_edge"]
  assert rep["sp"]["optimum_index"] == [4, 3, -1] and rep["sp"]["optimum_lr"][2] is None
  assert rep["sp"]["drift_steps"] == 1


def test_ladder_analysis_recovers_a_known_power_law():
  """L(N, D) = E + A N^-alpha + B D^-alpha with 0.2% noise, D at six token counts up to
  20 N: the final losses follow E + A' N^-alpha exactly, so both fits should recover
  E and alpha. Tolerances, from eight noise draws (worst: E off by 1.4% from the 7 final
  losses, 0.4% from all 42; alpha and beta by 0.013): E within 2.5% (power law) and 1%
  (Chinchilla), alpha and beta within 0.05.
  30 starts of each fit's default grid keep it fast (the fits are those of lm.ladder)."""
  from lm import ladder  # pylint: disable=g-import-not-at-top
  from scaling import chinchilla, power_law  # pylint: disable=g-import-not-at-top
  grids = dict(power_law_grid=power_law.default_grid()[::30],
               chinchilla_grid=chinchilla.hoffmann_grid()[::150])
  e, a, b, alpha = 1.7, 40.0, 60.0, 0.35
  rng = np.random.default_rng(0)
  records = {}
  for n in np.geomspace(2e4, 5e6, 7).round():
    tokens = [20 * n * k / 6 for k in range(1, 7)]
    loss = [(e + a * n ** -alpha + b * d ** -alpha) * (1 + 2e-3 * rng.normal())
            for d in tokens]
    records[f"n{int(n)}"] = dict(params=int(n), tokens=tokens, eval_loss=loss, diverged=False)
  report, fits = ladder.analyse(records, e, **grids)
  print({k: round(v, 4) for k, v in fits["pl"].to_dict().items() if isinstance(v, float)},
        report["power_law_E_rel_error"], report["chinchilla_E_rel_error"])
  assert fits["pl"].converged and fits["ch"].converged
  assert abs(report["power_law_E_rel_error"]) < 0.025
  assert abs(report["chinchilla_E_rel_error"]) < 0.01
  assert abs(fits["pl"].alpha - alpha) < 0.05 and abs(fits["ch"].alpha - alpha) < 0.05
  assert abs(fits["ch"].beta - alpha) < 0.05
  assert report["entropy_rate"] == e and len(fits["ll"]) == 42
  records["n20000"]["diverged"] = True
  with pytest.raises(ValueError, match="diverged"):
    ladder.analyse(records, e, **grids)


@pytest.mark.slow
def test_coord_check_mup_passes_and_sp_fails(tmp_path):
  cfg = ml_collections.ConfigDict()
  cfg.train = train.default_config()
  cfg.train.model.update(depth=1, n_heads=2, seq_len=16, zero_readout=True)
  cfg.train.data.update(vocab_size=32, order=1)
  cfg.train.batch_size, cfg.train.lr = 8, 1e-2
  cfg.widths, cfg.parameterizations, cfg.steps, cfg.seeds, cfg.tol = (32, 512), ("sp", "mup"), 3, 1, 1.2
  rep = coord_check.run(cfg, str(tmp_path))
  print({p: round(r["worst"], 3) for p, r in rep.items()})
  assert rep["mup"]["passes"] and not rep["sp"]["passes"]
  assert rep["sp"]["worst"] > 2.0
  assert (tmp_path / "coord_check.png").stat().st_size > 0
  assert "PASS" in (tmp_path / "summary.md").read_text()


def test_programs_report_bad_settings_in_one_line(tmp_path):
  r = subprocess.run([sys.executable, "-m", "lm.train", "--config=lm/configs/markov_tiny.py",
                      "--config.model.n_heads=3", f"--out={tmp_path / 'x'}"], cwd=ROOT,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 1
  assert r.stderr.strip().splitlines()[-1].startswith("lm.train: error: n_heads=3 does not divide")
  assert not (tmp_path / "x").exists()
  r = subprocess.run([sys.executable, "-m", "lm.transfer", "--axis=height"], cwd=ROOT,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 1 and "--axis must be one of" in r.stderr


def test_ladder_and_transfer_checks_name_the_field():
  from lm import ladder, transfer  # pylint: disable=g-import-not-at-top
  from lm.configs import ladder as ladder_cfg, transfer_depth  # pylint: disable=g-import-not-at-top
  c = ladder_cfg.get_config()
  c.sizes = ((8, 1), (12, 1))
  with pytest.raises(ValueError, match="config.sizes needs at least six"):
    ladder.check(c)
  c = ladder_cfg.get_config()
  c.train.data.kind = "bytes"
  with pytest.raises(ValueError, match="config.train.data.kind must be 'markov'"):
    ladder.check(c)
  t = transfer_depth.get_config()
  t.lr_max_exp = t.lr_min_exp
  with pytest.raises(ValueError, match="config.lr_max_exp"):
    transfer.check(t)
  t = transfer_depth.get_config()
  t.train.model.n_heads = 5
  with pytest.raises(ValueError, match="n_heads=5 does not divide width=64"):
    transfer.check(t)
