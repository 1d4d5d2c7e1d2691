"""The structured empirical NTK (per-layer contractions for Dense and Conv layers) equals
the contraction of the full Jacobians and the NTK-vector products, in float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import empirical_structured
from kernels import stax
from kernels.empirical import empirical_ntk_fn


def _cnn():
  return stax.serial(
      stax.Conv(4, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), stax.Relu(),
      stax.Conv(3, (2, 2), (2, 1), "VALID", W_std=1.3, b_std=0.2,
                dimension_numbers=("NHWC", "OIHW", "NCHW")), stax.Erf(),
      stax.Conv(3, (3, 1), padding="CIRCULAR", W_std=1.2, dimension_numbers=("NCHW", "HWIO", "NHWC")),
      stax.Relu(), stax.GlobalAvgPool(), stax.Dense(3, 1.1, 0.3))


def _jacobian_ntk(apply_fn, params, x1, x2):
  """Theta[i, j, a, b] = sum_p df_a(x1_i)/dp df_b(x2_j)/dp, from jax.jacobian."""
  jac = jax.jit(jax.jacobian(apply_fn))
  j1 = jax.tree_util.tree_leaves(jac(params, x1))
  j2 = j1 if x2 is x1 else jax.tree_util.tree_leaves(jac(params, x2))
  out = 0.0
  for a, b in zip(j1, j2):
    out = out + jnp.einsum("iap,jbp->ijab", a.reshape(a.shape[:2] + (-1,)),
                           b.reshape(b.shape[:2] + (-1,)))
  return out


def test_cnn_is_structured_attention_is_not():
  assert empirical_structured.supports(_cnn().apply_fn)
  att = stax.serial(stax.Dense(4), stax.GlobalSelfAttention(4, 4, 4, 1), stax.GlobalAvgPool(),
                    stax.Dense(1))
  assert not empirical_structured.supports(att.apply_fn)
  assert not empirical_structured.supports(lambda p, x: x)


def _cnn_case():
  net = _cnn()
  x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 5, 4, 2)))
  shapes = jax.eval_shape(lambda: net.init_fn(jax.random.PRNGKey(2), x.shape)[1])
  rng = np.random.default_rng(2)
  params = jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(size=s.shape)), shapes)
  ref = np.asarray(_jacobian_ntk(net.apply_fn, params, x, x))
  return net, x, params, ref, dict(rtol=1e-10, atol=1e-12 * np.abs(ref).max())


def test_cnn_structured_equals_jacobian_contraction():
  with jax.enable_x64(True):
    net, x, params, ref, tol = _cnn_case()
    full = empirical_ntk_fn(net.apply_fn, trace_axes=(), implementation="structured")
    np.testing.assert_allclose(full(x[:3], x[3:], params), ref[:3, 3:], **tol)
    np.testing.assert_allclose(full(x, None, params), ref, **tol)


@pytest.mark.slow
def test_cnn_structured_equals_ntvp_traced_and_diagonal():
  with jax.enable_x64(True):
    net, x, params, ref, tol = _cnn_case()
    x1, x2 = x[:3], x[3:]
    ntvp = empirical_ntk_fn(net.apply_fn, trace_axes=(), implementation="ntvp")(x1, x2, params)
    np.testing.assert_allclose(ntvp, ref[:3, 3:], **tol)
    traced = empirical_ntk_fn(net.apply_fn, implementation="structured")(x1, x2, params)
    np.testing.assert_allclose(traced, np.trace(ref[:3, 3:], axis1=2, axis2=3) / 3, **tol)
    diag = empirical_ntk_fn(net.apply_fn, trace_axes=(), diagonal_axes=-1,
                            implementation="structured")(x, None, params)
    np.testing.assert_allclose(diag, np.diagonal(ref, axis1=2, axis2=3), **tol)


@pytest.mark.parametrize("mode", ["full", "diag", "trace"])
@pytest.mark.parametrize("same", [False, True])
def test_gram_and_jacobian_orders_agree(mode, same):
  """Both orders of one layer's sum over position pairs, on random patches and cotangents."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(3)
    P1, G1 = rng.normal(size=(4, 6, 5)), rng.normal(size=(3, 4, 6, 2))
    P2, G2 = (P1, G1) if same else (rng.normal(size=(3, 6, 5)), rng.normal(size=(3, 3, 6, 2)))
    n2 = P2.shape[0]
    # Direct sum: Theta = cw sum_{s,t} (P1_s . P2_t)(G1_as . G2_bt) + cb (sum_s G1_as).(sum_t G2_bt)
    direct = (0.7 * np.einsum("isf,jtf,aiso,bjto->iajb", P1, P2, G1, G2)
              + 0.2 * np.einsum("aiso,bjto->iajb", G1, G2))
    k = G1.shape[0]

    @jax.jit
    def both_orders(P1, P2, G1, G2):
      got = {}
      for order in ("gram", "jacobian"):
        terms, rest = empirical_structured.layer_terms(
            P1, P1 if same else P2, G1, G1 if same else G2, 0.7, 0.2, mode, same, order)
        if mode == "full":
          got[order] = empirical_structured._full(terms, k, 4, n2, same) + rest
        else:
          spec = "iam,jam->ija" if mode == "diag" else "iam,jam->ij"
          got[order] = rest + sum(jnp.einsum(spec, a1, a2) * (x[..., None] if jnp.ndim(x) and
                                                              mode == "diag" else x)
                                  for a1, a2, x in terms)
      return got

    got = both_orders(P1, P2, G1, G2)
    want = {"full": direct, "diag": np.einsum("iaja->ija", direct),
            "trace": np.einsum("iaja->ij", direct)}[mode]
    for order, value in got.items():
      np.testing.assert_allclose(value, want, rtol=1e-11, err_msg=order)


