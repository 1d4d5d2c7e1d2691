"""Finite-width networks trained like the DMFT describes them, vmapped over seeds.

The network is written once with `kernels.stax` under `kernels.parameterization`
mup (mean-field form: readout 1/(gamma0 N), SGD rate lr gamma0^2 N on every
layer), run through its Flax module (`kernels.flax_module`), and trained by
full-batch gradient descent with `kernels.optim.sgd`, so that "the same
parameterization and learning rate" as the DMFT holds by construction.
"""
import dataclasses
import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dmft import network
from kernels import validation as val
from kernels import empirical
from kernels import flax_module
from kernels import optim
from kernels import stax


def build_network(width, **kwargs):
  """The mup (depth_mup) network the solvers' conveniences describe (`dmft.network.build`)."""
  return network.build(width, **kwargs)


def _resolve(net, X, y, width, network_kwargs):
  """(net, X, y): ``net`` a stax network (at ``width`` when given), or the legacy form
  ``(X, y, width=N, **network_kwargs)`` that builds it."""
  if isinstance(net, stax.Layer):
    if network_kwargs:
      raise ValueError(f"network settings {sorted(network_kwargs)} are read from net; "
                       "pass them to the network description instead.")
    if width is not None:
      net = network.with_width(net, width)
    else:
      network.read(net)
    return net, X, y
  if y is not None:
    raise TypeError("train with train_ensemble(net, X, y, ...) or the form "
                    "train_ensemble(X, y, width=N, **network_settings).")
  if width is None:
    raise ValueError("width is required when the network is built from settings.")
  return network.build(width, **network_kwargs), net, X


@dataclasses.dataclass(frozen=True)
class EnsembleResult:
  """Training curves of an ensemble of one width.

  Attributes:
    width: N.
    loss: (seeds, steps+1) train loss.
    f_train: (seeds, steps+1, P).
    f_test: (seeds, steps+1, P_test) or None.
    test_loss: (seeds, steps+1) or None.
    ntk_initial, ntk_final: (seeds, P, P) empirical NTKs (in units of the
      base learning rate) at steps 0 and T, or None.
  """
  width: int
  loss: np.ndarray
  f_train: np.ndarray
  f_test: Optional[np.ndarray]
  test_loss: Optional[np.ndarray]
  ntk_initial: Optional[np.ndarray]
  ntk_final: Optional[np.ndarray]


def _negate_readout(params):
  """Antithetic partner: the readout weight (last Dense) with flipped sign."""
  last = params[-1]
  return params[:-1] + ((-last[0],) + tuple(last[1:]),)


def train_ensemble(net, X, y=None, *, width=None, n_seeds=8, seed=0, steps=50,
                   lr=1.0, X_test=None, y_test=None, ntk=True, antithetic=True,
                   **network_kwargs) -> EnsembleResult:
  """Trains `n_seeds` copies of ``net`` by full-batch GD, vmapped over seeds.

  The networks are ``net`` itself (its parameterization, activation, depth and
  residual blocks; the same object `dmft.solve` reads), run through its Flax module
  and trained with `kernels.optim.sgd`, so theory and finite networks agree by
  construction. ``train_ensemble(X, y, width=N, **settings)`` builds the network from
  `dmft.network.build` settings instead.

  Args:
    net: a `kernels.stax` network that `dmft.solve` reads.
    X, y: training data (P, D), (P,).
    width: hidden width N substituted into ``net`` (default: the width it has).
    n_seeds: ensemble size (even when antithetic).
    seed: base seed.
    steps: gradient-descent steps.
    lr: base learning rate (the optimizer applies lr gamma0^2 N per layer).
    X_test, y_test: optional test data.
    ntk: also return the empirical NTK at the first and last step.
    antithetic: pair each seed with the network whose readout weights are
      negated (same distribution; cancels the initial-output fluctuation in
      the ensemble mean).
    **network_kwargs: only with the settings form (`dmft.network.build`).

  Returns:
    An `EnsembleResult`.
  """
  net, X, y = _resolve(net, X, y, width, network_kwargs)
  width = network.read(net).width
  x = val.as_inputs(X, "X")
  p_train = x.shape[0]
  yy = val.as_targets(y, p_train, "y")
  n_seeds = val.check_int(n_seeds, "n_seeds", minimum=1)
  steps = val.check_int(steps, "steps", minimum=1)
  lr = val.check_positive_number(lr, "lr")
  if antithetic and n_seeds % 2:
    raise ValueError(f"n_seeds must be even with antithetic=True, got "
                     f"{n_seeds}")
  xt = None if X_test is None else val.as_inputs(X_test, "X_test")
  out = _train(net, x, yy, xt, val.seed_key(seed), n_seeds, steps, lr,
               bool(ntk), bool(antithetic))
  out = jax.device_get(out)
  test_loss = None
  if xt is not None and y_test is not None:
    yt = np.asarray(val.as_targets(y_test, xt.shape[0], "y_test"))
    test_loss = 0.5 * np.mean((out["f_test"] - yt) ** 2, axis=-1)
  return EnsembleResult(
      width=int(width), loss=out["loss"], f_train=out["f_train"],
      f_test=out.get("f_test"), test_loss=test_loss,
      ntk_initial=out.get("ntk0"), ntk_final=out.get("ntk1"))


