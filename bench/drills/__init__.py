"""Fault drills: a backend falls over under load, and the drill counts what survived.
Each prints PASS or FAIL with its counts (bench/README.md)."""
