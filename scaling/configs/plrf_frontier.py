"""Compute-optimal frontier of power-law random features (`python -m scaling.plrf_frontier`).

One (alpha, beta) point per phase: Ia, II, III, Ib, Ic, IVa, IVb.
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.points = "0.8:0.3,1.0:0.7,0.7:1.0,0.45:0.45,0.2:1.0,0.35:1.0,0.27:1.0"  # alpha:beta pairs
  c.d_min = 32  # smallest d (powers of 2 up to d_max)
  c.d_max = 2048  # largest d
  c.v_ratio = 4.0  # data dimension v = v_ratio * d (>= 1)
  c.seeds = 4  # draws of W averaged per size
  c.max_flops = 1e10  # largest compute f = r d
  c.lr_factor = 1.0  # learning rate in units of 0.25 / tr K (the loss diverges beyond about 8)
  return c
