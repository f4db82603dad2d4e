"""``python -m feats``: the same as the ``feats`` command."""

from ._cli import main

if __name__ == "__main__":
    main()
