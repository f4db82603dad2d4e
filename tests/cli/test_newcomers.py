"""What a newcomer tripped over, each fixed: drift repaired one rule at a time, writes under
--json without --yes, exposure counts with separators, a file that is not a backup, a
typo'd namespace, the weight suggestion, a CLI installed without its extra."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

import feats
from feats._cli import Exit

from .conftest import Run, Serving, json_of, written


def _deploys(sync_redis: redis.Redis, namespace: str) -> feats.App:
    """An old deploy configured GB to aperture; the running one dropped aperture."""
    old = feats.App(storage=feats.RedisStorage(sync_redis, namespace))

    @old.segment
    class Country:
        def user(self, user: object) -> str:
            return "?"

    @old.feature
    class PaymentProcessor:
        @old.default
        def acme(self, user: object) -> str:
            return "acme"

        def premium(self, user: object) -> str:
            return "premium"

        def aperture(self, user: object) -> str:
            return "aperture"

    old.admin.route("PaymentProcessor", "aperture", where={"Country": "GB"}, author="o", reason="")
    old.admin.route("PaymentProcessor", "premium", where={"Country": "CA"}, author="o", reason="")

    new = feats.App(storage=feats.RedisStorage(sync_redis, namespace))
    _without_aperture(new)
    new.admin.publish_catalog()
    return new


def _without_aperture(app: feats.App) -> None:
    """The new deploy: the same segment and feature, aperture gone."""

    @app.segment
    class Country:
        def user(self, user: object) -> str:
            return "?"

    @app.feature
    class PaymentProcessor:
        @app.default
        def acme(self, user: object) -> str:
            return "acme"

        def premium(self, user: object) -> str:
            return "premium"


def test_drift_is_repaired_one_rule_at_a_time(
    run: Run, sync_redis: redis.Redis, namespace: str
) -> None:
    _deploys(sync_redis, namespace)
    drift = run("drift")
    assert drift.exit_code == Exit.DRIFT, drift.output
    assert "Country=GB: unknown implementation 'aperture'" in drift.stdout
    assert "('GB',)" not in drift.output

    # Other rules can change while GB keeps its drift...
    mexico = written(run("set", "PaymentProcessor", "premium", "-w", "Country=MX", "-y", "--json"))
    assert mexico
    # ...a broken rule cannot be written anew...
    again = run("rollout", "PaymentProcessor", "--by", "Country", "acme=50", "aperture=50", "-y")
    assert again.exit_code == Exit.NOT_FOUND
    assert "unknown implementation 'aperture' of PaymentProcessor" in again.stderr
    # ...and the broken rule itself can be replaced, or removed.
    replaced = run("set", "PaymentProcessor", "acme", "-w", "Country=GB", "-y")
    assert replaced.exit_code == 0, replaced.output
    assert "~ Country=GB: aperture → acme" in replaced.stdout
    removed = run("remove", "PaymentProcessor", "-w", "Country=GB", "-y")
    assert removed.exit_code == 0, removed.output
    assert run("drift").exit_code == Exit.OK


def test_drift_of_a_removed_segment_names_the_rule(
    run: Run, sync_redis: redis.Redis, namespace: str
) -> None:
    _deploys(sync_redis, namespace)
    removed = run("remove", "PaymentProcessor", "-w", "Country=GB", "-y", "--json")
    assert json_of(removed)["changed"] is True
    assert run("drift").exit_code == Exit.OK


@pytest.mark.parametrize(
    "args",
    [
        ("set", "PaymentProcessor", "premium", "-w", "Country=CA"),
        ("rollout", "PaymentProcessor", "--by", "UserId", "aperture=5", "acme=95"),
        ("reset", "PaymentProcessor"),
        (
            "experiment",
            "AllowedPriorities",
            "--by",
            "UserId",
            "no_priority=50",
            "two_priorities=50",
        ),
    ],
)
def test_writes_under_json_need_yes(serving: Serving, run: Run, args: tuple[str, ...]) -> None:
    result = run(*args, "--json", input="y\n")
    assert result.exit_code == Exit.USAGE, result.output
    assert "Apply to" not in result.output  # no prompt
    data = json.loads(result.stdout)
    assert data["error"] == "usage" and "add --yes" in data["message"]
    assert serving.app.admin.history("PaymentProcessor") == []


def test_import_under_json_needs_yes(serving: Serving, run: Run, tmp_path: Path) -> None:
    backup = tmp_path / "backup.json"
    assert run("export", "-o", str(backup)).exit_code == 0
    result = run("import", str(backup), "--json")
    assert result.exit_code == Exit.USAGE
    assert "add --yes" in json.loads(result.stdout)["message"]


def test_exposure_counts_have_separators(serving: Serving, run: Run) -> None:
    started = written(
        run(
            "experiment",
            "AllowedPriorities",
            "--by",
            "UserId",
            "no_priority=50",
            "two_priorities=50",
            "-y",
            "--json",
        )
    )
    serving.wait(started)
    from ._shop import user

    for i in range(2_400):
        serving.handles.AllowedPriorities.create(user(i))
    serving.app.flush()
    table = run("exposures", "AllowedPriorities", "--by-value")
    assert table.exit_code == 0, table.output
    assert "Exposures of AllowedPriorities: 2,400 in total" in table.stdout
    assert re.search(r"\s1,\d{3} │", table.stdout), table.stdout  # each arm has over 1,000
    assert json_of(run("exposures", "AllowedPriorities", "--json"))["total"] == 2400


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not json", "is not a feats backup:"),
        (b'{"format": "something-else"}', "is not a feats backup:"),
        (b"\xff\xfe not utf-8", "is not a feats backup:"),
    ],
)
def test_importing_a_file_that_is_not_a_backup(
    serving: Serving, run: Run, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    result = run("import", str(path), "-y")
    assert result.exit_code == Exit.INVALID, result.output
    assert f"{path} {message}" in result.stderr
    assert "unreadable data in Redis" not in result.output
    assert "Traceback" not in result.output
    assert "feats export" in result.stderr


def test_a_typoed_namespace_suggests_the_ones_that_exist(
    serving: Serving, run: Run, redis_url: str, namespace: str
) -> None:
    from click.testing import CliRunner

    from feats._cli import cli

    typo = namespace[:-1] + ("x" if namespace[-1] != "x" else "y")
    for args in (["list"], ["catalog"], ["drift"], ["list", "--json"]):
        result = CliRunner().invoke(cli, ["--redis", redis_url, "-n", typo, *args])
        assert result.exit_code == 0, result.output
        assert f"note: namespace {typo!r} holds nothing in this Redis" in result.stderr
        assert f"did you mean -n {namespace}?" in result.stderr
    unknown = CliRunner().invoke(
        cli, ["--redis", redis_url, "-n", typo, "set", "PaymentProcessor", "acme", "-y"]
    )
    assert unknown.exit_code == Exit.NOT_FOUND
    assert f"did you mean -n {namespace}?" in unknown.stderr
    # The namespace that exists gets no such note.
    assert "note:" not in run("list").stderr


def test_the_weight_suggestion_uses_the_given_names(serving: Serving, run: Run) -> None:
    result = run(
        "rollout",
        "PaymentProcessor",
        "--by",
        "UserId",
        "aperture=25",
        "acme=70",
        "-w",
        "Country=US",
    )
    assert result.exit_code == Exit.INVALID
    assert (
        "weights add up to 95, not 100 (aperture=25 acme=70); give every implementation its "
        "share, e.g. aperture=25 acme=75"
    ) in result.stderr
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "e.g. aperture=25 acme=75" in readme
    assert "e.g. aperture=5 acme=95" not in readme


@pytest.mark.parametrize("missing", ["click", "rich"])
def test_without_the_cli_extra_feats_says_how_to_install_it(missing: str) -> None:
    program = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from feats._cli import main\n"
        "main(['list'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == Exit.ERROR, result.stderr
    assert f"the feats command needs {missing}" in result.stderr
    assert "pip install 'feats[cli]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_library_and_the_shop_need_no_cli_packages() -> None:
    program = (
        "import sys\n"
        "import feats, feats.aio, feats._cli, feats._cli._shop\n"
        "from feats._cli._shop import declare\n"
        "declare(feats.App())\n"
        "print(sorted(name for name in ('click', 'rich') if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def _hostile_backups(good: str) -> dict[str, str]:
    """A real export made hostile in each of the ways the strict decoder refuses."""
    document = json.loads(good)
    entry = document["features"][0]
    empty_key = json.loads(json.dumps(entry["record"]))
    empty_key["state"]["rules"][0]["key"] = []
    return {
        "nested without end": '{"format": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "NaN in a record": re.sub(r'"time": [0-9.]+', '"time": NaN', good, count=1),
        "a duplicate key": good.replace(
            '"format_version"', '"format_version": 99, "format_version"'
        ),
        "a rule with an empty key": json.dumps(
            {**document, "features": [{**entry, "record": empty_key}]}
        ),
    }


def test_a_hostile_backup_is_refused_with_a_clear_error_and_writes_nothing(
    serving: Serving, run: Run, tmp_path: Path
) -> None:
    started = written(
        run("set", "PaymentProcessor", "premium", "--where", "Country=CA", "-y", "--json")
    )
    serving.wait(started)
    exported = run("export")
    assert exported.exit_code == 0, exported.output
    for kind, content in _hostile_backups(exported.stdout).items():
        path = tmp_path / "backup.json"
        path.write_text(content)
        result = run("import", str(path), "-y")
        assert result.exit_code == Exit.INVALID, (kind, result.output)
        assert "Traceback" not in result.output and "this is a bug" not in result.output, kind
        assert str(path) in result.stderr, (kind, result.stderr)
    assert [c.version for c in serving.app.admin.history("PaymentProcessor")] == [started]


@pytest.mark.parametrize("when", ["1e308", "-1e18", "inf", "nan", "not a time"])
def test_exposures_with_a_time_no_clock_gives_still_count(
    serving: Serving, run: Run, sync_redis: redis.Redis, namespace: str, when: str
) -> None:
    from feats._layout import Keys

    batch = json.dumps([["AllowedPriorities", "two_priorities", None, ["u1", "u2", "u3"]]])
    sync_redis.xadd(Keys(namespace).exposures, {"t": when, "n": "3", "batch": batch})
    table = run("exposures", "AllowedPriorities")
    assert table.exit_code == 0, table.output
    assert "3 in total" in table.stdout, table.stdout
    assert json_of(run("exposures", "AllowedPriorities", "--json"))["total"] == 3
