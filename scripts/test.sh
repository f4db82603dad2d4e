#!/usr/bin/env bash
# The whole test suite: set up .venv, make sure a Redis answers, then ruff, mypy --strict,
# pyright, pytest.
FEATS_EXTRAS="cli,test,bench" source "$(dirname "$0")/_venv.sh"

if ! .venv/bin/python - <<'PY'
import redis, sys
try:
    redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping()
except redis.RedisError:
    sys.exit(1)
PY
then
    if ! command -v redis-server >/dev/null; then
        echo "no Redis on 127.0.0.1:6379 and no redis-server binary: install Redis 7 (Debian: apt-get install redis-server)" >&2
        exit 1
    fi
    echo "==> starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --logfile /tmp/feats-redis-6379.log
    for _ in $(seq 50); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

echo "==> the sync twins are generated from feats/aio/ (scripts/unasync.py --check)"
.venv/bin/python scripts/unasync.py --check
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy --strict"
.venv/bin/mypy
echo "==> pyright (examples/; tests/typing also runs it on the README's blocks)"
.venv/bin/pyright
echo "==> pytest"
if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest
# Playwright's sync API and pytest-asyncio's loop cannot share a process: its own run.
echo "==> pytest tests/browser (Chromium: ${FEATS_CHROMIUM:-/usr/bin/chromium})"
exec .venv/bin/python -m pytest -p no:asyncio -W ignore::pytest.PytestConfigWarning tests/browser
