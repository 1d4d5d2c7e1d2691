"""The transformer, its parameterization pytree and optimizers: closed forms and bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import parameterization as param_lib
from lm import optim
from lm import scales as S
from lm.config import ModelConfig

TINY = dict(vocab_size=16, width=16, depth=2, n_heads=2, seq_len=8)


def leaf(tree, *path):
  for p in path:
    tree = tree[p]
  return float(tree)


def test_bad_settings_name_the_setting():
  with pytest.raises(ValueError, match="n_heads=3 does not divide width=16"):
    ModelConfig(**{**TINY, "n_heads": 3})
  with pytest.raises(ValueError, match="unknown parameterization 'ntk2'"):
    ModelConfig(**{**TINY, "parameterization": "ntk2"})
  with pytest.raises(ValueError, match="positions"):
    ModelConfig(**{**TINY, "positions": "sinusoid"})
  c = ModelConfig(**TINY)
  sc = S.make_scales(c)
  p = S.init_params(jax.random.PRNGKey(0), c, sc)
  with pytest.raises(ValueError, match="exceeds seq_len=8"):
    S.apply(c, p, sc, jnp.zeros((1, 9), jnp.int32))
  with pytest.raises(ValueError, match="optimizer"):
    S.make_scales(c, "lion")


def test_settings_use_the_shared_validators():
  for field, value in (("gamma0", float("inf")), ("w_std", 0.0), ("branch_exponent", 1.5),
                       ("width", 0), ("head_dim", 0)):
    with pytest.raises(ValueError, match=field):
      ModelConfig(**{**TINY, field: value})
  with pytest.raises(TypeError, match="depth"):
    ModelConfig(**{**TINY, "depth": 2.0})


def test_token_ids_outside_the_vocabulary():
  """Concrete ids out of [0, vocab): a ValueError naming tokens; traced ids: NaN, never the
  numbers of another token (indexing wraps -1 to the last row of the table)."""
  from lm import train  # pylint: disable=g-import-not-at-top
  c = ModelConfig(**TINY)
  sc = S.make_scales(c)
  p = S.init_params(jax.random.PRNGKey(0), c, sc)
  bad = jnp.array([[3, 20, -1, 2]], jnp.int32)
  with pytest.raises(ValueError, match=r"tokens must be token ids in \[0, 16\).*\[-1, 20\]"):
    S.apply(c, p, sc, bad)
  with pytest.raises(ValueError, match="tokens must be token ids"):
    train.loss_fn(c, p, sc, jnp.array([[3, 4, 5, -1]], jnp.int32))  # a bad target only
  with pytest.raises(TypeError, match="integer token ids"):
    S.apply(c, p, sc, jnp.zeros((1, 4)))
  logits = jax.jit(lambda t: S.apply(c, p, sc, t))
  wrapped = np.asarray(logits(jnp.array([[3, 4, -1, 2], [3, 4, 15, 2]], jnp.int32)))
  assert np.all(np.isnan(wrapped[0])) and np.all(np.isfinite(wrapped[1]))
  loss = jax.jit(lambda t: train.loss_fn(c, p, sc, t))
  assert np.isnan(loss(jnp.array([[3, 4, 5, -1]], jnp.int32)))
  assert np.isfinite(loss(jnp.array([[3, 4, 5, 15]], jnp.int32)))


@pytest.mark.parametrize("pz", ["sp", "mup", "depth_mup"])
def test_scales_follow_the_shared_rules(pz):
  """Per-parameter numbers equal kernels.parameterization's closed forms at two widths."""
  for n in (16, 64):
    c = ModelConfig(**{**TINY, "width": n, "parameterization": pz, "depth": 4})
    sc = S.make_scales(c, "adam")
    q_lr = leaf(sc.lr, "block_0", "attn", "query", "kernel")
    r_mult = leaf(sc.mult, "readout", "kernel")
    e_lr = leaf(sc.lr, "embedding")
    h_eps = leaf(sc.eps, "block_1", "mlp", "fc_out", "kernel")
    if pz == "sp":
      assert q_lr == 1.0 and e_lr == 1.0 and r_mult == 1.0
      assert leaf(sc.init, "block_0", "mlp", "fc_out", "kernel") == pytest.approx((4 * n) ** -0.5)
      assert c.attention_scale == pytest.approx(c.dh ** -0.5)
      assert c.branch_multiplier == 1.0
    else:
      depth_lr = 4 ** -0.5 if pz == "depth_mup" else 1.0
      assert q_lr == pytest.approx(n ** -0.5 * depth_lr, rel=1e-6)  # Adam hidden: 1/sqrt(fan_in)
      assert r_mult == pytest.approx(1.0 / n, rel=1e-6)  # mean-field readout
      assert e_lr == 1.0
      assert c.attention_scale == pytest.approx(1.0 / c.dh)
      # gradient entries of hidden weights ~ n^-3/2 (and L^-1/2 in a depth-muP branch)
      assert h_eps == pytest.approx((4 * n) ** -1.5 * (4 ** -0.5 if pz == "depth_mup" else 1),
                                    rel=1e-5)
      assert c.branch_multiplier == (0.5 if pz == "depth_mup" else 1.0)
    assert leaf(sc.init, "block_0", "ln_attn", "scale") == 1.0
    assert leaf(sc.init, "block_0", "ln_attn", "bias") == 0.0


