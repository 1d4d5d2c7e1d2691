"""The command lines: complete run folders, and bad input rejected before any write."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scaling import data
from scaling import fit as fit_cli


def test_cli_writes_run_folder(tmp_path):
  runs = data.synthetic_runs(dict(A=406.4, B=410.7, E=1.69, alpha=0.34,
                                  beta=0.28), num_sizes=12, num_per_size=20,
                             noise=0.01, seed=2)
  csv = tmp_path / "runs.csv"
  lines = ["Model Size,Training FLOP,loss"] + [
      f"{n},{c},{l}" for n, c, l in zip(runs.N, runs.C, runs.loss)]
  lines.append("1e9,nan,2.0")
  csv.write_text("\n".join(lines) + "\n")
  out = tmp_path / "run"
  metrics = fit_cli.run(str(csv), str(out), bootstrap=0, drop_highest=0)
  for name in ("config.json", "fit.json", "metrics.jsonl", "summary.md",
               "data_fit.png", "surface.png", "frontier.png"):
    assert (out / name).exists(), name
  assert metrics["num_nan_dropped"] == 1
  assert abs(metrics["alpha"] - 0.34) < 0.05
  assert not [f for f in os.listdir(out) if f.startswith(".tmp_")]
  # A rerun with the same config reuses the finished folder.
  again = fit_cli.run(str(csv), str(out), bootstrap=0, drop_highest=0)
  assert again["A"] == json.loads((out / "fit.json").read_text())["A"]
  assert np.isfinite(again["objective"])


def _run_cli(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args],
                        capture_output=True, text=True, timeout=300)


def _assert_one_line_error(proc, *names):
  print(proc.returncode, repr(proc.stderr))
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and "error" in lines[0], lines
  for name in names:
    assert name in lines[0], (name, lines[0])


@pytest.mark.parametrize("body,flag,names", [
    ("Model Size,Training FLOP,loss\n1e8,1e19,3.0\n2e8,2e19,-2.9\n",
     "--drop_highest=0", ("--csv", "line 3", "loss")),
    ("Model Size,loss\n1e8,3.0\n", "--drop_highest=0",
     ("--csv", "Training FLOP")),
    (None, "--bootstrap=-1", ("--bootstrap",)),
    (None, "--delta=nan", ("--delta",)),
    (None, "--seed=x", ("--seed",)),
], ids=["negative_loss", "missing_column", "bootstrap", "delta", "seed"])
def test_fit_cli_rejects_bad_input_before_writing(tmp_path, body, flag, names):
  csv = tmp_path / "runs.csv"
  csv.write_text(body or "Model Size,Training FLOP,loss\n" + "".join(
      f"{n},{6 * n * 20 * n},{2 + 100 / n**0.3}\n"
      for n in np.geomspace(1e7, 1e9, 8)))
  out = tmp_path / "run"
  proc = _run_cli("scaling.fit", f"--csv={csv}", f"--out={out}", flag)
  _assert_one_line_error(proc, *names)
  assert not (out / "config.json").exists() and not out.exists()


@pytest.mark.parametrize("flag", ["--points=0.1:0.1", "--seeds=0",
                                  "--d_max=32", "--lr_factor=-1"])
def test_frontier_cli_rejects_bad_flag_before_work(tmp_path, flag):
  out = tmp_path / "frontier.json"
  proc = _run_cli("scaling.plrf_frontier", "--points=0.45:0.45",
                  "--d_min=16", "--d_max=128", "--seeds=1",
                  "--max_flops=1e7", f"--out={out}", flag)
  _assert_one_line_error(proc, flag.split("=")[0])
  assert not out.exists()