@pytest.mark.parametrize("k,n", [(10, 30), (1, 600)])
def test_symmetric_blocks_equal_the_full_product(k, n):
  """x2 = x1: the blocks above the diagonal, mirrored, are the whole (n k, n k) matrix."""
  rng = np.random.default_rng(4)
  A = rng.normal(size=(n, k, 7)).astype(np.float32)
  B = rng.normal(size=(n, k, 3)).astype(np.float32)
  X = rng.normal(size=(n, n)).astype(np.float32)
  X = X @ X.T
  terms = [(A, A, X), (B, B, 0.5)]
  got, want = jax.jit(lambda t: (empirical_structured._full_symmetric(t, k, n),
                                  empirical_structured._full(t, k, n, n, same=False)))(terms)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))


def test_flax_cnn_structured_equals_jacobian_contraction():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from kernels import empirical_structured_flax  # pylint: disable=g-import-not-at-top

  class CNN(nn.Module):
    norm: bool = False

    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Conv(4, (3, 3))(x))
      x = nn.relu(nn.Conv(3, (2, 2), strides=(2, 1), padding="VALID")(x))
      if self.norm:
        x = nn.LayerNorm()(x)
      return nn.Dense(3)(jnp.mean(x, axis=(1, 2)))

  with jax.enable_x64(True):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 6, 5, 2)))
    for norm in (False, True):
      m = CNN(norm)
      v = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), m.init(jax.random.PRNGKey(0), x))
      ref = _jacobian_ntk(m.apply, v, x, x)
      got = empirical_ntk_fn(m.apply, trace_axes=(), vmap_axes=0, implementation="structured")
      np.testing.assert_allclose(got(x, None, v), ref, rtol=1e-10,
                                 atol=1e-12 * float(jnp.abs(ref).max()))
      # LayerNorm has parameters of its own: NTK-vector products instead, same values.
      direct = empirical_structured_flax.structured_ntk(m, x, None, v, (), ())
      assert (direct is None) == norm


@pytest.mark.parametrize("layer", [
    lambda: stax.ConvLocal(3, (2, 2), None, "VALID", 1.2, 0.1),
    lambda: stax.ConvTranspose(3, (2, 2), (2, 2), "VALID", 1.2, 0.1)])
def test_conv_subclasses_are_not_taken_for_conv(layer):
  """ConvLocal (untied weights) and ConvTranspose subclass Conv but are other maps: the
  structured form now falls back for them (it returned errors of 32% and 233%)."""
  net = stax.serial(layer(), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(2, 1.0, 0.1))
  assert not empirical_structured.supports(net.apply_fn)
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 4, 2), jnp.float64)
    _, params = net.init_fn(jax.random.PRNGKey(0), x.shape)
    ref = _jacobian_ntk(net.apply_fn, params, x, x)
    got = empirical_ntk_fn(net.apply_fn, trace_axes=(), implementation="structured")
    np.testing.assert_allclose(got(x, None, params), ref, rtol=1e-10, atol=1e-14)


def test_flax_layers_that_compute_something_else_fall_back():
  """nn.Dense / nn.Conv with a custom dot_general or conv_general_dilated, or a subclass
  with its own __call__, are not x . kernel + bias (errors of 2-54% before)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  twice_dot = lambda *a, **k: 2 * jax.lax.dot_general(*a, **k)
  twice_conv = lambda *a, **k: 2 * jax.lax.conv_general_dilated(*a, **k)

  class Twice(nn.Dense):
    @nn.compact
    def __call__(self, x):
      kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
      return 2 * (x @ kernel) + self.param("bias", self.bias_init, (self.features,))

  class Net(nn.Module):
    kind: str

    @nn.compact
    def __call__(self, x):
      conv = (nn.Conv(3, (2, 2), conv_general_dilated=twice_conv) if self.kind == "conv"
              else nn.Conv(3, (2, 2)))
      x = jnp.mean(nn.relu(conv(x)), axis=(1, 2))
      head = {"dot": nn.Dense(2, dot_general=twice_dot), "sub": Twice(2)}.get(
          self.kind, nn.Dense(2))
      return head(x)

  with jax.enable_x64(True):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 4, 2)))
    for kind in ("conv", "dot", "sub"):
      m = Net(kind)
      v = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64),
                                 m.init(jax.random.PRNGKey(0), x))
      ref = _jacobian_ntk(m.apply, v, x, x)
      got = empirical_ntk_fn(m.apply, trace_axes=(), vmap_axes=0, implementation="structured")
      np.testing.assert_allclose(got(x, None, v), ref, rtol=1e-10,
                                 atol=1e-12 * float(jnp.abs(ref).max()), err_msg=kind)
