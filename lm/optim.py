"""SGD, Adam and AdamW from optax with per-parameter learning rates and Adam epsilons from `lm.scales`.

The muP rules (Yang et al. 2022, "Tensor Programs V", Table 3) and the depth-muP
rules (Yang et al. 2023, "Tensor Programs VI") are the `lr` and `eps` leaves of the
`Scales` pytree; this module only applies them. Adam's epsilon is scaled per
parameter by dividing the gradient by its width factor before `scale_by_adam`:
Adam(g / f) with epsilon e is Adam(g) with epsilon e f, so epsilon follows the
size of each parameter's gradient entries and does not swamp them at large width.
"""
from __future__ import annotations

import jax
import optax

from lm.scales import Scales

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine")


def scale_by_tree(tree) -> optax.GradientTransformation:
  """Multiplies each update leaf by the matching leaf of `tree`."""
  def init(params):
    del params
    return optax.EmptyState()

  def update(updates, state, params=None):
    del params
    return jax.tree_util.tree_map(lambda u, s: u * s, updates, tree), state
  return optax.GradientTransformation(init, update)


def schedule(learning_rate: float, *, name: str = "constant", warmup: int = 0,
             total_steps: int = 1, final_fraction: float = 0.1):
  """Base learning rate against step: linear warmup, then constant or cosine to `final_fraction`."""
  if name not in SCHEDULES:
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}.")
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be positive, got {learning_rate!r}.")
  if name == "constant":
    if warmup:
      return optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup),
                                   optax.constant_schedule(learning_rate)], [warmup])
    return optax.constant_schedule(learning_rate)
  return optax.warmup_cosine_decay_schedule(
      0.0, learning_rate, max(warmup, 1), max(total_steps, warmup + 1),
      end_value=learning_rate * final_fraction)


def make(name: str, scales: Scales, learning_rate, *, b1: float = 0.9, b2: float = 0.95,
         eps: float = 1e-8, scale_eps: bool = True, weight_decay: float = 0.0,
         momentum: float = 0.0) -> optax.GradientTransformation:
  """The optimizer `name` with the per-parameter rates of `scales`.

  Args:
    name: "sgd", "adam" or "adamw" (decoupled weight decay, Loshchilov & Hutter 2019, Alg. 2).
    scales: `Scales` built for the same optimizer family.
    learning_rate: base rate (float or optax schedule).
    eps: Adam epsilon at width factor 1; multiplied per parameter by `scales.eps`
      when `scale_eps`.
    weight_decay: AdamW decay, multiplied by each parameter's learning rate.
    momentum: SGD heavy-ball momentum (0: plain SGD).
  """
  if name not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")
  if weight_decay and name != "adamw":
    raise ValueError(f"weight_decay needs optimizer 'adamw', got {name!r}.")
  lr = learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)
  if name == "sgd":
    parts = [optax.trace(momentum)] if momentum else []
  else:
    parts = [scale_by_tree(jax.tree_util.tree_map(
        lambda e: 1.0 / e if scale_eps else 1.0 + 0.0 * e, scales.eps))]
    parts.append(optax.scale_by_adam(b1=b1, b2=b2, eps=eps))
    if name == "adamw":
      parts.append(optax.add_decayed_weights(weight_decay))
  parts += [scale_by_tree(scales.lr), optax.scale_by_learning_rate(lr)]
  return optax.chain(*parts)
