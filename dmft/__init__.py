"""dmft: dynamical mean field theory of feature learning in wide networks.

The DMFT reads the network that `kernels.stax` describes (discrete-time full-batch
gradient descent under muP / depth-muP with richness gamma0; gamma0 -> 0 is the NTK
limit)::

  net = stax.serial(stax.Dense(512, parameterization=mup(gamma0=1.0)), stax.Tanh(),
                    stax.Dense(1, parameterization=mup(gamma0=1.0)))
  theory = dmft.solve(net, X, y, lr=1.0, steps=50)           # infinite width
  finite = dmft.train_widths(net, X, y, [128, 512, 2048])    # the same net, finite
  lazy = net.kernel_fn(X, None, "ntk")                        # the kernel limit

`dmft.network` says which networks it solves: two-layer, deep, deep linear and
residual (one solver core, `dmft.core`; field equations in `dmft.two_layer` and
`dmft.deep`). Conveniences that build the network from settings: solve_two_layer,
solve_deep, solve_deep_linear, solve_residual, infinite_depth_limit.

Finite-width validation: `ensembles` (the network's Flax module trained with
`kernels.optim`, vmapped over seeds) and `convergence` (distances to the DMFT and
fitted width exponents, via `kernels.slopes`; split pairs of width N and their
width-2N union resolve the 1/N bias with a few pairs).
"""
from dmft.convergence import kernel_alignment
from dmft.convergence import measure as measure_width_convergence
from dmft.convergence import measure_split_bias
from dmft.deep import solve_deep
from dmft.deep_linear import solve_deep_linear
from dmft.ensembles import build_network
from dmft.ensembles import train_ensemble
from dmft.ensembles import train_split_pairs
from dmft.ensembles import train_widths
from dmft.errors import DivergenceError
from dmft.errors import NonConvergenceError
from dmft.network import Architecture
from dmft.network import read as read_network
from dmft.network import with_width
from dmft.residual import infinite_depth_limit
from dmft.residual import solve_residual
from dmft.results import DMFTResult
from dmft.solver import solve
from dmft.two_layer import solve_two_layer

__all__ = [
    "Architecture", "DMFTResult", "DivergenceError", "NonConvergenceError",
    "build_network", "infinite_depth_limit", "kernel_alignment", "measure_split_bias",
    "measure_width_convergence", "read_network", "solve", "solve_deep",
    "solve_deep_linear", "solve_residual", "solve_two_layer", "train_ensemble",
    "train_split_pairs", "train_widths", "with_width",
]
