"""Benchmarks: ``python -m atls.bench {handshake,verify-tdx} ...``.

Each benchmark measures a baseline in the same run and prints ratios; nothing here is a
test and nothing asserts a time.
"""
