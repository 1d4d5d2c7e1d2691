"""The Huber loss used by the parametric scaling-law fits."""
import jax.numpy as jnp


def huber(residual, delta):
  """Huber (1964) loss: r^2/2 for |r| <= delta, delta (|r| - delta/2) beyond.

  Hoffmann et al. 2022, Sec. 3.3 (eq. 3): the robust loss on log-loss
  residuals, with delta = 1e-3 in that paper.
  """
  a = jnp.abs(residual)
  return jnp.where(a <= delta, 0.5 * residual**2, delta * (a - 0.5 * delta))
