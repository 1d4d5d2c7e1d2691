"""A CNN read through a channel-wise head (pooling, activation, then Dense): the structured
empirical NTK contracts its last convolution once per example; values equal the Jacobian
contraction in float64. `kernels.channelwise` tells such heads from ones that mix
channels or examples."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import channelwise, empirical_structured_flax
from kernels.empirical import empirical_ntk_fn

Z = jax.ShapeDtypeStruct((2, 4, 4, 3), jnp.float32)


@pytest.mark.parametrize("head", [
    lambda z: jnp.mean(nn.relu(z), axis=(1, 2)),
    lambda z: jnp.max(nn.gelu(z) * jax.nn.sigmoid(z), axis=(1, 2)),
    lambda z: nn.avg_pool(jnp.tanh(z), (2, 2), (2, 2)).reshape(2, -1, 3).sum(1),
    lambda z: jnp.transpose(jax.jit(nn.swish)(z), (0, 3, 1, 2)).mean((2, 3)) * 2.0,
], ids=["mean_relu", "max_gelu_sigmoid", "avgpool_sum", "transposed_jit"])
def test_heads_acting_per_example_and_channel(head):
  assert channelwise.is_channelwise(head, Z)


@pytest.mark.parametrize("head", [
    lambda z: jnp.mean(z, axis=(1, 2, 3))[:, None] * jnp.ones(3),  # sums over channels
    lambda z: jnp.mean(z, (1, 2)) @ jnp.ones((3, 3)),  # mixes channels
    lambda z: jnp.mean(z - z.mean(0), (1, 2)),  # mixes examples
    lambda z: (z / jnp.linalg.norm(z, axis=-1, keepdims=True)).mean((1, 2)),  # normalises channels
    lambda z: z.reshape(2, -1)[:, :3],  # flattens
    lambda z: jnp.roll(z.mean((1, 2)), 1, axis=-1),  # permutes channels
    lambda z: jnp.mean(z, (1, 2))[::-1],  # permutes examples
    lambda z: jax.lax.scan(lambda c, x: (c + x, c + x), jnp.zeros(z.shape[1:]), z)[1].mean((1, 2)),
    lambda z: jax.lax.reduce_window(z, 1.0, jax.lax.mul, (1, 1, 1, 3), (1,) * 4, "SAME").mean((1, 2)),
    lambda z: _mixing_derivative(z).mean((1, 2)),  # channel-wise values, mixing derivative
    lambda z: _custom_vjp_sin(z).mean((1, 2)),  # a backward rule cannot be read
], ids=["channel_sum", "matmul", "batch_centring", "channel_norm", "flatten", "roll", "reverse",
        "scan_over_examples", "window_product_over_channels", "custom_jvp_mixing",
        "custom_vjp"])
def test_heads_that_mix_are_refused(head):
  assert not channelwise.is_channelwise(head, Z)


@jax.custom_jvp
def _mixing_derivative(z):
  return jnp.sin(z)


@_mixing_derivative.defjvp
def _mixing_jvp(primals, tangents):
  (z,), (t,) = primals, tangents
  return jnp.sin(z), jnp.cos(z) * t + jnp.mean(t, axis=-1, keepdims=True)


@jax.custom_vjp
def _custom_vjp_sin(z):
  return jnp.sin(z)


_custom_vjp_sin.defvjp(lambda z: (jnp.sin(z), z), lambda z, g: (g * jnp.cos(z),))


class _CNN(nn.Module):
  head: str = "gap"

  @nn.compact
  def __call__(self, x):
    first = nn.relu(nn.Conv(4, (3, 3))(x))
    x = nn.Conv(3, (2, 2), strides=(2, 1), padding="VALID")(first)
    if self.head == "gap":
      x = jnp.mean(nn.relu(x), axis=(1, 2))
    elif self.head == "maxpool":
      x = nn.max_pool(nn.gelu(x), (2, 2), padding="SAME").max(axis=(1, 2))
    elif self.head == "standardise":  # mixes channels: no factorisation
      x = jnp.mean(jax.nn.standardize(x, axis=-1), axis=(1, 2))
    elif self.head == "skip":  # the first layer reaches the head directly
      x = jnp.mean(nn.relu(x), axis=(1, 2)) + jnp.mean(first[..., :3], axis=(1, 2))
    elif self.head == "flatten":
      x = nn.relu(x).reshape(x.shape[0], -1)
    return nn.Dense(3)(x)


@pytest.mark.parametrize("head, factorised, every_mode", [
    ("gap", True, True), ("maxpool", True, False), ("standardise", False, False),
    ("skip", False, False), ("flatten", False, False)])
def test_structured_ntk_with_and_without_the_factorised_head(head, factorised, every_mode):
  with jax.enable_x64(True):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 6, 5, 2)))
    m = _CNN(head)
    v = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), m.init(jax.random.PRNGKey(1), x))
    assert (empirical_structured_flax.channelwise_head(m, v, x) is not None) == factorised
    lrs = jax.tree_util.tree_map(lambda a: 0.5 + a.size % 3, v)  # per-leaf learning rates
    ref = _weighted_ntk(m.apply, v, x, lrs)  # (i, a, j, b), all five inputs
    tol = dict(rtol=1e-10, atol=1e-12 * float(jnp.abs(ref).max()))
    full = empirical_ntk_fn(m.apply, trace_axes=(), vmap_axes=0, implementation="structured",
                            learning_rates=lrs)
    np.testing.assert_allclose(full(x[:3], x[3:], v), jnp.transpose(ref, (0, 2, 1, 3))[:3, 3:],
                               **tol)
    if not every_mode:
      return
    np.testing.assert_allclose(full(x, None, v), jnp.transpose(ref, (0, 2, 1, 3)), **tol)
    diag = empirical_ntk_fn(m.apply, trace_axes=(), diagonal_axes=-1, vmap_axes=0,
                            implementation="structured", learning_rates=lrs)
    np.testing.assert_allclose(diag(x, None, v), jnp.einsum("iaja->ija", ref), **tol)
    traced = empirical_ntk_fn(m.apply, vmap_axes=0, implementation="structured",
                              learning_rates=lrs)
    np.testing.assert_allclose(traced(x[:3], x[3:], v), jnp.einsum("iaja->ij", ref)[:3, 3:] / 3,
                               **tol)


def _weighted_ntk(f, v, x, lrs):
  """sum_p lr_p df_a(x_i)/dp df_b(x_j)/dp from the full Jacobian, (i, a, j, b)."""
  jac = jax.jit(jax.jacobian(f))(v, x)
  return sum(jnp.einsum("iap,jbp->iajb", a.reshape(a.shape[:2] + (-1,)),
                        a.reshape(a.shape[:2] + (-1,))) * r
             for a, r in zip(jax.tree_util.tree_leaves(jac), jax.tree_util.tree_leaves(lrs)))


def _stax_cnn(tail, parameterization="ntk"):
  from kernels import stax  # pylint: disable=g-import-not-at-top
  kw = dict(parameterization=parameterization)
  convs = [stax.Conv(4, (3, 3), padding="SAME", W_std=1.5, b_std=0.1, **kw), stax.Relu(),
           stax.Conv(3, (2, 2), (2, 1), "VALID", W_std=1.3, b_std=None, **kw)]
  tails = {
      "gap": [stax.Gelu(), stax.GlobalAvgPool()],
      "pool_then_gap": [stax.Relu(), stax.AvgPool((2, 1)), stax.Erf(), stax.GlobalSumPool()],
      "layernorm": [stax.LayerNorm(axis=-1), stax.GlobalAvgPool()],  # mixes channels
      "flatten": [stax.Relu(), stax.Flatten()],
  }
  return stax.serial(*convs, *tails[tail], stax.Dense(3, 1.1, 0.3, **kw))


@pytest.mark.parametrize("tail, factorised, parameterization", [
    ("gap", True, "ntk"), ("gap", True, "mup"), ("pool_then_gap", True, "standard"),
    ("layernorm", False, "ntk"), ("flatten", False, "ntk")])
def test_stax_networks_with_and_without_the_channelwise_tail(tail, factorised, parameterization):
  """The same factorisation for kernels.stax networks (`empirical_structured.channelwise_tail`,
  the readout's multiplier included): equal to the Jacobian contraction in every mode."""
  from kernels import empirical_structured  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):
    net = _stax_cnn(tail, parameterization)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 6, 5, 2)))
    _, p = net.init_fn(jax.random.PRNGKey(1), x.shape)
    p = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), p)
    found = empirical_structured.channelwise_tail(net, p, x)
    assert (found is not None) == factorised
    lrs = jax.tree_util.tree_map(lambda a: 0.5 + a.size % 3, p)
    ref = _weighted_ntk(net.apply_fn, p, x, lrs)
    tol = dict(rtol=1e-10, atol=1e-12 * float(jnp.abs(ref).max()))
    kw = dict(vmap_axes=0, implementation="structured", learning_rates=lrs)
    full = empirical_ntk_fn(net.apply_fn, trace_axes=(), **kw)
    np.testing.assert_allclose(full(x[:3], x[3:], p), jnp.transpose(ref, (0, 2, 1, 3))[:3, 3:],
                               **tol)
    np.testing.assert_allclose(full(x, None, p), jnp.transpose(ref, (0, 2, 1, 3)), **tol)
    diag = empirical_ntk_fn(net.apply_fn, trace_axes=(), diagonal_axes=-1, **kw)
    np.testing.assert_allclose(diag(x, None, p), jnp.einsum("iaja->ija", ref), **tol)
    traced = empirical_ntk_fn(net.apply_fn, **kw)
    np.testing.assert_allclose(traced(x[:3], x[3:], p), jnp.einsum("iaja->ij", ref)[:3, 3:] / 3,
                               **tol)


