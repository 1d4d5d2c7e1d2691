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
