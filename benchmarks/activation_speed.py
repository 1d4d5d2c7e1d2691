"""NNGP + NTK of deep MLPs with every other closed-form activation, against neural-tangents.

  python -m benchmarks.activation_speed [--suite=quick|full] [--out=DIR] [--no_reference]

`benchmarks.kernel_speed` measures ReLU, Erf, Gelu and Sin; this case measures the
rest of neural-tangents 0.6.5's closed-form activations in the same network
(5 x (Dense(512) -> activation) -> Dense(1), b_std = 0.05, NTK parameterization,
``kernel_fn(x, None, get=("nngp", "ntk"))`` in float32 on 4000 seeded Gaussian inputs
of dimension 784), timed the same way: ours, neural-tangents in its own process and
the jitted Gram product ``x @ x.T`` in alternation after a first call each, values
compared on the first 200 points and against our float64 kernels.

W_std is 1.5 as in `kernel_speed`; activations whose second moment grows faster than
the variance (Exp, the polynomials) use a smaller W_std, the same on both sides, so
that neither library overflows float32. Hermite's closed form holds for unit-variance
pre-activations (both libraries use it as it is). Target stated by the project: at least 3x
neural-tangents for every closed-form activation.
"""
from __future__ import annotations

from benchmarks import harness
from benchmarks import kernel_speed

TITLE = "MLP NNGP/NTK, every other closed-form activation, depth 5, n=4000, d=784, float32"

# (label, neural-tangents name, keyword arguments, W_std)
ACTIVATIONS = (
    ("Cos", "Cos", {}, 1.5),
    ("Sigmoid_like", "Sigmoid_like", {}, 1.5),
    ("Rbf", "Rbf", dict(gamma=1.0), 1.5),
    ("Exp(a=1, b=1)", "Exp", dict(a=1.0, b=1.0), 0.3),
    ("Gaussian(a=1, b=-1)", "Gaussian", dict(a=1.0, b=-1.0), 1.5),
    ("ExpNormalized", "ExpNormalized", dict(gamma=1.0, shift=-1.0), 1.5),
    ("Sign", "Sign", {}, 1.5),
    ("Monomial(2)", "Monomial", dict(degree=2), 0.8),
    ("RectifiedMonomial(2)", "RectifiedMonomial", dict(degree=2), 1.0),
    ("Polynomial(0.1, 1, 0.5)", "Polynomial", dict(coef=[0.1, 1.0, 0.5]), 0.8),
    ("Hermite(3)", "Hermite", dict(degree=3), 1.0),
    ("Gabor", "Gabor", {}, 1.5),
    ("LeakyRelu(0.2)", "LeakyRelu", dict(alpha=0.2), 1.5),
    ("Abs", "Abs", {}, 1.5),
    ("ABRelu(-0.5, 1.5)", "ABRelu", dict(a=-0.5, b=1.5), 1.5),
)


def run(ctx) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  x_np = kernel_speed.inputs(kernel_speed.N)
  x = jnp.asarray(x_np)
  gram = jax.jit(lambda a: a @ a.T)
  gram_time = harness.timer(lambda: gram(x))
  gram_time()
  rows, details = [], {}
  for label, name, kwargs, w_std in ACTIVATIONS:
    r, d = kernel_speed.one_activation(ctx, name, x_np, gram_time, act_kwargs=kwargs,
                                       w_std=w_std, label=label, gram_row=False)
    rows += r
    details[label] = dict(d, W_std=w_std, activation=name, kwargs=kwargs)
  return dict(rows=rows, details=details)


if __name__ == "__main__":
  harness.case_main(run)
