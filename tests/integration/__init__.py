"""Integration tests against a real redis-server: processes, fork, commandstats, examples."""
