"""Benchmarks and fault drills of the service (bench/README.md). Not tests: tests/bench runs a
tiny version of each so that they cannot rot."""
