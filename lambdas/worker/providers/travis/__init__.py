"""Travis CI behind the provider seam."""
