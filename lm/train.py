r"""Training: a jitted step, data parallel over devices, orbax checkpoints, resume, divergence stop.

  python -m lm.train --config=lm/configs/markov_tiny.py --out=runs/lm_train

Writes OUT/config.json, OUT/metrics.jsonl (train loss every `log_every` steps,
held-out loss every `eval_every`), OUT/checkpoints/ (orbax, every `ckpt_every`
steps), OUT/loss.png and OUT/summary.md. A rerun resumes from the last checkpoint
and, because each step's batch is a function of (seed, step), ends with the same
loss curve as a run that never stopped. A NaN or diverging loss stops the run with
a message naming the step, and the last good checkpoint is kept.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax
import tqdm

from kernels import cli
from kernels import program
from kernels import runs as io
from lm import data as data_lib
from lm import model as model_lib
from lm import optim as optim_lib
from lm import scales as scales_lib
from lm.config import ModelConfig


class Diverged(RuntimeError):
  """The loss became NaN/inf or grew past `divergence_factor` times its first value."""


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  scales: scales_lib.Scales


def default_config() -> ml_collections.ConfigDict:
  """Every field a training config has (the files in lm/configs override some)."""
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict(dataclasses.asdict(ModelConfig()))
  c.model.head_dim = ml_collections.FieldReference(None, field_type=int)
  c.data = ml_collections.ConfigDict(dict(kind="markov", vocab_size=32, order=2, s_min=0.6,
                                          s_max=1.6, seed=0, path=""))
  c.optimizer = "adam"
  c.lr = 3e-3
  c.b1 = 0.9
  c.b2 = 0.95
  c.eps = 1e-8
  c.scale_eps = True
  c.weight_decay = 0.0
  c.momentum = 0.0
  c.schedule = "constant"
  c.warmup = 0
  c.steps = 200
  c.batch_size = 16
  c.seed = 0
  c.log_every = 10
  c.eval_every = 50
  c.eval_batches = 4
  c.ckpt_every = 50
  c.divergence_factor = 3.0
  return c


def model_config(cfg) -> ModelConfig:
  m = dict(cfg.model)
  if cfg.data.kind == "markov":
    m["vocab_size"] = cfg.data.vocab_size
  elif cfg.data.kind == "bytes":
    m["vocab_size"] = 256
  return ModelConfig(**m)


def language(cfg):
  d = dict(cfg.data)
  kind = d.pop("kind")
  if kind == "markov":
    d.pop("path", None)
  else:
    d = dict(path=d.get("path", ""))
  return data_lib.make(kind, **d)


def validate(cfg):
  """Raises ValueError naming the first bad setting (before any work or write)."""
  mc = model_config(cfg)  # checks the model fields
  for k in ("steps", "batch_size", "log_every", "eval_every", "eval_batches", "ckpt_every"):
    if isinstance(cfg[k], bool) or not isinstance(cfg[k], int) or cfg[k] < 1:
      raise ValueError(f"config.{k} must be a positive integer, got {cfg[k]!r}.")
  if not (isinstance(cfg.lr, (int, float)) and cfg.lr > 0):
    raise ValueError(f"config.lr must be a positive number, got {cfg.lr!r}.")
  if cfg.optimizer not in optim_lib.OPTIMIZERS:
    raise ValueError(f"config.optimizer must be one of {optim_lib.OPTIMIZERS}, got "
                     f"{cfg.optimizer!r}.")
  if cfg.schedule not in optim_lib.SCHEDULES:
    raise ValueError(f"config.schedule must be one of {optim_lib.SCHEDULES}, got "
                     f"{cfg.schedule!r}.")
  if not cfg.divergence_factor > 1:
    raise ValueError(f"config.divergence_factor must be > 1, got {cfg.divergence_factor!r}.")
  n_dev = len(jax.devices())
  if cfg.batch_size % n_dev:
    raise ValueError(f"config.batch_size={cfg.batch_size} must be a multiple of the "
                     f"{n_dev} devices it is split over.")
  lang = language(cfg)
  if isinstance(lang, data_lib.ByteCorpus):
    n = len(lang.tokens()) * (1 - lang.eval_fraction)
    if cfg.batch_size * (mc.seq_len + 1) > n:
      raise ValueError(f"config.batch_size={cfg.batch_size} x (seq_len+1)={mc.seq_len + 1} "
                       f"tokens is larger than the training data ({int(n)} bytes).")
  if lang.loss_skip >= mc.seq_len:
    raise ValueError(f"config.model.seq_len={mc.seq_len} must exceed the language's order.")
  return mc, lang


def loss_fn(mc: ModelConfig, params, scales, tokens, skip: int = 0):
  """Mean next-token cross-entropy (nats) over targets with index > skip.

  Concrete ``tokens`` outside [0, vocab_size) are a ValueError naming them; traced
  ones (inside ``jit``) give a NaN loss, which stops training (`Diverged`).
  """
  model_lib.check_token_ids(tokens, mc.vocab_size)
  logits = scales_lib.apply(mc, params, scales, tokens[:, :-1])
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  targets = tokens[:, 1:]
  nll = -jnp.take_along_axis(logp, jnp.clip(targets, 0, mc.vocab_size - 1)[..., None],
                             -1)[..., 0]
  nll = jnp.where(model_lib.valid_ids(targets, mc.vocab_size), nll, jnp.nan)
  return nll[:, skip:].mean()


def make_optimizer(cfg, scales, base_lr: float = None):
  """The optimizer of `cfg`; with base_lr=1 its updates are later multiplied by a traced rate."""
  sched = optim_lib.schedule(cfg.lr if base_lr is None else base_lr, name=cfg.schedule,
                             warmup=cfg.warmup, total_steps=cfg.steps)
  return optim_lib.make(cfg.optimizer, scales, sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                        scale_eps=cfg.scale_eps, weight_decay=cfg.weight_decay,
                        momentum=cfg.momentum)


def init_fn(cfg, mc: ModelConfig):
  """seed -> the step-0 `TrainState`, one compiled program for every seed."""
  sc = scales_lib.make_scales(mc, cfg.optimizer)

  def init(seed):
    params = scales_lib.init_params(jax.random.PRNGKey(seed), mc, sc)
    opt = make_optimizer(cfg, sc, base_lr=1.0)
    return TrainState(jnp.int32(0), params, opt.init(params), sc)
  return jax.jit(init)


def init_state(cfg, mc: ModelConfig, seed=None) -> TrainState:
  """The step-0 state of `cfg` (seed: cfg.seed unless given)."""
  return init_fn(cfg, mc)(cfg.seed if seed is None else seed)


def step_fn(cfg, mc: ModelConfig, skip: int):
  """One train step (state, tokens, lr) -> (state, loss); the base rate `lr` is traced,
  so one compiled program serves a whole learning-rate grid (and `vmap`s over it)."""
  def step(state: TrainState, tokens, lr):
    opt = make_optimizer(cfg, state.scales, base_lr=1.0)
    loss, grads = jax.value_and_grad(loss_fn, argnums=1)(mc, state.params, state.scales,
                                                         tokens, skip)
    updates, opt_state = opt.update(grads, state.opt_state, state.params)
    updates = jax.tree_util.tree_map(lambda u: lr * u, updates)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, opt_state, state.scales), loss
  return step


def make_step(cfg, mc: ModelConfig, skip: int):
  """The jitted train step: (state, tokens, lr) -> (state, loss)."""
  return jax.jit(step_fn(cfg, mc, skip), donate_argnums=0)


class Trainer:
  """Holds the jitted functions and the device mesh of one training config."""

  def __init__(self, cfg, devices=None):
    self.cfg = cfg
    self.mc, self.lang = validate(cfg)
    self.devices = list(devices) if devices is not None else jax.devices()
    if cfg.batch_size % len(self.devices):
      raise ValueError(f"config.batch_size={cfg.batch_size} must be a multiple of the "
                       f"{len(self.devices)} devices.")
    self.mesh = Mesh(np.array(self.devices), ("data",))
    self.data_sharding = NamedSharding(self.mesh, P("data"))
    self.replicated = NamedSharding(self.mesh, P())
    skip = self.lang.loss_skip
    self.skip = skip
    length = self.mc.seq_len + 1
    train = self.lang.sampler() if not isinstance(self.lang, data_lib.ByteCorpus) \
        else self.lang.sampler("train")
    ev = self.lang.sampler() if not isinstance(self.lang, data_lib.ByteCorpus) \
        else self.lang.sampler("eval")
    bs = cfg.batch_size
    self.set_run(cfg)
    self.sample = lambda k: train(k, bs, length)  # key -> (B, T+1) tokens, unplaced
    self._train_batch = jax.jit(lambda k: train(k, bs, length),
                                out_shardings=self.data_sharding)
    self._eval_batch = jax.jit(lambda k: ev(k, bs, length), out_shardings=self.data_sharding)
    self.step_fn = make_step(cfg, self.mc, skip)
    self._eval_loss = jax.jit(lambda s, t: loss_fn(self.mc, s.params, s.scales, t, skip))

  def set_run(self, cfg):
    """Per-run settings: the config (rate, step counts) and the data keys of its seed."""
    self.cfg = cfg
    self.data_key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1)
    self.eval_key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 2)

  def batch(self, step: int):
    return self._train_batch(jax.random.fold_in(self.data_key, step))

  def init(self, seed=None) -> TrainState:
    if not hasattr(self, "_init"):
      self._init = init_fn(self.cfg, self.mc)
    state = self._init(self.cfg.seed if seed is None else seed)
    return jax.device_put(state, self.replicated)

  def evaluate(self, state) -> float:
    tot = 0.0
    for i in range(self.cfg.eval_batches):
      tot += float(self._eval_loss(state, self._eval_batch(jax.random.fold_in(self.eval_key, i))))
    return tot / self.cfg.eval_batches


_TRAINERS = {}
_PER_RUN = ("lr", "seed", "steps", "log_every", "eval_every", "eval_batches", "ckpt_every",
            "divergence_factor")


def get_trainer(cfg, devices=None) -> "Trainer":
  """A `Trainer` for cfg, reusing the compiled programs of an earlier one that differs only
  in per-run settings (rate, seed, step counts; the rate is traced, the seed only picks keys)."""
  devices = list(devices) if devices is not None else jax.devices()
  d = cfg.to_dict()
  if d.get("schedule") != "constant":
    return Trainer(cfg, devices)
  key = (repr(sorted((k, v) for k, v in d.items() if k not in _PER_RUN)),
         tuple(x.id for x in devices))
  tr = _TRAINERS.get(key)
  if tr is None:
    tr = _TRAINERS[key] = Trainer(cfg, devices)
  else:
    validate(cfg)
    tr.set_run(cfg)
  return tr


def _checkpointer(path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp, ocp.CheckpointManager(
      os.path.abspath(path), options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def train(cfg, out: Optional[str] = None, *, devices=None, progress: bool = True,
          on_step=None):
  """Trains `cfg`; with `out`, writes the run folder, checkpoints and resumes from them.

  Returns the list of metric records (train loss every `log_every` steps with key
  'train_<step>', held-out loss with key 'eval_<step>'). Raises `Diverged` on a NaN or
  diverging loss, keeping the last good checkpoint.
  """
  tr = get_trainer(cfg, devices)
  state = tr.init()
  records = []
  mngr = ocp = None
  if out is not None:
    run = io.RunDir(out)
    run.start(program.config_dict(cfg))
    ocp, mngr = _checkpointer(os.path.join(out, "checkpoints"))
    last = mngr.latest_step()
    if last is not None:
      abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
      state = mngr.restore(last, args=ocp.args.StandardRestore(abstract))
      # train_t is the loss of the state after t updates, logged after checkpoint t was
      # taken; held-out eval_t is logged before it: keep what the resumed run won't redo.
      records = [r for r in run.records()
                 if (r["key"].startswith("train_") and r["step"] < last)
                 or (r["key"].startswith("eval_") and r["step"] <= last)]
      if any(r.get("key") == "done" for r in run.records()) and last == cfg.steps:
        return run.records()
  start = int(state.step)
  lr = jnp.float32(cfg.lr)
  first = next((r["loss"] for r in records if r["key"] == "train_0"), None)
  bar = tqdm.trange(start, cfg.steps, desc="lm.train", disable=not progress,
                    initial=start, total=cfg.steps)
  metrics_path = None if out is None else os.path.join(out, "metrics.jsonl")

  def flush():
    if metrics_path:
      io.write_jsonl(metrics_path, records)

  for t in bar:
    new_state, loss = tr.step_fn(state, tr.batch(t), lr)
    loss = float(loss)
    if first is None:
      first = loss
    if not math.isfinite(loss) or loss > cfg.divergence_factor * first:
      records.append(dict(key="diverged", step=t, loss=loss if math.isfinite(loss) else None))
      flush()
      if mngr is not None:
        mngr.wait_until_finished()
        for s in list(mngr.all_steps()):
          if s > t:
            mngr.delete(s)
        mngr.close()
      raise Diverged(f"loss {loss:.4g} at step {t} "
                     f"({'not finite' if not math.isfinite(loss) else f'above {cfg.divergence_factor:g} x the first loss {first:.4g}'});"
                     " stopped, the last good checkpoint is kept.")
    state = new_state
    if t % cfg.log_every == 0 or t == cfg.steps - 1:
      records.append(dict(key=f"train_{t}", step=t, loss=loss))
      bar.set_postfix(loss=f"{loss:.4f}")
    if (t + 1) % cfg.eval_every == 0 or t == cfg.steps - 1:
      records.append(dict(key=f"eval_{t + 1}", step=t + 1, eval_loss=tr.evaluate(state)))
    if mngr is not None and ((t + 1) % cfg.ckpt_every == 0 or t == cfg.steps - 1):
      flush()
      mngr.save(t + 1, args=ocp.args.StandardSave(state))
    if on_step is not None:
      on_step(t, loss)
  if mngr is not None:
    mngr.wait_until_finished()
    mngr.close()
    records.append(dict(key="done", step=cfg.steps))
    flush()
    _write_outputs(out, cfg, tr, records)
  return records


def _write_outputs(out, cfg, tr, records):
  tr_ = [(r["step"], r["loss"]) for r in records if r["key"].startswith("train_")]
  ev = [(r["step"], r["eval_loss"]) for r in records if r["key"].startswith("eval_")]
  h = tr.lang.entropy_rate()
  fig, ax = io.figure(figsize=(5, 3.5))
  ax.plot(*zip(*tr_), label="train")
  if ev:
    ax.plot(*zip(*ev), "o-", label="held-out")
  if h is not None:
    ax.axhline(h, color="k", ls="--", label=f"entropy rate {h:.4f}")
  ax.set_xlabel("step")
  ax.set_ylabel("loss (nats/token)")
  ax.legend()
  io.save_figure(fig, os.path.join(out, "loss.png"))
  lines = [f"# lm.train: {tr.mc.parameterization}, width {tr.mc.width}, depth {tr.mc.depth}",
           "", f"{tr.mc.num_params()} non-embedding parameters; {cfg.steps} steps of "
           f"{cfg.batch_size} x {tr.mc.seq_len} tokens; {cfg.optimizer} lr {cfg.lr:g}; "
           f"{len(tr.devices)} device(s).", "",
           f"final train loss {tr_[-1][1]:.4f}" + (f", held-out {ev[-1][1]:.4f}" if ev else "")]
  if h is not None:
    lines.append(f"; entropy rate of the language {h:.4f} nats (the irreducible loss).")
  io.write_text(os.path.join(out, "summary.md"), "\n".join(lines) + "\n")


def run_program(cfg, out):
  """The body of `python -m lm.train` (after `validate` passed)."""
  try:
    records = train(cfg, out)
  except Diverged as e:
    cli.fail("lm.train", e)
  last = [r for r in records if r["key"].startswith("eval_")]
  if last:
    print(f"lm.train: held-out loss {last[-1]['eval_loss']:.4f} after {cfg.steps} steps; "
          f"wrote {out}")


if __name__ == "__main__":
  from lm import program as lm_program  # pylint: disable=g-import-not-at-top
  lm_program.main("lm.train", "markov_tiny.py", "lm_train", validate, run_program)