def _transformed(fn):
  return lambda cls: nn.map_variables(cls, "params", trans_in_fn=lambda v: jax.tree_util.tree_map(
      lambda a: fn(a) if a.ndim >= 2 else a, v), init=True)


class _Mapped(nn.Module):
  """The last Conv's kernel enters with its output channels reversed, the Dense's doubled
  (``nn.map_variables``): the layers do not use their parameters as stored."""
  which: str

  @nn.compact
  def __call__(self, x):
    conv = _transformed(lambda k: k[..., ::-1])(nn.Conv) if self.which == "conv" else nn.Conv
    dense = _transformed(lambda w: 2.0 * w)(nn.Dense) if self.which == "dense" else nn.Dense
    z = conv(4, (2, 2))(nn.relu(nn.Conv(3, (3, 3))(x)))
    return dense(2)(jnp.tanh(z).mean((1, 2)))


class _CountDependent(nn.Module):
  """A head that mixes channels only when it sees one example."""

  @nn.compact
  def __call__(self, x):
    z = nn.Conv(4, (2, 2))(nn.relu(nn.Conv(3, (3, 3))(x)))
    h = jnp.tanh(z).mean((1, 2))
    if z.shape[0] == 1:
      h = h @ (jnp.eye(4) + 0.5)
    return nn.Dense(2)(h)


