"""The example Django shop: settings, the feats App and its features, one view."""
