"""Many L-BFGS minimisations in one jitted, vmapped program.

The multi-start fits (Chinchilla approach 3, power laws, bootstrap refits)
solve the same small problem from thousands of starts. They run here as one
compiled program: a pool of `pool_size` slots advances together (`jax.vmap`
over slots) inside a `lax.while_loop`; when a slot's start finishes, its
result is written out and the slot takes the next start from the queue. So
every start gets as many iterations as it needs, and the batch never waits on
its slowest member with the others idle, with fixed shapes and no Python loop.

Each iteration is L-BFGS (Nocedal and Wright 2006, Alg. 7.4, two-loop
recursion) with one evaluation of value and gradient: at the trial step (the
unit step times a step scale), accepted when it meets the Armijo condition or
lowers the objective. A failed trial backtracks across iterations: the point
and memory stay, the step scale shrinks by 4 and the next iteration retries the
same direction shorter; once the scale falls below 1e-4 the memory is cleared
and steepest descent is tried. (Several trial lengths evaluated together per
iteration cost more evaluations than the backtracking saves: on the
Chinchilla grid, two trials (1, 0.1) with the memory cleared at every failure
took 138 iterations per start at 2 evaluations each, one trial 112 at 1.)

A start is `converged` when it passes a first-order optimality test, with
the objective's own scale s = max(|f|, 1):
  - ||grad f|| <= gtol * s; or
  - it has stalled: over the last `window` iterations its value fell by at
    most ftol * s (or no step length down to 1e-14 lowers it), and
    ||grad f|| <= 100 gtol * s (an optimum at the rounding floor of the
    objective, where the gradient cannot be driven lower).
A single short step is never enough: a start crossing a plateau (tiny
gradient, tiny steps, value still far above the optimum) keeps going while
it makes progress over the window. A start also stops, with `converged`
False, when it made none over the window without passing the test, at
`max_iter` iterations, when its value is not finite, or when the step scale
falls below 1e-14.
"""
import functools
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

# Relative trial step lengths of the line search, longest first (evaluated together).
_STEPS = (1.0,)
# A failed step multiplies the step scale by _SHRINK; below _CLEAR_BELOW the memory is
# cleared.
_SHRINK = 0.25
_CLEAR_BELOW = 1e-4
_ARMIJO = 1e-4
_MIN_SCALE = 1e-14
# A stalled start may stop with a gradient up to this many times `gtol`.
_STALL_GTOL_FACTOR = 100.0


class BatchedResult(NamedTuple):
  """Outcome of `minimize_many`, one row per start."""
  x: jax.Array          # (starts, params) final points.
  value: jax.Array      # (starts,) objective at `x`.
  grad_norm: jax.Array  # (starts,) gradient norm at `x`.
  num_iter: jax.Array   # (starts,) iterations used.
  converged: jax.Array  # (starts,) True where a tolerance was met.


class _Slot(NamedTuple):
  """State of one slot of the pool."""
  index: jax.Array    # which start it runs; num_starts when idle.
  fresh: jax.Array    # True until f and g at the start are computed.
  x: jax.Array
  f: jax.Array
  g: jax.Array
  s_hist: jax.Array   # (m, p) last steps, newest first.
  y_hist: jax.Array   # (m, p) last gradient changes.
  rho: jax.Array      # (m,) 1 / (y.s); 0 marks an empty slot.
  f_hist: jax.Array   # (window,) values before the last iterations, newest
                      # first; inf until that many iterations are done.
  scale: jax.Array    # step scale (shrinks after failed searches).
  it: jax.Array
  done: jax.Array
  converged: jax.Array


