"""Procrastinate, through its Django contrib, as a peer of the benchmarks."""
