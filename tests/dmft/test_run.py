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
  # Remove one stage's cache: a rerun recomputes only that stage.
  os.remove(os.path.join(out, "cache", "width_64.npz"))
  before = os.path.getmtime(os.path.join(out, "cache", "dmft.npz"))
  run.run(_config(), out)
  assert os.path.exists(os.path.join(out, "cache", "width_64.npz"))
  assert os.path.getmtime(os.path.join(out, "cache", "dmft.npz")) == before
  assert not [n for n in os.listdir(out) if n.startswith(".tmp")]


def _program(*args, cwd):
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  env = dict(os.environ, PYTHONPATH=root)
  return subprocess.run([sys.executable, "-m", "dmft.run", *args], cwd=cwd,
                        env=env, capture_output=True, text=True, timeout=300)


def test_program_help_and_bad_flags(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  helped = _program("--help", cwd=root)
  # (absl exits with status 1 after --help)
  for name in ("two_layer", "deep", "residual"):
    assert f"dmft/configs/{name}.py" in helped.stdout
  assert "Required" in helped.stdout and "runs/dmft_" in helped.stdout
  out = tmp_path / "bad"
  for args, expected in (
      ([f"--config={root}/dmft/configs/deep.py", "--config.solver=foo",
        f"--out={out}"], "config.solver"),
      ([f"--config={root}/dmft/configs/deep.py", "--config.steps=0",
        f"--out={out}"], "config.steps"),
      ([f"--config={root}/dmft/configs/nope.py", f"--out={out}"],
       "not found")):
    bad = _program(*args, cwd=str(tmp_path))
    assert bad.returncode != 0, args
    assert "Traceback" not in bad.stderr, bad.stderr
    lines = [l for l in bad.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and expected in lines[0], bad.stderr
    assert not out.exists()  # no config.json written on a bad flag
  assert run.default_out("dmft/configs/deep.py") == os.path.join(
      "runs", "dmft_deep")