@pytest.mark.parametrize("case", ["conv", "dense", "count_dependent"])
def test_parameters_used_otherwise_than_stored_and_shape_dependent_heads(case):
  """Kernels transformed on their way into a layer are read through autodiff (the
  structured form would differentiate the stored ones: a scaled Dense kernel gave
  a wrong NTK), and a head is analysed at x2's shape too."""
  with jax.enable_x64(True):
    m = _CountDependent() if case == "count_dependent" else _Mapped(case)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5, 5, 2)))
    x1, x2 = x[:3], x[3:]
    v = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), m.init(jax.random.PRNGKey(0), x1))
    if case != "count_dependent":
      assert empirical_structured_flax.channelwise_head(m, v, x1) is None
      assert empirical_structured_flax.structured_ntk(m, x1, None, v, (), ()) is None
    jac = lambda xs: jax.tree_util.tree_leaves(jax.jacobian(m.apply)(v, xs))
    ref = sum(jnp.einsum("iap,jbp->ijab", a.reshape(a.shape[:2] + (-1,)),
                         b.reshape(b.shape[:2] + (-1,))) for a, b in zip(jac(x1), jac(x2)))
    got = empirical_ntk_fn(m.apply, trace_axes=(), vmap_axes=0, implementation="structured")(
        x1, x2, v)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12 * float(jnp.abs(ref).max()))
