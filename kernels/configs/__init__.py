"""ml_collections config files of the kernels/ programs (`python -m kernels.width_check`)."""
