"""dmft: dynamical mean field theory of feature learning in wide networks.

Solvers (discrete-time full-batch gradient descent, muP / mean-field
parameterization with richness gamma0; gamma0 -> 0 is the NTK limit):

  solve_two_layer      two-layer networks, any activation
  solve_deep           deep (and residual) networks, Monte Carlo fields
  solve_deep_linear    deep linear networks, closed equations
  solve_residual       residual networks with depth-muP branches
  infinite_depth_limit residual DMFT extrapolated in depth

Finite-width validation: `ensembles` (mup networks from `kernels.stax`,
trained with `kernels.optim`, vmapped over seeds) and `convergence` (distances
to the DMFT and fitted width exponents; split pairs of width N and their
width-2N union resolve the 1/N bias with a few pairs).
"""
from dmft.convergence import fit_power_law
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
from dmft.residual import infinite_depth_limit
from dmft.residual import solve_residual
from dmft.results import DMFTResult
from dmft.two_layer import solve_two_layer

__all__ = [
    "DMFTResult", "DivergenceError", "NonConvergenceError", "build_network",
    "fit_power_law", "infinite_depth_limit", "kernel_alignment",
    "measure_split_bias", "measure_width_convergence", "solve_deep", "solve_deep_linear",
    "solve_residual", "solve_two_layer", "train_ensemble", "train_split_pairs",
    "train_widths",
]
