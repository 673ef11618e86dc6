"""Benchmarks of ualib against its peers (``python -m benchmarks``); see :mod:`benchmarks.suite`."""
