"""The feats test suite."""
