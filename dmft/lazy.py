"""The lazy (NTK) limit of gradient descent and stability checks."""
import jax
import numpy as np

from dmft import errors


def gd_error(ntk_train, y, lr, steps):
  """Error y - f(t) of discrete gradient descent with a fixed NTK.

  Jacot et al. (2018), Eq. (8) in discrete time:
  f_{t+1} = f_t + (lr/P) Theta (y - f_t), f_0 = 0.

  Returns:
    (steps + 1, P) array of y - f(t).
  """
  p = ntk_train.shape[0]

  def step(err, _):
    return err - lr / p * (ntk_train @ err), err

  _, errs = jax.lax.scan(step, y, None, length=steps + 1)
  return errs


def check_stable(ntk_train, lr, p, gamma0):
  """Raises DivergenceError when lazy gradient descent cannot converge."""
  lam = float(np.max(np.linalg.eigvalsh(np.asarray(ntk_train, np.float64))))
  if lr * lam / p >= 2.0:
    raise errors.DivergenceError(
        f"lr={lr} is above the stability limit 2P/lambda_max(NTK) = "
        f"{2 * p / lam:.4g}: gradient descent diverges (gamma0={gamma0})", 0)


def check_finite(loss, lr, gamma0, blowup=1e6):
  """Raises DivergenceError when the loss is non-finite or explodes."""
  loss = np.asarray(loss)
  bad = ~np.isfinite(loss) | (loss > blowup * max(float(loss[0]), 1e-12))
  if np.any(bad):
    step = int(np.argmax(bad))
    raise errors.DivergenceError(
        f"training diverged at step {step} (loss {loss[step]:.3g}) with lr="
        f"{lr}, gamma0={gamma0}: lower lr", step)
