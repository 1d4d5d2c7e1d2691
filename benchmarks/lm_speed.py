"""Transformer training throughput (tokens/s), model FLOP utilisation, and muP against SP step time.

  python -m benchmarks.lm_speed [--suite=quick|full] [--out=DIR]

Peak: the median rate of a jit-compiled float32 square matmul on the same device
(2 n^3 FLOPs; n = 1024 on CPU, 8192 on an accelerator), the denominator of the
model FLOP utilisation (MFU, Chowdhery et al. 2022, "PaLM", App. B): training
FLOPs per token (6 N plus attention, `lm.config.ModelConfig.flops_per_token`) x
tokens/s / peak. The muP and SP models have the same shape and differ only in the
numbers of their `Scales` pytree, so their step times should agree within noise;
they are timed alternately (`harness.interleave`) and the ratio is reported.
Writes DIR/lm_speed.json; never a tracked file.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import harness

TITLE = "lm: training tokens/s, MFU against the measured peak matmul, muP vs SP step time"


def peak_matmul(n: int, repeats: int) -> dict:
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
  f = jax.jit(lambda a, b: a @ b)
  jax.block_until_ready(f(a, b))
  st = harness.stats([harness.timer(lambda: f(a, b))() for _ in range(repeats)])
  return dict(st, flops=2.0 * n ** 3, flops_per_s=2.0 * n ** 3 / st["median"])


def run(ctx) -> dict:
  from lm import train  # pylint: disable=g-import-not-at-top
  accel = jax.default_backend() != "cpu"
  if accel:
    shape = dict(width=1024, depth=8, n_heads=8, seq_len=512)
    batch, n_mm, reps = 32, 8192, 20
  elif ctx.full:
    shape = dict(width=512, depth=4, n_heads=8, seq_len=128)
    batch, n_mm, reps = 16, 1024, 10
  else:
    shape = dict(width=256, depth=4, n_heads=4, seq_len=128)
    batch, n_mm, reps = 16, 1024, 8
  peak = peak_matmul(n_mm, reps)
  ctx.log(f"peak matmul {peak['flops_per_s'] / 1e9:.1f} GFLOP/s")
  steps = {}
  trainers = {}
  for p in ("mup", "sp"):
    c = train.default_config()
    c.model.update(parameterization=p, **shape)
    c.data.update(vocab_size=256, order=1)
    c.batch_size = batch * len(jax.devices()) // len(jax.devices())
    tr = train.Trainer(c)
    state = [tr.init()]
    toks = tr.batch(0)
    lr = jnp.float32(1e-3)

    def one(tr=tr, state=state, toks=toks, lr=lr):
      s, loss = tr.step_fn(state[0], toks, lr)
      state[0] = s
      return loss
    jax.block_until_ready(one())  # compile
    steps[p] = harness.timer(one)
    trainers[p] = tr
  times = harness.interleave(steps, reps, log=ctx.log)
  mc = trainers["mup"].mc
  tokens = batch * mc.seq_len
  rows, details = [], dict(shape=shape, batch=batch, peak=peak,
                           flops_per_token=mc.flops_per_token(),
                           params=mc.num_params(embeddings=True))
  for p in ("mup", "sp"):
    st = harness.stats(times[p])
    tps = tokens / st["median"]
    mfu = mc.flops_per_token() * tps / peak["flops_per_s"]
    details[p] = dict(step=st, tokens_per_s=tps, mfu=mfu)
    rows.append(harness.row(f"{p} train step, {tokens} tokens", st,
                            note=f"{tps:,.0f} tokens/s, MFU {100 * mfu:.1f}%"))
    ctx.log(f"{p}: {tps:,.0f} tokens/s, MFU {100 * mfu:.1f}%")
  ratio = details["sp"]["step"]["median"] / details["mup"]["step"]["median"]
  details["sp_over_mup_step_time"] = ratio
  rows.append(harness.row("muP step vs SP step (same shape)", harness.stats(times["mup"]),
                          harness.stats(times["sp"]), reference_name="SP",
                          note=f"SP/muP median step time {ratio:.3f}"))
  return dict(rows=rows, details=details)


if __name__ == "__main__":
  harness.case_main(run)
