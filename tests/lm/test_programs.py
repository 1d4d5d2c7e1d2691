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
  rd = io.RunDir(tmp_path)
  ran, lock = [], threading.Lock()

  def job(i):
    def f(device):
      with lock:
        ran.append((i, device.id))
      return dict(value=i * i)
    return f
  jobs = {f"j{i}": job(i) for i in range(6)}
  out = sweep.run_jobs(jobs, rd, progress=False)
  assert {k: v["value"] for k, v in out.items()} == {f"j{i}": i * i for i in range(6)}
  assert sorted(i for i, _ in ran) == list(range(6))
  assert {d for _, d in ran} <= {d.id for d in jax.devices()}
  ran.clear()
  again = sweep.run_jobs(jobs, rd, progress=False)  # everything recorded: nothing reruns
  assert ran == [] and again == out


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
