"""`feats export` and `feats import`: a backup taken from the CLI brings back a Redis that
restarted empty, exactly, and repairs a configured one with attributed changes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from feats._cli import cli
from tests.servers import RedisServer

from ._model import CANADIAN, canada_gets, sync_app, sync_client


def feats_cli(server: RedisServer, namespace: str, *args: str) -> Result:
    env: dict[str, str | None] = {"FEATS_REDIS_URL": None, "FEATS_NAMESPACE": None}
    return CliRunner().invoke(
        cli, ["--redis", server.url, "--namespace", namespace, *args], env=env
    )


def test_export_then_import_from_the_command_line(
    server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    model = sync_app(sync_client(server.url), namespace)
    first = model.app.admin.set_state(
        model.Checkout, canada_gets("express"), author="o", reason="1"
    )
    second = model.app.admin.set_state(
        model.Checkout, canada_gets("oneclick"), author="o", reason="2"
    )
    backup = tmp_path / "shop.json"
    exported = feats_cli(server, namespace, "export", "--output", str(backup))
    assert exported.exit_code == 0, exported.output
    document = json.loads(backup.read_text())
    assert document["features"][0]["version"] == second
    assert [item["version"] for item in document["features"][0]["history"]] == [first]
    stdout = feats_cli(server, namespace, "export", "--no-history")
    assert json.loads(stdout.stdout)["features"][0]["version"] == second

    server.restart_empty()
    restored = feats_cli(server, namespace, "import", str(backup), "--yes")
    assert restored.exit_code == 0, restored.output
    assert "Restored 1 feature(s)" in restored.output
    fresh = sync_app(sync_client(server.url), namespace)
    assert fresh.app.admin.get_version(fresh.Checkout) == second
    assert [c.version for c in fresh.app.admin.history(fresh.Checkout)] == [first, second]
    with fresh.app:
        assert fresh.Checkout.find_implementation(CANADIAN) == "oneclick"

    fresh.app.admin.set_state(fresh.Checkout, canada_gets("express"), author="x", reason="oops")
    declined = feats_cli(server, namespace, "import", str(backup))
    assert declined.exit_code == 7  # no --yes, no answer: nothing changed
    repaired = feats_cli(
        server, namespace, "--json", "import", str(backup), "--yes", "--reason", "undo"
    )
    assert repaired.exit_code == 0, repaired.output
    result = json.loads(repaired.stdout)
    assert result["mode"] == "written" and result["features"] == ["Checkout"]
    assert fresh.app.admin.get_state(fresh.Checkout) == canada_gets("oneclick")
    assert fresh.app.admin.history(fresh.Checkout)[-1].reason == "undo"

    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "feats-backup", "format_version": 1, "features": [{}]}')
    refused = feats_cli(server, namespace, "import", str(broken), "--yes")
    assert refused.exit_code != 0 and "feature" in refused.output
