"""Glue between feats and other libraries, one module each (web frameworks, telemetry).

Each module needs its own extra, e.g. ``pip install 'feats[prometheus]'`` for
``feats.contrib.prometheus``; ``import feats`` imports none of them.
"""

__all__: list[str] = []