def apply_function(net, x_shape):
  """apply(params, x) through the network's Flax module (stax params in, same outputs)."""
  del x_shape
  module = flax_module.to_flax(net)

  def flax_apply(params, x):
    return module.apply(flax_module.to_flax_params(net, params), x)

  return flax_apply


def empirical_ntk(net, params, x):
  """Learning-rate-weighted empirical NTK sum_theta lr_theta df/dtheta df/dtheta."""
  ntk_fn = empirical.empirical_ntk_fn(apply_function(net, x.shape),
                                      learning_rates=optim.learning_rates(net, params))
  return ntk_fn(x, None, params)


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 8, 9))
def _train(net, x, y, xt, key, n_seeds, steps, lr, ntk, antithetic):
  n_init = n_seeds // 2 if antithetic else n_seeds
  keys = jax.random.split(key, n_init)
  params = jax.vmap(lambda k: net.init_fn(k, x.shape)[1])(keys)
  if antithetic:
    neg = _negate_readout(params)
    params = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]),
                                    params, neg)
  return _train_from(net, x, y, xt, params, steps, lr, ntk)


def _train_from(net, x, y, xt, params, steps, lr, ntk):
  """Full-batch GD of a batch of networks (leading axis of `params`), vmapped."""
  net_apply = apply_function(net, x.shape)
  opt = optim.sgd(net, lr)
  x_all = x if xt is None else jnp.concatenate([x, xt])
  p = x.shape[0]

  def apply(params, inputs):
    return net_apply(params, inputs)[:, 0]

  def loss_fn(params):
    return 0.5 * jnp.mean((apply(params, x) - y) ** 2)

  def one(params):
    state = opt.init(params)

    def step(carry, _):
      prm, st = carry
      f_all = apply(prm, x_all)
      grads = jax.grad(loss_fn)(prm)
      upd, st = opt.update(grads, st, prm)
      prm = jax.tree_util.tree_map(lambda a, b: a + b, prm, upd)
      return (prm, st), f_all

    (final, _), fs = jax.lax.scan(step, (params, state), None, length=steps)
    fs = jnp.concatenate([fs, apply(final, x_all)[None]])
    out = dict(f_train=fs[:, :p],
               loss=0.5 * jnp.mean((fs[:, :p] - y) ** 2, axis=-1))
    if xt is not None:
      out["f_test"] = fs[:, p:]
    if ntk:
      out["ntk0"] = empirical_ntk(net, params, x)
      out["ntk1"] = empirical_ntk(net, final, x)
    return out

  return jax.vmap(one)(params)


def train_widths(net, X, y, widths: Sequence[int] = None, **kwargs):
  """`train_ensemble` of ``net`` at each width: ``train_widths(net, X, y, widths)``.

  (Also ``train_widths(X, y, widths, **settings)``, the network built from settings.)
  """
  if not isinstance(net, stax.Layer):
    if widths is not None:
      raise TypeError("train_widths takes (net, X, y, widths) or (X, y, widths, **settings).")
    return [train_ensemble(net, X, width=w, **kwargs) for w in y]
  if widths is None or len(widths) == 0:
    raise ValueError("widths must list at least one width.")
  return [train_ensemble(net, X, y, width=w, **kwargs) for w in widths]


