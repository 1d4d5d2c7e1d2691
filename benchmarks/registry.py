"""The cases of the benchmark suite, in the order they run (one line per case).

A case is a module ``benchmarks/<name>.py`` following `benchmarks.harness`
(``TITLE``, ``run(ctx)``, ``harness.case_main``). To add one, write the module
and add its name here; a listed module that is not present is reported as
missing, not run.
"""

CASES = (
    "kernel_speed",       # MLP NNGP/NTK, ReLU, Erf, Gelu and Sin, n=4000 d=784, vs neural-tangents and a Gram product
    "activation_speed",   # the same MLP with every other closed-form activation, vs neural-tangents
    "cnn_kernel_speed",   # 3-layer ReLU CNN and Myrtle-5 NNGP/NTK, time and peak memory, vs neural-tangents
    "batch_scale",        # kernels.batch time and peak memory against n (full: up to 30,000), vs a Gram product
    "predict_speed",      # gradient_descent_mse_ensemble, vs neural-tangents
    "empirical_speed",    # empirical NTK of a width-512 MLP, vs neural-tangents' fastest method
    "empirical_cnn_speed",  # empirical NTK of a Flax CNN (3 x Conv(64), 32 x 16x16x3), vs neural-tangents' fastest
    "dmft_speed",         # two-layer and deep DMFT, cold and warm, vs the reference algorithm
    "scaling_fit_speed",  # Chinchilla approach-3 grid fit vs a SciPy L-BFGS-B loop, every start timed
    "compile_speed",      # first call against depth
    "lm_speed",           # transformer training tokens/s and FLOP utilisation
)
