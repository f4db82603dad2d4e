"""OpenFeature for feats: ``FeatsProvider`` resolves feats features for the openfeature-sdk.

Needs the ``openfeature`` extra (``pip install 'feats[openfeature]'``); ``import feats``
never imports this package.
"""

from ._provider import FeatsProvider, Inputs

__all__ = ["FeatsProvider", "Inputs"]
