"""funcgrad benchmarks (programs, not tests): ``python benchmarks/run.py``."""
