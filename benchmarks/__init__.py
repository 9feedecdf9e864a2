"""The benchmark harness: ``python -m benchmarks messages|push|pull``.

Every party of a measurement runs in its own OS process (see :mod:`benchmarks.procs`),
so the peak RSS reported for it is the kernel's own figure for that process, and a
baseline (raw pyzmq, raw TCP) is measured in the same run as our figure, so the
ratio between them means something on whatever machine runs it. Nothing here is a
test: the PASS/MISS column compares a measurement with an issue's target.
"""