def _direction(g, s_hist, y_hist, rho):
  """L-BFGS two-loop recursion: approximately -H^{-1} g."""
  m = s_hist.shape[0]
  q = g
  alphas = []
  for i in range(m):  # newest to oldest
    a = rho[i] * jnp.dot(s_hist[i], q)
    q = q - a * y_hist[i]
    alphas.append(a)
  yy = jnp.dot(y_hist[0], y_hist[0])
  gamma = jnp.where((rho[0] > 0) & (yy > 0), 1.0 / (rho[0] * yy), 1.0)
  r = gamma * q
  for i in reversed(range(m)):  # oldest to newest
    b = rho[i] * jnp.dot(y_hist[i], r)
    r = r + s_hist[i] * (alphas[i] - b)
  return -r


def _step(fun, slot: _Slot, args, *, max_iter, gtol, ftol) -> _Slot:
  """One L-BFGS iteration of one slot (or the first evaluation of a start)."""
  f_and_g = jax.vmap(jax.value_and_grad(lambda x: fun(x, *args)))
  # A fresh start evaluates its own point (all trial steps zero).
  steps = jnp.where(slot.fresh, 0.0, jnp.asarray(_STEPS, slot.x.dtype) * slot.scale)
  empty = jnp.all(slot.rho == 0)
  gnorm = jnp.linalg.norm(slot.g)
  d = _direction(slot.g, slot.s_hist, slot.y_hist, slot.rho)
  sd = -slot.g / jnp.maximum(gnorm, 1.0)
  slope = jnp.dot(slot.g, d)
  use_sd = empty | ~(slope < 0)
  d = jnp.where(use_sd, sd, d)
  slope = jnp.where(use_sd, jnp.dot(slot.g, sd), slope)
  # Value and gradient at every trial point in one batched evaluation: the accepted
  # point's are kept, so no further evaluation is needed (a failed search keeps x, f, g).
  trial_f_raw, trial_g = f_and_g(slot.x[None, :] + steps[:, None] * d[None, :])
  trial_f = jnp.where(jnp.isfinite(trial_f_raw), trial_f_raw, jnp.inf)
  armijo = trial_f <= slot.f + _ARMIJO * steps * slope
  k = jnp.where(jnp.any(armijo), jnp.argmax(armijo), jnp.argmin(trial_f))
  moved = jnp.any(armijo) | (trial_f[k] < slot.f)
  k = jnp.where(slot.fresh, 0, k)
  take = slot.fresh | moved
  x_new = jnp.where(take, slot.x + steps[k] * d, slot.x)
  f_new = jnp.where(take, trial_f_raw[k], slot.f)
  g_new = jnp.where(take, trial_g[k], slot.g)
  s = x_new - slot.x
  y = g_new - slot.g
  sy = jnp.dot(s, y)
  keep = ~slot.fresh & moved & (sy > 1e-12 * jnp.dot(y, y)) & (sy > 0)
  s_hist = jnp.where(keep, jnp.roll(slot.s_hist, 1, 0).at[0].set(s),
                     slot.s_hist)
  y_hist = jnp.where(keep, jnp.roll(slot.y_hist, 1, 0).at[0].set(y),
                     slot.y_hist)
  rho = jnp.where(keep, jnp.roll(slot.rho, 1).at[0].set(1.0 / sy), slot.rho)
  failed = ~slot.fresh & ~moved
  # A failed step backtracks across iterations (same memory, hence the same direction, at
  # a shorter step); only below _CLEAR_BELOW is the memory dropped for steepest descent.
  clear = failed & (slot.scale * _SHRINK < _CLEAR_BELOW)
  s_hist = jnp.where(clear, 0.0, s_hist)
  y_hist = jnp.where(clear, 0.0, y_hist)
  rho = jnp.where(clear, 0.0, rho)
  scale = jnp.where(failed, slot.scale * _SHRINK,
                    jnp.where(moved & ~empty, 1.0,
                              jnp.minimum(slot.scale * 10.0, 1.0)))
  scale = jnp.where(slot.fresh, 1.0, scale)
  f_hist = jnp.where(slot.fresh, slot.f_hist,
                     jnp.roll(slot.f_hist, 1).at[0].set(slot.f))
  f_scale = jnp.maximum(jnp.abs(f_new), 1.0)
  g_norm = jnp.linalg.norm(g_new)
  # Stalled: no real decrease over the window, or none at any step length
  # down to _MIN_SCALE (the rounding floor), with a near-zero gradient.
  no_progress = (f_hist[-1] - f_new <= ftol * f_scale) | (scale < _MIN_SCALE)
  stalled = no_progress & (g_norm <= _STALL_GTOL_FACTOR * gtol * f_scale)
  conv = ((g_norm <= gtol * f_scale) | stalled) & jnp.isfinite(f_new)
  it = slot.it + jnp.where(slot.fresh, 0, 1)
  # A start that made no progress over the whole window stops either way (as not
  # converged unless the gradient test holds): running it to max_iter would cost
  # the grid's time without changing the best start.
  done = (conv | no_progress | ~jnp.isfinite(f_new) | (it >= max_iter))
  return slot._replace(fresh=jnp.zeros_like(slot.fresh), x=x_new, f=f_new,
                       g=g_new, s_hist=s_hist, y_hist=y_hist, rho=rho,
                       f_hist=f_hist, scale=scale, it=it, done=done,
                       converged=conv)


