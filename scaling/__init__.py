"""Scaling laws: fits with bootstrap intervals, kernel learning curves and solvable scaling models."""
from scaling.approach1 import approach1
from scaling.approach1 import EnvelopeFit
from scaling.approach2 import approach2
from scaling.bootstrap import percentile_interval
from scaling.chinchilla import ChinchillaFit
from scaling.chinchilla import fit_chinchilla
from scaling.chinchilla import hoffmann_grid
from scaling.compute_optimal import Allocation
from scaling.compute_optimal import compute_optimal
from scaling.data import load_chinchilla_csv
from scaling.data import synthetic_runs
from scaling.learning_curve import empirical_spectrum
from scaling.learning_curve import learnabilities
from scaling.learning_curve import learning_curve
from scaling.learning_curve import LearningCurve
from scaling.learning_curve import solve_kappa
from scaling.lbfgs import minimize_many
from scaling.plrf_phases import plrf_compute_optimal
from scaling.plrf_phases import plrf_phase
from scaling.power_law import fit_power_law
from scaling.power_law import PowerLawFit
from scaling.sphere import dot_product_spectrum

__all__ = [
    "Allocation", "ChinchillaFit", "EnvelopeFit", "LearningCurve",
    "PowerLawFit", "approach1", "approach2", "compute_optimal",
    "dot_product_spectrum", "empirical_spectrum", "fit_chinchilla", "fit_power_law",
    "hoffmann_grid", "learnabilities", "learning_curve", "load_chinchilla_csv",
    "minimize_many", "percentile_interval", "plrf_compute_optimal",
    "plrf_phase", "solve_kappa", "synthetic_runs",
]
