"""ml_collections config files of scaling/'s programs (`scaling.fit`, `scaling.plrf_frontier`)."""
