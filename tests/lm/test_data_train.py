"""Synthetic languages against their exact entropy rate; training, sharding, checkpoints, resume."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lm import data
from lm import train

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_markov_entropy_rate_matches_samples():
  """Mean -log P(y | k-gram) of sampled text equals the exact entropy rate (4 standard errors)."""
  lang = data.MarkovLanguage(vocab_size=12, order=2, seed=3)
  h = lang.entropy_rate()
  p = lang.transitions()
  pi = lang.stationary()
  np.testing.assert_allclose(  # stationary: a fixed point of the k-gram chain
      np.einsum("ar,ary->ry", pi.reshape(12, 12), p.reshape(12, 12, 12)).ravel(), pi, atol=1e-12)
  toks = np.asarray(jax.jit(lang.sampler(), static_argnums=(1, 2))(jax.random.PRNGKey(0), 400, 60))
  ctx = toks[:, :-2] * 12 + toks[:, 1:-1]
  nll = -np.log(p[ctx.ravel(), toks[:, 2:].ravel()])
  se = nll.reshape(400, -1).mean(1).std() / np.sqrt(400)
  print(f"exact {h:.5f}, sampled {nll.mean():.5f} +/- {se:.5f}")
  assert abs(nll.mean() - h) < 4 * se
  uniform = data.MarkovLanguage(vocab_size=7, order=1, s_min=0.0, s_max=0.0)
  assert uniform.entropy_rate() == pytest.approx(np.log(7), abs=1e-12)


def test_byte_corpus_and_bad_corpora(tmp_path):
  (tmp_path / "b.txt").write_bytes(b"world")
  (tmp_path / "a.txt").write_bytes(b"hello ")
  c = data.ByteCorpus(str(tmp_path), eval_fraction=0.0)
  assert bytes(c.tokens().astype(np.uint8)) == b"hello world"
  w = np.asarray(c.sampler()(jax.random.PRNGKey(0), 2, 4))
  for row in w:
    assert bytes(row.astype(np.uint8)) in b"hello world"
  with pytest.raises(ValueError, match="larger than the train corpus"):
    c.sampler()(jax.random.PRNGKey(0), 4, 4)
  (tmp_path / "e").mkdir()
  with pytest.raises(ValueError, match="is empty"):
    data.ByteCorpus(str(tmp_path / "e")).tokens()
  with pytest.raises(ValueError, match="does not exist"):
    data.ByteCorpus(str(tmp_path / "nope")).tokens()
  cfg = tiny_config()
  cfg.data.kind = "bytes"
  cfg.data.path = str(tmp_path)
  with pytest.raises(ValueError, match="batch_size=8 x"):
    train.validate(cfg)


def tiny_config():
  c = train.default_config()
  c.model.update(width=16, depth=1, n_heads=2, seq_len=8)
  c.data.update(vocab_size=16, order=1)
  c.batch_size = 8
  c.steps = 30
  c.lr = 3e-2
  c.log_every = 1
  c.eval_every = 10
  c.ckpt_every = 5
  return c


def test_training_learns_and_divergence_stops(tmp_path):
  cfg = tiny_config()
  cfg.steps = 40
  rec = train.train(cfg, progress=False)
  loss = [r["loss"] for r in rec if r["key"].startswith("train_")]
  print(f"loss {loss[0]:.3f} -> {np.mean(loss[-10:]):.3f} (log V = {np.log(16):.3f})")
  assert np.mean(loss[-10:]) < loss[0] - 0.1
  good = tiny_config()
  good.steps = 10
  train.train(good, str(tmp_path / "run"), progress=False)
  bad = tiny_config()  # resumed at step 10 with a rate that diverges
  bad.lr = 300.0
  with pytest.raises(train.Diverged, match="at step") as e:
    train.train(bad, str(tmp_path / "run"), progress=False)
  stop = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
  assert stop["key"] == "diverged"
  kept = [int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()]
  assert max(kept) == 10 and stop["step"] >= 10, (kept, str(e.value))


def _run(args):
  log = open(args[-1].split("=", 1)[1] + ".log", "a")  # a file: a full pipe would block the child
  return subprocess.Popen([sys.executable, "-m", "lm.train", "--config=lm/configs/markov_tiny.py",
                           *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, text=True)


def _err(p, path):
  return pathlib.Path(str(path) + ".log").read_text()[-3000:]


TINY_FLAGS = ["--config.model.width=16", "--config.model.depth=1", "--config.model.seq_len=8",
              "--config.data.vocab_size=16", "--config.data.order=1", "--config.steps=40",
              "--config.ckpt_every=5", "--config.log_every=1", "--config.eval_every=10",
              "--config.batch_size=8"]


def _losses(path):
  return [(r["key"], r.get("loss", r.get("eval_loss")))
          for r in map(json.loads, (path / "metrics.jsonl").read_text().splitlines())
          if r["key"] != "done"]


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_loss_curve(tmp_path):
  a = _run(TINY_FLAGS + [f"--out={tmp_path / 'a'}"])
  assert a.wait(300) == 0, _err(a, tmp_path / "a")
  b = _run(TINY_FLAGS + [f"--out={tmp_path / 'b'}"])
  ck = tmp_path / "b" / "checkpoints"
  t0 = time.time()
  while not (ck.is_dir() and any(p.name.isdigit() and int(p.name) >= 15 for p in ck.iterdir())):
    assert b.poll() is None and time.time() - t0 < 300, "run ended before it could be killed"
    time.sleep(0.05)
  b.send_signal(signal.SIGKILL)
  b.wait()
  killed_at = max(int(p.name) for p in ck.iterdir() if p.name.isdigit())
  assert killed_at < 40
  c = _run(TINY_FLAGS + [f"--out={tmp_path / 'b'}"])
  assert c.wait(300) == 0, _err(c, tmp_path / "b")
  print(f"killed after checkpoint {killed_at}; resumed to 40")
  assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


_SHARD_SCRIPT = r"""
import jax, numpy as np
from lm import train
assert len(jax.devices()) == 4
cfg = train.default_config()
cfg.model.update(width=16, depth=1, n_heads=2, seq_len=8)
cfg.data.update(vocab_size=16, order=1)
cfg.batch_size, cfg.steps, cfg.log_every, cfg.eval_every = 8, 8, 1, 8
curves = []
for devs in (jax.devices()[:1], jax.devices()):
  tr = train.Trainer(cfg, devs)
  assert len(tr.batch(0).sharding.device_set) == len(devs)
  curves.append([r["loss"] for r in train.train(cfg, devices=devs, progress=False)
                 if r["key"].startswith("train_")])
print(curves)
np.testing.assert_allclose(curves[0], curves[1], rtol=2e-5)
print("ok")
"""


@pytest.mark.slow
def test_data_parallel_over_four_devices_matches_one():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", _SHARD_SCRIPT], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]
