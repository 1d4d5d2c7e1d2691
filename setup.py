"""Install the wide-network theory toolkit: kernels, dmft, scaling, lm, benchmarks."""
import setuptools

# Versions known to work together on Python 3.11 (CPU); see BUILD.md for GPU/TPU.
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "chex==0.1.92",
    "absl-py==2.5.1",
    "ml_collections==1.1.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "matplotlib==3.11.2",
    "tqdm==4.70.1",
    "scikit-learn==1.9.1",
    "orbax-checkpoint==0.12.8",
    "diffrax==0.7.2",  # ODE integration of kernels.predict.gradient_descent
    "equinox==0.13.8",
]

EXTRAS_REQUIRE = {
    "dev": [
        "pytest==9.2.0",
        "pytest-xdist==3.8.0",
        "pytest-rerunfailures==16.7",  # reruns a test once if its worker process crashed
        "nbformat==5.11.1",
        "nbclient==0.11.0",
        "ipykernel==7.4.0",
    ],
}

setuptools.setup(
    name="widenets",
    version="0.1.0",
    description="Infinite-width kernels, DMFT of feature learning and scaling laws, "
    "checked against finite-width networks.",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["kernels*", "dmft*", "scaling*", "lm*", "benchmarks*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
