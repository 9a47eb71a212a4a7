"""The lab: everything that is not the product.

Embedded servers for development and tests (`servers`), the demo stack and its supervisor
(`demo`, `stack`, `supervisor`), the reference processing service (`worker`), benchmarks
(`bench`), the load test that reproduces the upstream incident with real faults
(`loadtest`), and the upstream's own log writers kept for comparison (`upstream`).

It adds its commands to `ami` through entry points (pyproject.toml). No module of `ami`
imports it (tests/unit/test_layers.py).
"""
