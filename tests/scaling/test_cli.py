"""The fit command line writes a complete run folder atomically."""
import json
import os

import numpy as np

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
