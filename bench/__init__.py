"""Firefly's benchmark suite (issue #7). Out of CI; see bench/README.md."""
