#!/usr/bin/env bash
# The whole test suite: set up .venv, make sure a Redis answers, then ruff, mypy --strict, pytest.
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
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
