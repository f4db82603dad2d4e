#!/usr/bin/env bash
# The main job: set up .venv and run the live payments demo on the in-memory default (no Redis).
FEATS_EXTRAS="cli" source "$(dirname "$0")/_venv.sh"
exec .venv/bin/feats demo "$@"