def minimize_many(fun: Callable[..., jax.Array], x0s: jax.Array,
                  shared_args: tuple = (),
                  per_start_args: Optional[tuple] = None, *,
                  max_iter: int = 500, gtol: float = 1e-8,
                  ftol: float = 1e-11, memory_size: int = 10,
                  window: int = 10, pool_size: int = 512) -> BatchedResult:
  """Minimises `fun(x, *per_start_args[i], *shared_args)` from every x0s[i].

  Args:
    fun: scalar objective, traceable by JAX; hashable (a module-level
      function), since it is a static argument of the compiled program.
    x0s: (starts, params) initial points.
    shared_args: arrays passed to `fun` after the per-start ones.
    per_start_args: arrays with a leading `starts` axis; row i goes with
      start i (e.g. bootstrap weights).
    max_iter: iteration cap per start.
    gtol: gradient-norm tolerance, relative to max(|f|, 1).
    ftol: relative decrease tolerance over `window` iterations.
    memory_size: L-BFGS history length.
    window: iterations over which a stall is measured (>= 1).
    pool_size: starts advanced together.

  Returns:
    A `BatchedResult` with one row per start.

  Raises:
    ValueError: a bad `max_iter`, `gtol`, `ftol`, `window` or an empty
      `x0s`.
  """
  x0s = jnp.asarray(x0s)
  if x0s.ndim != 2 or x0s.shape[0] == 0:
    raise ValueError(f"`x0s` must have shape (starts, params) with at least "
                     f"one start, got {x0s.shape}.")
  for name, value in (("max_iter", max_iter), ("window", window),
                      ("memory_size", memory_size),
                      ("pool_size", pool_size)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
        or value < 1:
      raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
  for name, value in (("gtol", gtol), ("ftol", ftol)):
    if not (np.isscalar(value) and np.isfinite(value) and value >= 0):
      raise ValueError(f"`{name}` must be a non-negative number, got "
                       f"{value!r}.")
  # Tolerances and the iteration cap are traced values, so changing them
  # reuses the compiled program.
  return _minimize_many(fun, x0s, tuple(shared_args),
                        tuple(per_start_args or ()), jnp.asarray(max_iter),
                        jnp.asarray(gtol, x0s.dtype),
                        jnp.asarray(ftol, x0s.dtype), memory_size=memory_size,
                        window=window, pool_size=pool_size)


@functools.partial(jax.jit, static_argnames=("fun", "memory_size", "window",
                                             "pool_size"))
def _minimize_many(fun, x0s, shared_args, per_start_args, max_iter, gtol,
                   ftol, *, memory_size, window, pool_size):
  """Jitted body of `minimize_many`."""
  num, p = x0s.shape
  pool = min(pool_size, num)
  dtype = x0s.dtype

  def args_of(index):
    safe = jnp.minimum(index, num - 1)
    return tuple(a[safe] for a in per_start_args) + tuple(shared_args)

  def load(slot: _Slot, index):
    """Puts start `index` (or nothing, when index == num) in a slot."""
    idle = index >= num
    x0 = x0s[jnp.minimum(index, num - 1)]
    zeros = jnp.zeros((memory_size, p), dtype)
    return _Slot(index=index, fresh=~idle, x=x0, f=jnp.asarray(jnp.inf, dtype),
                 g=jnp.zeros((p,), dtype), s_hist=zeros, y_hist=zeros,
                 rho=jnp.zeros((memory_size,), dtype),
                 f_hist=jnp.full((window,), jnp.inf, dtype),
                 scale=jnp.asarray(1.0, dtype), it=jnp.asarray(0),
                 done=idle, converged=jnp.asarray(False))

  step = functools.partial(_step, fun, max_iter=max_iter, gtol=gtol,
                           ftol=ftol)

  def advance(slot):
    new = step(slot, args_of(slot.index))
    return jax.tree.map(lambda a, b: jnp.where(slot.done, b, a), new, slot)

  out = BatchedResult(
      x=jnp.zeros((num, p), dtype), value=jnp.full((num,), jnp.nan, dtype),
      grad_norm=jnp.full((num,), jnp.nan, dtype),
      num_iter=jnp.zeros((num,), jnp.int32),
      converged=jnp.zeros((num,), bool))
  slots = jax.vmap(load, in_axes=(None, 0))(None, jnp.arange(pool))

  def cond(carry):
    slots, _, _ = carry
    return jnp.any(slots.index < num)

  def body(carry):
    slots, out, next_index = carry
    slots = jax.vmap(advance)(slots)
    finished = slots.done & (slots.index < num)
    target = jnp.where(finished, slots.index, num)  # num: dropped
    out = BatchedResult(
        x=out.x.at[target].set(slots.x, mode="drop"),
        value=out.value.at[target].set(slots.f, mode="drop"),
        grad_norm=out.grad_norm.at[target].set(
            jnp.linalg.norm(slots.g, axis=-1), mode="drop"),
        num_iter=out.num_iter.at[target].set(slots.it.astype(jnp.int32),
                                             mode="drop"),
        converged=out.converged.at[target].set(slots.converged, mode="drop"))
    rank = jnp.cumsum(finished) - 1
    new_index = jnp.where(finished, jnp.minimum(next_index + rank, num),
                          slots.index)
    reloaded = jax.vmap(load, in_axes=(None, 0))(None, new_index)
    slots = jax.tree.map(
        lambda r, s: jnp.where(
            finished.reshape((-1,) + (1,) * (r.ndim - 1)), r, s),
        reloaded, slots)
    return slots, out, next_index + jnp.sum(finished)

  _, out, _ = jax.lax.while_loop(cond, body, (slots, out, jnp.asarray(pool)))
  return out


def batched_lbfgs(fun, x0s, args: tuple = (), **kwargs) -> BatchedResult:
  """`minimize_many` with arguments shared by all starts."""
  return minimize_many(fun, x0s, tuple(args), None, **kwargs)


def best_start(result: BatchedResult, rtol: float = 1e-8) -> tuple:
  """(index, converged) of the start with the lowest finite objective.

  A converged start whose value is within `rtol` (relative, floor 1e-12)
  of the lowest is preferred, so ties at the optimum count as converged;
  a converged start stuck higher up (a stationary plateau) never stands in
  for a lower start that has not converged.

  Raises:
    ValueError: if no start has a finite objective.
  """
  value = np.asarray(result.value, np.float64)
  finite = np.isfinite(value)
  if not finite.any():
    raise ValueError("no start reached a finite objective.")
  best = float(np.min(value[finite]))
  tie = finite & np.asarray(result.converged) & (
      value <= best + rtol * max(abs(best), 1e-12))
  if tie.any():
    return int(np.argmin(np.where(tie, value, np.inf))), True
  return int(np.argmin(np.where(finite, value, np.inf))), False