@dataclasses.dataclass(frozen=True)
class SplitPairs:
  """Losses of two independent width-N networks and of their union (width 2N).

  Attributes:
    width: N.
    loss_a, loss_b: (pairs, steps+1) train losses of the two width-N networks.
    loss_union: (pairs, steps+1) train loss of the width-2N network whose
      hidden units are those of a and b together.
  """
  width: int
  loss_a: np.ndarray
  loss_b: np.ndarray
  loss_union: np.ndarray

  @property
  def difference(self) -> np.ndarray:
    """(pairs, steps+1): (loss_a + loss_b) / 2 - loss_union."""
    return 0.5 * (self.loss_a + self.loss_b) - self.loss_union


def _union(params_a, params_b):
  """Parameters of the width-2N two-layer network made of the units of a and b."""
  (w_a, b_a), act, (v_a, c_a) = params_a
  (w_b, b_b), _, (v_b, _) = params_b
  hidden_b = None if b_a is None else jnp.concatenate([b_a, b_b], -1)
  return ((jnp.concatenate([w_a, w_b], -1), hidden_b), act,
          (jnp.concatenate([v_a, v_b], -2), c_a))


def train_split_pairs(net, X, y=None, *, width=None, n_pairs=8, seed=0, steps=50,
                      lr=1.0, **network_kwargs) -> SplitPairs:
  """Trains pairs of width-N two-layer networks and, from the same units, width 2N.

  A variance-reduced estimator of the finite-width bias (the 1/N term of the
  ensemble-mean loss; Bordelon and Pehlevan 2023, "Dynamics of Finite Width
  Kernel and Prediction Fluctuations in Mean Field Neural Networks", Eq. 3):
  in the mean-field parameterization the union network's output at
  initialisation is the average of the two halves' outputs, and its empirical
  measure of hidden units is the average of theirs, so the O(1/sqrt(N))
  fluctuations, linear in that measure, cancel in
  ``(loss_a + loss_b) / 2 - loss_union`` to first order. Its mean is
  bias(N) - bias(2N) (= bias(N) / 2 if bias ~ 1/N) and its spread is
  O(1/N), not O(1/sqrt(N)): a few pairs resolve the 1/N law that thousands of
  independent seeds would need otherwise. Two-layer networks only: the union of
  two deeper networks is not a sample of the wider one (no cross weights).
  """
  net, X, y = _resolve(net, X, y, width, network_kwargs)
  arch = network.read(net)
  width = arch.width
  x = val.as_inputs(X, "X")
  yy = val.as_targets(y, x.shape[0], "y")
  n_pairs = val.check_int(n_pairs, "n_pairs", minimum=1)
  steps = val.check_int(steps, "steps", minimum=1)
  lr = val.check_positive_number(lr, "lr")
  if arch.kind != "two_layer":
    raise ValueError("train_split_pairs needs two-layer networks (one hidden layer, "
                     f"no residual blocks), got a {arch.kind} network of depth {arch.depth}.")
  wide = network.with_width(net, 2 * width)
  keys = jax.random.split(val.seed_key(seed), 2 * n_pairs)
  params = jax.vmap(lambda k: net.init_fn(k, x.shape)[1])(keys)
  a = jax.tree_util.tree_map(lambda t: t[:n_pairs], params)
  b = jax.tree_util.tree_map(lambda t: t[n_pairs:], params)
  union = jax.vmap(_union)(a, b)
  halves = jax.device_get(_train_jit(net, x, yy, None, params, steps, lr, False))
  joined = jax.device_get(_train_jit(wide, x, yy, None, union, steps, lr, False))
  return SplitPairs(width=int(width), loss_a=halves["loss"][:n_pairs],
                    loss_b=halves["loss"][n_pairs:], loss_union=joined["loss"])


_train_jit = jax.jit(_train_from, static_argnums=(0, 5, 7))
