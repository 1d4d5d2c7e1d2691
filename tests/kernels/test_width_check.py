"""The main job at reduced size: measured rates in width, run folder and resume."""
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from kernels import runs, width_check


@pytest.mark.slow
def test_rates_and_run_folder(tmp_path):
  out = tmp_path / "run"
  kw = dict(widths=[64, 256, 1024], parameterizations=["ntk", "mup"], seeds=3, n_points=16,
            depth=1, activation="relu", steps=30, lr_fraction=1.0, dataset="digits", seed=0,
            progress=False)
  s = width_check.run_experiment(str(out), **kw)
  for p in ("ntk", "mup"):
    print(p, {q: round(s[p][q]["slope"], 3) for q in width_check.RATES})
    # Kernels at initialisation converge like width^-1/2.
    assert -0.8 < s[p]["nngp_err"]["slope"] < -0.3
    assert -0.8 < s[p]["ntk_err"]["slope"] < -0.3
  # Lazy under ntk, feature learning under mup.
  assert s["ntk"]["ntk_change"]["slope"] < -0.4
  assert abs(s["mup"]["ntk_change"]["slope"]) < 0.2
  assert s["mup"]["ntk_change"]["mean"][-1] > 10 * s["ntk"]["ntk_change"]["mean"][-1]
  for name in ("config.json", "metrics.jsonl", "summary.json", "summary.md", "rates.png",
               "loss_curves.png"):
    assert (out / name).exists()
  # A rerun resumes: nothing is recomputed, the same summary comes back.
  before = (out / "metrics.jsonl").read_text()
  s2 = width_check.run_experiment(str(out), **kw)
  assert (out / "metrics.jsonl").read_text() == before
  assert json.loads(json.dumps(s2)) == json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("flag,names", [
    ("--widths=abc", "--widths"), ("--seeds=0", "--seeds"), ("--widths=64,0", "--widths"),
    ("--parameterizations=ntk,bogus", "bogus"), ("--n_points=1", "--n_points"),
    ("--lr_fraction=-1", "--lr_fraction"), ("--activation=swish", "activation"),
])
def test_cli_rejects_bad_flags_in_one_line_before_writing(tmp_path, flag, names):
  out = tmp_path / "run"
  r = subprocess.run([sys.executable, "-m", "kernels.width_check", f"--out={out}", flag],
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 1, r.stderr
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("kernels.width_check: error:"), r.stderr
  assert names in lines[0] and "Traceback" not in r.stderr
  assert not out.exists()


def test_run_files_are_readable_as_the_umask_allows(tmp_path):
  old = os.umask(0o022)
  try:
    runs.RunDir(tmp_path / "r").write_json("config.json", {"a": 1})
    runs.write_via(tmp_path / "r" / "x.txt", lambda p: open(p, "w").write("x"))
  finally:
    os.umask(old)
  for name in ("config.json", "x.txt"):
    assert stat.S_IMODE(os.stat(tmp_path / "r" / name).st_mode) == 0o644
