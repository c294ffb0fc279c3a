"""Benchmarks: the operator against the floor of writing its objects directly (`make bench`)."""
