"""The absl program writes a complete results folder and resumes."""
import json
import os

import ml_collections

from dmft import run


def _config():
  c = ml_collections.ConfigDict()
  c.solver = "two_layer"
  c.data = ml_collections.ConfigDict(dict(n_train=6, n_test=3, dim=4, seed=0,
                                          target="sign"))
  c.activation = "relu"
  c.depth = 1
  c.gamma0 = 1.0
  c.lr = 1.0
  c.steps = 6
  c.n_samples = 1024
  c.seed = 0
  c.widths = [32, 64]
  c.n_seeds = 2
  c.split_pairs = 3
  c.gamma_sweep = [0.1, 1.0]
  c.sweep_samples = 1024
  return c


def test_run_writes_folder_and_resumes(tmp_path):
  out = str(tmp_path / "run")
  run.run(_config(), out)
  for name in ("config.json", "metrics.jsonl", "summary.md",
               "loss_vs_width.png", "width_scaling.png", "lazy_to_rich.png"):
    assert os.path.exists(os.path.join(out, name)), name
  with open(os.path.join(out, "metrics.jsonl")) as f:
    stages = [json.loads(line)["stage"] for line in f]
  assert {"dmft", "width_32", "width_64", "convergence", "split_32", "split_64",
          "split_bias"} <= set(stages)
  # Remove one stage's cache: a rerun recomputes only that stage. (The records lose
  # their RunDir key first, as a folder written before they had one.)
  os.remove(os.path.join(out, "cache", "width_64.npz"))
  with open(os.path.join(out, "metrics.jsonl")) as f:
    unkeyed = [{k: v for k, v in json.loads(line).items() if k != "key"} for line in f]
  with open(os.path.join(out, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in unkeyed)
  before = os.path.getmtime(os.path.join(out, "cache", "dmft.npz"))
  run.run(_config(), out)
  assert os.path.exists(os.path.join(out, "cache", "width_64.npz"))
  assert os.path.getmtime(os.path.join(out, "cache", "dmft.npz")) == before
  with open(os.path.join(out, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  assert sorted(r["stage"] for r in records) == sorted(stages)  # one record per stage
  assert all(r["key"] == r["stage"] for r in records)
  assert not [n for n in os.listdir(out) if n.startswith(".tmp")]


def _program(*args, cwd):
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  env = dict(os.environ, PYTHONPATH=root)
  return subprocess.run([sys.executable, "-m", "dmft.run", *args], cwd=cwd,
                        env=env, capture_output=True, text=True, timeout=300)


def test_program_runs_end_to_end(tmp_path):
  out = tmp_path / "run"
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  r = _program(f"--out={out}", "--config.data.n_train=4", "--config.data.n_test=2",
               "--config.steps=3", "--config.n_samples=256", "--config.widths=16,32",
               "--config.n_seeds=2", "--config.split_pairs=0", "--config.gamma_sweep=()",
               cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr
  config = json.loads((out / "config.json").read_text())
  assert config["solver"] == "two_layer" and config["widths"] == [16, 32]
  assert config["data"]["n_train"] == 4
  with open(out / "metrics.jsonl") as f:
    stages = [json.loads(line)["stage"] for line in f]
  assert stages == ["dmft", "width_16", "width_32", "convergence"]
  assert (out / "summary.md").exists() and (out / "loss_vs_width.png").exists()
  # The same folder with another config is refused before any work.
  bad = _program(f"--out={out}", "--config.steps=4", cwd=str(tmp_path))
  assert bad.returncode == 1 and "config.data" in bad.stderr, bad.stderr
  assert len(bad.stderr.strip().splitlines()) == 1
  assert PROGRAM_DEFAULT in run.PROGRAM.default_config_path.replace(os.sep, "/")
  assert os.path.isfile(os.path.join(root, PROGRAM_DEFAULT))


PROGRAM_DEFAULT = "dmft/configs/two_layer.py"


def test_program_help_and_bad_flags(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  helped = _program("--help", cwd=root)
  # (absl exits with status 1 after --help)
  assert PROGRAM_DEFAULT in helped.stdout and "runs/dmft" in helped.stdout
  out = tmp_path / "bad"
  for args, expected in (
      ([f"--config={root}/dmft/configs/deep.py", "--config.solver=foo",
        f"--out={out}"], "config.solver"),
      ([f"--config={root}/dmft/configs/deep.py", "--config.steps=0",
        f"--out={out}"], "config.steps"),
      (["--config.gamma0=-1", f"--out={out}"], "config.gamma0"),
      (["--config.widths=64,0", f"--out={out}"], "config.widths"),
      (["--config.gamma_sweep=0,1", f"--out={out}"], "config.gamma_sweep"),
      (["--config.n_seeds=x", f"--out={out}"], "--config.n_seeds"),
      (["--config.gamma=1", f"--out={out}"], "no field 'gamma'"),
      (["--config.data.dimm=1", f"--out={out}"], "no field 'dimm'"),
      ([f"--config={root}/dmft/configs/nope.py", f"--out={out}"],
       "not found")):
    bad = _program(*args, cwd=str(tmp_path))
    assert bad.returncode == 1, args
    assert "Traceback" not in bad.stderr, bad.stderr
    lines = [l for l in bad.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("dmft.run: error: "), bad.stderr
    assert expected in lines[0], bad.stderr
    assert not out.exists()  # no config.json written on a bad flag
  assert run.default_out("dmft/configs/deep.py") == os.path.join(
      "runs", "dmft_deep")
  assert run.default_out(run.PROGRAM.default_config_path) == os.path.join(
      "runs", "dmft")
