"""ml_collections configs for `python -m dmft.run`."""
