"""Redis that refuses is not Redis that is down, and no password is ever printed.

NOPERM and WRONGTYPE come from a Redis that answered: exit 1 with its message, not 6
("unreachable") with the "is redis-server running" hint. Whatever the URL looks like (a
bad port or scheme, ``user:password@``, ``?password=``), neither the table output nor
--json shows its password.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner, Result

import feats
from feats._cli import Exit, cli
from feats._cli._redact import redact, scrub
from feats._layout import Keys
from tests.servers import RedisServer, redis_server_available
from tests.servers.acl import app_acl

from ._shop import declare

SECRET = "s3cret-Pa55word"
NAMESPACE = "shop"


@pytest.fixture
def acl_server() -> Iterator[RedisServer]:
    if not redis_server_available():
        pytest.fail("redis-server is not installed (see .ci/run)")
    lines = ["user default on nopass ~* &* +@all", app_acl(NAMESPACE, SECRET)]
    with RedisServer(name="cli-acl", acl_lines=lines) as server:
        client = server.client()
        app = feats.App(storage=feats.RedisStorage(client, NAMESPACE))
        declare(app)
        app.admin.publish_catalog()
        client.close()
        yield server


def feats_cli(*args: str) -> Result:
    env: dict[str, str | None] = {"FEATS_REDIS_URL": None, "FEATS_NAMESPACE": None}
    return CliRunner().invoke(cli, list(args), env=env)


def _no_secret(result: Result, secret: str = SECRET) -> None:
    assert secret not in result.output, result.output
    assert "Traceback" not in result.output, result.output


@pytest.mark.parametrize("json_output", [False, True])
def test_noperm_is_an_error_with_redis_own_message(
    acl_server: RedisServer, json_output: bool
) -> None:
    url = f"redis://feats-app:{SECRET}@127.0.0.1:{acl_server.port}/0"
    extra = ["--json"] if json_output else []
    listing = feats_cli("--redis", url, "-n", NAMESPACE, "list", *extra)
    assert listing.exit_code == Exit.OK, listing.output  # reading is allowed

    result = feats_cli(
        "--redis", url, "-n", NAMESPACE, "set", "PaymentProcessor", "premium", "-y", *extra
    )
    _no_secret(result)
    assert result.exit_code == Exit.ERROR, result.output
    assert "NOPERM" in result.stderr
    assert "redis-server is running" not in result.stderr
    assert "feats-admin" in result.stderr  # the hint names the user that may write
    assert f"redis://feats-app:***@127.0.0.1:{acl_server.port}/0" in result.stderr
    if json_output:
        data = json.loads(result.stdout)
        assert data["error"] == "refused" and "NOPERM" in data["message"]


def test_a_wrong_password_is_refused_not_unreachable(acl_server: RedisServer) -> None:
    url = f"redis://feats-app:not-{SECRET}@127.0.0.1:{acl_server.port}/0"
    result = feats_cli("--redis", url, "-n", NAMESPACE, "list", "--json")
    _no_secret(result, f"not-{SECRET}")
    assert result.exit_code == Exit.ERROR, result.output
    assert "refused the credentials" in result.stderr
    assert json.loads(result.stdout)["error"] == "refused"


def test_wrongtype_is_an_error_with_redis_own_message(
    redis_url: str, namespace: str, sync_redis: redis.Redis
) -> None:
    sync_redis.set(Keys(namespace).catalog, "not a hash")
    result = feats_cli("--redis", redis_url, "-n", namespace, "list")
    assert "Traceback" not in result.output
    assert result.exit_code == Exit.ERROR, result.output
    assert "WRONGTYPE" in result.stderr
    assert "redis-server is running" not in result.stderr
    assert "something other than feats wrote it" in result.stderr


def test_unreachable_is_still_6(closed_port: int) -> None:
    result = feats_cli("--redis", f"redis://127.0.0.1:{closed_port}/0", "list")
    assert result.exit_code == Exit.UNREACHABLE
    assert "redis-server is running" in result.stderr


BAD_URLS = {
    "a bad port": f"redis://admin:{SECRET}@127.0.0.1:notaport/0",
    "a port out of range": f"redis://admin:{SECRET}@127.0.0.1:99999/0",
    "a bad scheme": f"http://admin:{SECRET}@127.0.0.1:6379/0",
    "a password only": f"redis://:{SECRET}@127.0.0.1:{{closed}}/0",
    "a password in the user's place": f"redis://{SECRET}@127.0.0.1:{{closed}}/0",
    "?password= in the query": f"redis://127.0.0.1:{{closed}}/0?password={SECRET}",
    "?password= and a bad port": f"redis://127.0.0.1:nope/0?db=0&password={SECRET}",
    "an encoded password": "redis://admin:s3cret%2DPa55word@127.0.0.1:{closed}/0",
}


@pytest.mark.parametrize("json_output", [False, True])
@pytest.mark.parametrize("kind", list(BAD_URLS))
@pytest.mark.parametrize("how", ["option", "environment"])
def test_no_password_is_ever_printed(
    kind: str, json_output: bool, how: str, closed_port: int
) -> None:
    url = BAD_URLS[kind].format(closed=closed_port)
    extra = ["--json"] if json_output else []
    if how == "option":
        result = feats_cli("--redis", url, "list", *extra)
    else:
        env: dict[str, str | None] = {"FEATS_REDIS_URL": url, "FEATS_NAMESPACE": None}
        result = CliRunner().invoke(cli, ["list", *extra], env=env)
    _no_secret(result)
    assert "s3cret%2DPa55word" not in result.output
    assert result.exit_code in (Exit.USAGE, Exit.UNREACHABLE), result.output
    if json_output:
        assert SECRET not in json.dumps(json.loads(result.stdout))


def test_watch_and_demo_show_the_url_redacted(redis_url: str, namespace: str) -> None:
    url = f"{redis_url}?password={SECRET}"
    watching = feats_cli("--redis", url, "-n", namespace, "watch", "--timeout", "0.1")
    _no_secret(watching)
    assert "password=***" in watching.stderr
    demo = feats_cli("demo", "--redis", f"redis://u:{SECRET}@127.0.0.1:bad/0", "--steps", "1")
    _no_secret(demo)
    assert demo.exit_code == Exit.USAGE


def test_redaction() -> None:
    assert redact(f"redis://u:{SECRET}@h:1/0") == "redis://u:***@h:1/0"
    assert redact(f"rediss://h:1/0?ssl_cert_reqs=none&password={SECRET}") == (
        "rediss://h:1/0?ssl_cert_reqs=none&password=***"
    )
    assert redact(f"unix://u:{SECRET}@/run/redis.sock?db=1") == "unix://u:***@/run/redis.sock?db=1"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
    text = f"error at redis://u:{SECRET}@h:1/0: auth {SECRET} refused"
    assert (
        scrub(text, f"redis://u:{SECRET}@h:1/0") == "error at redis://u:***@h:1/0: auth *** refused"
    )
