"""django-q2 with its ORM broker, as a peer of the benchmarks."""
