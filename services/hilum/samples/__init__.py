"""Synthetic chest DX studies for the demo, tests and benchmarks."""
