"""The sweep runner: many training configurations, finished ones skipped, spread over devices.

`train_grid` trains one model shape at a whole grid of learning rates and seeds as
one vmapped, jit-compiled program (the base rate is a traced argument of the train
step, so the grid costs one compilation). `run_jobs` runs named jobs whose records
are not yet in a `RunDir`, one worker thread per device, each job placed on its
worker's device; a rerun after an interruption skips what is recorded.
"""
from __future__ import annotations

import math
import queue
import threading
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from kernels import runs as io
from lm import train


def train_grid(cfg, lrs: Sequence[float], seeds: Sequence[int], *, device=None) -> dict:
  """Trains cfg at every (lr, seed) as one vmapped program; losses in nats.

  Returns dict(lrs, seeds, eval_steps, eval_loss (n_eval, n_lr, n_seed), train_loss
  (n_lr, n_seed): mean of the last 10% of steps, diverged (n_lr, n_seed) booleans).
  A member whose loss is not finite or exceeds `divergence_factor` x its first loss
  is diverged, and its losses are recorded as inf.
  """
  lrs = [float(x) for x in lrs]
  seeds = [int(s) for s in seeds]
  if not lrs or any(not x > 0 for x in lrs):
    raise ValueError(f"learning rates must be positive, got {lrs}.")
  if not seeds:
    raise ValueError("seeds must not be empty.")
  tr = train.Trainer(cfg, None if device is None else [device])
  n_lr, n_s = len(lrs), len(seeds)
  init = jax.jit(jax.vmap(train.init_fn(cfg, tr.mc)))
  seed_arr = jnp.asarray(np.tile(seeds, n_lr), jnp.int32)
  lr_arr = jnp.asarray(np.repeat(lrs, n_s), jnp.float32)
  step = jax.jit(jax.vmap(train.step_fn(cfg, tr.mc, tr.skip)), donate_argnums=0)
  ev = jax.jit(jax.vmap(lambda s, t: train.loss_fn(tr.mc, s.params, s.scales, t, tr.skip),
                        in_axes=(0, None)))
  put = (lambda x: jax.device_put(x, device)) if device is not None else (lambda x: x)
  state = put(init(seed_arr))
  # the batches of seed s are those of a plain `train.train` run with cfg.seed = s
  seed_keys = [jax.random.fold_in(jax.random.PRNGKey(s), 1) for s in seeds]
  batches = jax.jit(jax.vmap(tr.sample))
  eval_tokens = [put(tr._eval_batch(jax.random.fold_in(tr.eval_key, i)))
                 for i in range(cfg.eval_batches)]
  first, tail, evals, eval_steps = None, [], [], []
  bad = np.zeros(n_lr * n_s, bool)
  n_tail = max(1, cfg.steps // 10)
  for t in range(cfg.steps):
    keys = jnp.stack([jax.random.fold_in(k, t) for k in seed_keys])
    toks = put(jnp.tile(batches(keys), (n_lr, 1, 1)))
    state, loss = step(state, toks, lr_arr)
    loss = np.asarray(loss)
    first = loss if first is None else first
    bad |= ~np.isfinite(loss) | (loss > cfg.divergence_factor * first)
    if t >= cfg.steps - n_tail:
      tail.append(loss)
    if (t + 1) % cfg.eval_every == 0 or t == cfg.steps - 1:
      e = np.mean([np.asarray(ev(state, x)) for x in eval_tokens], 0)
      evals.append(np.where(bad, np.inf, e))
      eval_steps.append(t + 1)
  shape = (n_lr, n_s)
  return dict(lrs=lrs, seeds=seeds, eval_steps=eval_steps,
              eval_loss=np.stack(evals).reshape(len(evals), *shape),
              train_loss=np.where(bad, np.inf, np.mean(tail, 0)).reshape(shape),
              diverged=bad.reshape(shape))


def open_run(out, cfg, extendable=()) -> io.RunDir:
  """The run folder of `cfg`; a folder holding another config's results is refused
  (`kernels.runs.check_resumable`: its finished records would otherwise be skipped
  as if they were this config's). Fields in `extendable` may grow."""
  from kernels import program  # pylint: disable=g-import-not-at-top
  d = program.config_dict(cfg)
  io.check_resumable(out, d, extendable)
  rd = io.RunDir(out)
  rd.start(d)
  return rd


def run_jobs(jobs: dict, rundir: io.RunDir, *, devices: Optional[Sequence] = None,
             progress: bool = True, desc: str = "sweep") -> dict:
  """Runs ``jobs[key](device) -> record`` for keys not yet recorded in `rundir`.

  One worker per device takes jobs in order; each finished record is appended to
  metrics.jsonl (atomically) with its key, so an interrupted sweep resumes.
  Returns key -> record for all jobs.
  """
  devices = list(devices) if devices is not None else jax.devices()
  done = {r["key"]: r for r in rundir.records()}
  todo = [k for k in jobs if k not in done]
  q: "queue.Queue[str]" = queue.Queue()
  for k in todo:
    q.put(k)
  lock = threading.Lock()
  errors = []
  bar = tqdm.tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc,
                  disable=not progress)

  def worker(device):
    while not errors:
      try:
        k = q.get_nowait()
      except queue.Empty:
        return
      try:
        with jax.default_device(device):
          rec = dict(jobs[k](device), key=k)
      except BaseException as e:  # pylint: disable=broad-except
        errors.append(e)
        return
      with lock:
        rundir.append(rec)
        done[k] = rec
        bar.update(1)

  threads = [threading.Thread(target=worker, args=(d,)) for d in devices[:max(1, len(todo))]]
  for th in threads:
    th.start()
  for th in threads:
    th.join()
  bar.close()
  if errors:
    raise errors[0]
  return {k: done[k] for k in jobs}


def optimum_index(losses) -> int:
  """Grid index of the lowest mean-over-seeds loss (diverged members count as inf)."""
  m = np.asarray(losses, float)
  m = np.where(np.isfinite(m), m, np.inf).mean(-1)
  if not np.isfinite(m).any():
    return -1
  return int(np.argmin(m))


def as_record(result: dict) -> dict:
  """JSON-able record of a `train_grid` result (inf written as null)."""
  def clean(a):
    a = np.asarray(a, float)
    return [clean(x) for x in a] if a.ndim else (None if not math.isfinite(a) else float(a))
  return dict(lrs=result["lrs"], seeds=result["seeds"], eval_steps=result["eval_steps"],
              eval_loss=clean(result["eval_loss"]), train_loss=clean(result["train_loss"]),
              diverged=np.asarray(result["diverged"]).tolist())


def from_record(rec: dict) -> dict:
  """Inverse of `as_record` (null -> inf)."""
  f = lambda a: np.nan_to_num(np.array(a, dtype=float), nan=np.inf)
  return dict(rec, eval_loss=f(rec["eval_loss"]), train_loss=f(rec["train_loss"]))
