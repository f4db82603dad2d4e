"""Glue between feats and the frameworks and tools around it; each module is an extra."""
