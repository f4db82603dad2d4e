"""Benchmark suite: feats against a plain-function floor and peer flag libraries."""
