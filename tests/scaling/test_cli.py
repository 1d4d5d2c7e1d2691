"""The programs end to end at a tiny size, and bad config fields rejected before any write."""
import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from kernels import program
from scaling import data
from scaling import fit as fit_cli
from scaling import plrf_frontier

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_cli(module, *args, cwd=None):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd,
                        env=dict(os.environ, PYTHONPATH=ROOT),
                        capture_output=True, text=True, timeout=300)


def _write_csv(tmp_path):
  runs = data.synthetic_runs(dict(A=406.4, B=410.7, E=1.69, alpha=0.34,
                                  beta=0.28), num_sizes=12, num_per_size=20,
                             noise=0.01, seed=2)
  csv = tmp_path / "runs.csv"
  lines = ["Model Size,Training FLOP,loss"] + [
      f"{n},{c},{l}" for n, c, l in zip(runs.N, runs.C, runs.loss)]
  lines.append("1e9,nan,2.0")
  csv.write_text("\n".join(lines) + "\n")
  return csv


def test_fit_program_writes_run_folder_and_reuses_it(tmp_path):
  csv = _write_csv(tmp_path)
  out = tmp_path / "run"
  proc = _run_cli("scaling.fit", f"--config.csv={csv}", "--config.bootstrap=0",
                  "--config.drop_highest=0", f"--out={out}", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  assert "alpha" in proc.stdout
  for name in ("config.json", "fit.json", "metrics.jsonl", "summary.md",
               "data_fit.png", "surface.png", "frontier.png"):
    assert (out / name).exists(), name
  metrics = json.loads((out / "fit.json").read_text())
  assert metrics["num_nan_dropped"] == 1
  assert abs(metrics["alpha"] - 0.34) < 0.05
  assert not [f for f in os.listdir(out) if f.startswith(".")]
  # A rerun with the same config reuses the finished folder.
  config = program.load_config_file(fit_cli.PROGRAM.default_config_path)
  config.update(csv=str(csv), bootstrap=0, drop_highest=0)
  before = (out / "metrics.jsonl").read_text()
  again = fit_cli.run(config, str(out), progress=False)
  assert again["A"] == metrics["A"] and np.isfinite(again["objective"])
  assert (out / "metrics.jsonl").read_text() == before
  # Another config is refused before any work, unless overwrite is set.
  config.seed = 1
  with pytest.raises(ValueError, match="config.seed"):
    fit_cli.PROGRAM.prepare(config, str(out))
  config.overwrite = True
  fit_cli.PROGRAM.prepare(config, str(out))


def test_fit_report_prints_intervals():
  metrics = dict(A=400.0, B=410.0, E=1.7, alpha=0.34, beta=0.28, a=0.45, b=0.55,
                 intervals={"alpha": [0.31, 0.37]})
  lines = fit_cli.report(metrics).splitlines()
  assert "alpha 0.34 [0.31, 0.37]" in lines and "    A 400" in lines


def _assert_one_line_error(proc, program_name, *names):
  print(proc.returncode, repr(proc.stderr))
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"{program_name}: error: "), lines
  for name in names:
    assert name in lines[0], (name, lines[0])


@pytest.mark.parametrize("body,flag,names", [
    ("Model Size,Training FLOP,loss\n1e8,1e19,3.0\n2e8,2e19,-2.9\n",
     "--config.drop_highest=0", ("config.csv", "line 3", "loss")),
    ("Model Size,loss\n1e8,3.0\n", "--config.drop_highest=0",
     ("config.csv", "Training FLOP")),
    (None, "--config.bootstrap=-1", ("config.bootstrap",)),
    (None, "--config.delta=nan", ("config.delta",)),
    (None, "--config.seed=x", ("--config.seed",)),
    (None, "--config.bootstrapp=1", ("--config.bootstrapp", "no field")),
], ids=["negative_loss", "missing_column", "bootstrap", "delta", "seed", "unknown"])
def test_fit_program_rejects_bad_input_before_writing(tmp_path, body, flag, names):
  csv = tmp_path / "runs.csv"
  csv.write_text(body or "Model Size,Training FLOP,loss\n" + "".join(
      f"{n},{6 * n * 20 * n},{2 + 100 / n**0.3}\n"
      for n in np.geomspace(1e7, 1e9, 8)))
  out = tmp_path / "run"
  proc = _run_cli("scaling.fit", f"--config.csv={csv}", f"--out={out}", flag)
  _assert_one_line_error(proc, "scaling.fit", *names)
  assert not out.exists()


@pytest.mark.parametrize("field,value", [
    ("bootstrap", -1), ("seed", -2), ("drop_highest", -1), ("delta", 0.0),
    ("overwrite", "yes"), ("csv", 3), ("synthetic.num_sizes", 2),
    ("synthetic.noise", -0.1)])
def test_fit_rejects_each_bad_config_field_with_its_name(tmp_path, field, value):
  fields = program.load_config_file(fit_cli.PROGRAM.default_config_path).to_dict()
  node, _, leaf = field.rpartition(".")
  (fields[node] if node else fields)[leaf] = value
  config = ml_collections.ConfigDict(fields)
  with pytest.raises(ValueError, match=f"config.{field}"):
    fit_cli.PROGRAM.prepare(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


TINY_FRONTIER = ["--config.points=0.45:0.45", "--config.d_min=16", "--config.d_max=64",
                 "--config.seeds=1", "--config.max_flops=1e6"]


def test_frontier_program_runs_end_to_end_and_resumes(tmp_path):
  out = tmp_path / "frontier"
  proc = _run_cli("scaling.plrf_frontier", *TINY_FRONTIER, f"--out={out}", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  assert "Ib (0.45, 0.45): d* exponent" in proc.stdout and "[" in proc.stdout
  rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
  assert [r["key"] for r in rows] == ["0.45:0.45"] and rows[0]["ds"] == [16, 32, 64]
  assert rows[0]["phase"] == "Ib" and rows[0]["theory_d_exponent"] == 0.5
  assert np.isfinite(rows[0]["capacity_slope"])
  low, high = rows[0]["d_exponent_interval"]
  assert low < rows[0]["d_exponent"] < high
  for name in ("config.json", "summary.md", "frontier.png"):
    assert (out / name).exists(), name
  # A rerun computes nothing; another draw count is refused.
  config = program.load_config_file(plrf_frontier.PROGRAM.default_config_path)
  config.update(points="0.45:0.45", d_min=16, d_max=64, seeds=1, max_flops=1e6)
  before = (out / "metrics.jsonl").read_text()
  assert plrf_frontier.run(config, str(out), progress=False)[0]["key"] == "0.45:0.45"
  assert (out / "metrics.jsonl").read_text() == before
  config.seeds = 2
  with pytest.raises(ValueError, match="config.seeds"):
    plrf_frontier.PROGRAM.prepare(config, str(out))


@pytest.mark.parametrize("flag", ["--config.points=0.1:0.1", "--config.seeds=0",
                                  "--config.d_max=32", "--config.lr_factor=-1",
                                  "--config.v_ratio=0.5", "--config.max_flops=10"])
def test_frontier_program_rejects_bad_field_before_work(tmp_path, flag):
  out = tmp_path / "frontier"
  proc = _run_cli("scaling.plrf_frontier", *TINY_FRONTIER, f"--out={out}", flag)
  _assert_one_line_error(proc, "scaling.plrf_frontier", flag.split("=")[0][2:])
  assert not out.exists()
