"""The one validation module: chex assertions become errors that name the argument."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import validation


@pytest.mark.parametrize("check,error,message", [
    (lambda: validation.assert_rank(np.ones(3), 2, "x1"), ValueError,
     r"x1 must have rank 2, got shape \(3,\)"),
    (lambda: validation.assert_shape(np.ones((2, 4)), (None, 5), "grid"), ValueError,
     r"grid must have shape \(None, 5\), got \(2, 4\)"),
    (lambda: validation.assert_floating(jnp.arange(3), "y"), TypeError,
     "y must be a floating-point array, got dtype int"),
    (lambda: validation.assert_finite(np.array([1.0, np.inf]), "loss"), ValueError,
     "loss contains NaN or inf"),
    (lambda: validation.as_positive_1d(np.ones((2, 2)), "N"), ValueError, "`N` must be 1-D"),
    (lambda: validation.as_positive_1d([1.0, -2.0], "D"), ValueError,
     r"`D` must be positive and finite; rows \[1\]"),
    (lambda: validation.as_positive_1d([1.0, np.nan], "loss"), ValueError, "`loss` has 1 NaN"),
    (lambda: validation.check_grid(np.ones((2, 4)), 5), ValueError, r"`grid` must have shape"),
    (lambda: validation.check_grid([[np.nan] * 5], 5), ValueError, "`grid` must be finite"),
    (lambda: validation.check_int(True, "seed"), TypeError, "`seed` must be an int"),
    (lambda: validation.check_int(-1, "bootstrap"), ValueError, "`bootstrap` must be an int >= 0"),
    (lambda: validation.check_positive_number(float("nan"), "delta"), ValueError, "`delta`"),
    (lambda: validation.check_inputs(np.ones((3, 4)), np.ones((2, 5))), ValueError,
     "x1 and x2 must have the same feature dimension"),
    (lambda: validation.check_inputs(np.ones((2, 3)) * np.nan), ValueError,
     "x1 contains NaN or inf"),
])
def test_bad_input_names_the_argument(check, error, message):
  with pytest.raises(error, match=message):
    check()


def test_good_input_passes_and_finiteness_is_skipped_under_tracing():
  validation.assert_rank(np.ones((2, 3)), {2, 3}, "x")
  validation.assert_shape(np.ones((2, 3)), (2, None), "x")
  validation.assert_floating(jnp.ones(2), "x")
  np.testing.assert_array_equal(validation.as_positive_1d(3.0, "N"), [3.0])
  assert validation.check_grid(np.ones((2, 5)), 5).shape == (2, 5)
  x1, x2 = validation.check_inputs(np.ones((3, 4), np.float32), np.ones((2, 4)))
  assert x1.dtype == x2.dtype
  f = jax.jit(lambda x: (validation.check_finite(x, "x"), x * 2)[1])
  np.testing.assert_array_equal(f(jnp.ones(2)), [2.0, 2.0])