def test_scales_survive_jit_and_transform_like_params():
  c = ModelConfig(**TINY, parameterization="mup", zero_readout=True, zero_query=True)
  sc = S.make_scales(c)
  p = S.init_params(jax.random.PRNGKey(0), c, sc)
  assert float(jnp.abs(p["readout"]["kernel"]).max()) == 0.0
  assert float(jnp.abs(p["block_1"]["attn"]["query"]["kernel"]).max()) == 0.0
  f = jax.jit(lambda p, sc, t: S.apply(c, p, sc, t))
  t = jax.random.randint(jax.random.PRNGKey(1), (2, 8), 0, 16)
  np.testing.assert_array_equal(f(p, sc, t), 0.0)  # zero readout: logits zero at init
  assert jax.tree_util.tree_structure(sc.lr) == jax.tree_util.tree_structure(p)


def test_causality_and_rotary():
  """Changing a later token leaves earlier logits unchanged (learned and rotary positions)."""
  for pos in ("learned", "rotary"):
    c = ModelConfig(**TINY, positions=pos)
    sc = S.make_scales(c)
    p = S.init_params(jax.random.PRNGKey(0), c, sc)
    t = jax.random.randint(jax.random.PRNGKey(1), (1, 8), 0, 16)
    t2 = t.at[0, 5].set((t[0, 5] + 1) % 16)
    a, b = S.apply(c, p, sc, t), S.apply(c, p, sc, t2)
    np.testing.assert_allclose(a[0, :5], b[0, :5], atol=1e-6)
    assert float(jnp.abs(a[0, 5:] - b[0, 5:]).max()) > 1e-4


def test_tied_embeddings_use_the_readout_scale():
  c = ModelConfig(**TINY, parameterization="mup", tied=True)
  sc = S.make_scales(c)
  assert "readout" not in sc.lr
  assert S.model(c).tied_multiplier == pytest.approx(1.0 / c.width)
  p = S.init_params(jax.random.PRNGKey(0), c, sc)
  t = jnp.arange(8)[None]
  x = S.apply(c, p, sc, t, intermediates=True)[1]
  assert x["logits"][0].shape == (1, 8, 16)


def test_adam_first_step_closed_form_with_scaled_epsilon():
  """Adam's first update is lr_p * g / (|g| + eps * eps_p) per parameter (Kingma & Ba 2015, Alg. 1)."""
  c = ModelConfig(**TINY, parameterization="mup")
  sc = S.make_scales(c, "adam")
  p = S.init_params(jax.random.PRNGKey(0), c, sc)
  g = jax.tree_util.tree_map(lambda x: 1e-6 * jax.random.normal(jax.random.PRNGKey(3), x.shape), p)
  eps = 1e-5
  opt = optim.make("adam", sc, 0.1, eps=eps)
  u, _ = opt.update(g, opt.init(p), p)
  want = jax.tree_util.tree_map(lambda g, lr, e: -0.1 * lr * g / (jnp.abs(g) + eps * e),
                                g, sc.lr, sc.eps)
  for a, b in zip(jax.tree_util.tree_leaves(u), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-12)
  # unscaled epsilon would swamp these gradients at the hidden weights
  u0, _ = optim.make("adam", sc, 0.1, eps=eps, scale_eps=False).update(g, opt.init(p), p)
  k = ("block_0", "mlp", "fc_in", "kernel")
  r = np.abs(np.asarray(leaf_arr(u0, k))).mean() / np.abs(np.asarray(leaf_arr(u, k))).mean()
  assert r < 0.2, r


def leaf_arr(tree, path):
  for k in path:
    tree = tree[k]
  return tree


def test_sgd_and_adamw_closed_forms():
  c = ModelConfig(**TINY, parameterization="mup")
  sc = S.make_scales(c, "sgd")
  p = S.init_params(jax.random.PRNGKey(0), c, sc)
  g = jax.tree_util.tree_map(jnp.ones_like, p)
  u, _ = optim.make("sgd", sc, 0.5).update(g, optim.make("sgd", sc, 0.5).init(p), p)
  assert leaf(leaf_arr(u, ("block_0", "mlp", "fc_in", "kernel"))[0, 0]) == pytest.approx(-0.5 * 16)
  sa = S.make_scales(c, "adamw")
  opt = optim.make("adamw", sa, 0.1, weight_decay=0.01)
  u, _ = opt.update(g, opt.init(p), p)
  w = leaf_arr(p, ("block_0", "mlp", "fc_in", "kernel"))
  lr = leaf(sa.lr, "block_0", "mlp", "fc_in", "kernel")
  want = -0.1 * lr * (1.0 / (1.0 + 1e-8 * leaf(sa.eps, "block_0", "mlp", "fc_in", "kernel")) + 0.01 * w)
  np.testing.assert_allclose(leaf_arr(u, ("block_0", "mlp", "fc_in", "kernel")), want, rtol=1e-5)
  with pytest.raises(ValueError, match="weight_decay needs optimizer 'adamw'"):
    optim.make("adam", sa, 0.1, weight_decay=0.1)


def test_transformer_scales_bad_role():
  with pytest.raises(ValueError, match="role must be one of"):
    param_lib.transformer_scales(param_lib.mup(), "attention", width=8)
  with pytest.raises(ValueError, match="width must be a positive integer"):
    param_lib.transformer_scales(param_lib.mup(), "hidden", width=0)
