"""Every ``feats`` command against the real Redis, with a running App seeing the changes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import feats
import feats.aio
from feats._cli import Exit
from tests.integration._shop import wait_for_catalog

from ._shop import declare, user
from .conftest import Run, Serving, json_of, written

ROOT = Path(__file__).resolve().parents[2]


def test_list_reads_the_catalog_the_app_published(serving: Serving, run: Run) -> None:
    result = run("list")
    assert result.exit_code == 0, result.output
    for name in ("PaymentProcessor", "AllowedPriorities", "ImageProcessing (boolean)"):
        assert name in result.stdout
    assert "acme*, premium, aperture" in result.stdout

    rows = {row["feature"]: row for row in json_of(run("list", "--json"))}
    assert rows["PaymentProcessor"]["default"] == "acme"
    assert rows["PaymentProcessor"]["implementations"] == ["acme", "premium", "aperture"]
    assert rows["ImageProcessing"]["boolean"] is True
    assert rows["PaymentProcessor"]["version"] is None


def test_show_has_docstrings_segments_and_rules(serving: Serving, run: Run) -> None:
    result = run("show", "PaymentProcessor")
    assert result.exit_code == 0, result.output
    assert "2% + $0.30 / Transaction" in result.stdout
    assert "Country [US|CA|GB|DE|MX], UserId" in result.stdout
    assert "Never configured" in result.stdout

    data = json_of(run("show", "paymentprocessor", "--json"))
    assert data["feature"] == "PaymentProcessor"
    assert [segment["name"] for segment in data["segments"]] == ["Country", "UserId"]
    assert data["inputs"] == ["User"]
    assert data["current"] is None


def test_set_routes_canada_to_premium(serving: Serving, run: Run) -> None:
    processor = serving.handles.PaymentProcessor
    version = written(
        run(
            "set",
            "PaymentProcessor",
            "premium",
            "--where",
            "Country=CA",
            "--yes",
            "--json",
            "--author",
            "alice",
            "--reason",
            "Acme fails in Canada",
        )
    )
    serving.wait(version)
    assert processor.create(user(1, "CA")) == "premium"
    assert processor.create(user(1, "US")) == "acme"
    assert processor.explain(user(1, "CA")).version == version

    [change] = serving.app.admin.history("PaymentProcessor")
    assert (change.author, change.reason) == ("alice", "Acme fails in Canada")


def test_set_without_where_sets_the_fallthrough(serving: Serving, run: Run) -> None:
    version = written(run("set", "PaymentProcessor", "aperture", "--yes", "--json"))
    serving.wait(version)
    assert serving.handles.PaymentProcessor.create(user(5, "MX")) == "aperture"


def test_set_shows_the_diff_and_asks_first(serving: Serving, run: Run) -> None:
    declined = run("set", "PaymentProcessor", "premium", "--where", "Country=CA", input="n\n")
    assert declined.exit_code == Exit.DECLINED
    assert "+ Country=CA: premium" in declined.stdout
    assert "nothing was changed" in declined.stderr
    assert serving.app.admin.history("PaymentProcessor") == []

    accepted = run("set", "PaymentProcessor", "premium", "--where", "Country=CA", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "is now at version" in accepted.stdout
    version = serving.app.admin.get_version("PaymentProcessor")
    assert version is not None
    serving.wait(version)
    assert serving.handles.PaymentProcessor.create(user(2, "CA")) == "premium"


def test_the_default_author_is_the_os_user(serving: Serving, run: Run) -> None:
    run("set", "PaymentProcessor", "premium", "--where", "Country=CA", "--yes")
    [change] = serving.app.admin.history("PaymentProcessor")
    assert change.author == feats._changes.default_author()
    assert change.reason == "route Country=CA to premium"


def test_rollback_to_the_previous_and_to_a_named_version(serving: Serving, run: Run) -> None:
    processor = serving.handles.PaymentProcessor
    first = written(run("set", "PaymentProcessor", "acme", "--yes", "--json"))
    written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    back = written(run("rollback", "PaymentProcessor", "--yes", "--json", "--reason", "recovered"))
    serving.wait(back)
    assert processor.create(user(3, "CA")) == "acme"
    assert (
        serving.app.admin.get_state("PaymentProcessor")
        == serving.app.admin.history("PaymentProcessor")[0].state
    )

    written(run("set", "PaymentProcessor", "aperture", "-y", "--json"))
    again = written(run("rollback", "PaymentProcessor", first, "-y", "--json"))
    serving.wait(again)
    assert processor.create(user(3, "GB")) == "acme"
    assert len(serving.app.admin.history("PaymentProcessor")) == 5


def test_rollout_then_more_keeps_every_earlier_user(serving: Serving, run: Run) -> None:
    processor = serving.handles.PaymentProcessor
    us_users = [user(i, "US") for i in range(4000)]
    five = written(
        run(
            "rollout",
            "PaymentProcessor",
            "--by",
            "UserId",
            "aperture=5",
            "acme=95",
            "--where",
            "Country=US",
            "--yes",
            "--json",
        )
    )
    serving.wait(five)
    before = {u.id for u in us_users if processor.find_implementation(u) == "aperture"}
    assert 120 < len(before) < 280
    assert processor.create(user(7, "CA")) == "acme"

    result = run(
        "rollout",
        "PaymentProcessor",
        "--by",
        "UserId",
        "aperture=25",
        "acme=75",
        "--where",
        "Country=US",
        "--yes",
    )
    assert result.exit_code == 0, result.output
    assert "moves 20% of these users: acme→aperture 20%" in result.stdout
    version = serving.app.admin.get_version("PaymentProcessor")
    assert version is not None
    serving.wait(version)
    after = {u.id for u in us_users if processor.find_implementation(u) == "aperture"}
    assert before <= after
    assert 850 < len(after) < 1150


def test_experiment_start_exposures_and_stop(serving: Serving, run: Run) -> None:
    priorities = serving.handles.AllowedPriorities
    started = written(
        run(
            "experiment",
            "AllowedPriorities",
            "--by",
            "UserId",
            "no_priority=34",
            "two_priorities=33",
            "three_priorities=33",
            "--yes",
            "--json",
        )
    )
    serving.wait(started)
    for i in range(600):
        priorities.create(user(i))
    serving.app.flush()

    report = json_of(run("exposures", "AllowedPriorities", "--json"))
    assert report["total"] == 600
    counts = {row["implementation"]: row["exposures"] for row in report["implementations"]}
    assert set(counts) == {"no_priority", "two_priorities", "three_priorities"}
    assert all(150 < count < 250 for count in counts.values())
    assert report["versions"] == [started]

    table = run("exposures", "AllowedPriorities", "--by-value")
    assert table.exit_code == 0, table.output
    assert "Exposures of AllowedPriorities: 600 in total" in table.stdout
    assert "Per segment value" in table.stdout
    since = json_of(run("exposures", "AllowedPriorities", "--since", "9999999999999-0", "--json"))
    assert since["total"] == 0

    stopped = written(
        run(
            "experiment",
            "AllowedPriorities",
            "--stop",
            "--winner",
            "three_priorities",
            "--yes",
            "--json",
        )
    )
    serving.wait(stopped)
    assert priorities.create(user(1)) == ["Important", "Normal", "Unimportant"]


def test_history_is_oldest_first_with_who_when_why_and_diff(serving: Serving, run: Run) -> None:
    first = written(
        run(
            "set",
            "PaymentProcessor",
            "premium",
            "-w",
            "Country=CA",
            "-y",
            "--json",
            "--author",
            "alice",
            "--reason",
            "Acme fails in Canada",
        )
    )
    second = written(
        run(
            "rollback",
            "PaymentProcessor",
            "-y",
            "--json",
            "--author",
            "bob",
            "--reason",
            "Acme recovered",
        )
    )
    entries = json_of(run("history", "PaymentProcessor", "--json"))
    assert [entry["version"] for entry in entries] == [first, second]
    assert [entry["author"] for entry in entries] == ["alice", "bob"]
    assert [line["text"] for line in entries[0]["diff"]] == [
        "~ segments: (none) → Country",
        "+ Country=CA: premium",
    ]
    assert [line["text"] for line in entries[1]["diff"]] == [
        "- configuration: 1 rule (reset: the default answers)"
    ]

    table = run("history", "PaymentProcessor")
    assert table.exit_code == 0, table.output
    for text in (first, second, "alice", "bob", "Acme fails in Canada", "+ Country=CA: premium"):
        assert text in table.stdout
    assert json_of(run("history", "PaymentProcessor", "--json", "--limit", "1"))[0]["version"] == (
        second
    )


def test_diff_between_two_versions(serving: Serving, run: Run) -> None:
    five = written(
        run(
            "rollout", "PaymentProcessor", "--by", "UserId", "aperture=5", "acme=95", "-y", "--json"
        )
    )
    ten = written(
        run(
            "rollout",
            "PaymentProcessor",
            "--by",
            "UserId",
            "aperture=10",
            "acme=90",
            "-y",
            "--json",
        )
    )
    result = run("diff", "PaymentProcessor", five, ten)
    assert result.exit_code == 0, result.output
    assert "moves 5% of these users: acme→aperture 5%" in result.stdout
    lines = json_of(run("diff", "PaymentProcessor", "", "--json"))
    assert [line["op"] for line in lines] == ["+"]


def test_explain_which_implementation_and_why(serving: Serving, run: Run) -> None:
    written(
        run(
            "rollout",
            "PaymentProcessor",
            "--by",
            "UserId",
            "aperture=50",
            "acme=50",
            "-w",
            "Country=US",
            "-y",
            "--json",
        )
    )
    written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    version = serving.app.admin.get_version("PaymentProcessor")
    assert version is not None
    serving.wait(version)
    for i in range(40):
        data = json_of(run("explain", "PaymentProcessor", "Country=US", f"UserId={i}", "--json"))
        assert data["implementation"] == serving.handles.PaymentProcessor.find_implementation(
            user(i, "US")
        )
        assert data["bucket"] == serving.handles.PaymentProcessor.explain(user(i, "US")).bucket
    result = run("explain", "PaymentProcessor", "country=ca")
    assert result.exit_code == 0, result.output
    assert "PaymentProcessor → premium" in result.stdout
    assert "rule Country=CA: static premium" in result.stdout


def test_remove_a_rule_and_reset(serving: Serving, run: Run) -> None:
    processor = serving.handles.PaymentProcessor
    written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    written(run("set", "PaymentProcessor", "aperture", "-y", "--json"))
    removed = written(run("remove", "PaymentProcessor", "-w", "Country=CA", "-y", "--json"))
    serving.wait(removed)
    assert processor.create(user(1, "CA")) == "aperture"
    reset = written(run("reset", "PaymentProcessor", "-y", "--json"))
    serving.wait(reset)
    assert processor.create(user(1, "CA")) == "acme"
    assert processor.explain(user(1, "CA")).reason == "no configuration: the default answers"


def test_drift_finds_undeclared_unconfigured_and_stale_rules(
    serving: Serving, run: Run, sync_redis: redis.Redis, namespace: str
) -> None:
    # An older deploy (never started, so it published nothing) configured what is gone now.
    old = feats.App(storage=feats.RedisStorage(sync_redis, namespace))

    @old.feature
    class Legacy:
        @old.default
        def on(self) -> str:
            return "on"

    @old.segment
    class Country:
        def user(self, user: object) -> str:
            return "?"

    @old.feature
    class PaymentProcessor:
        @old.default
        def acme(self, user: object) -> str:
            return "acme"

        def bitcoin(self, user: object) -> str:
            return "bitcoin"

    # By name: mypy does not apply class decorators (python/mypy#3135).
    old.admin.set_state("Legacy", feats.FeatureState(), author="old", reason="old")
    old.admin.route(
        "PaymentProcessor", "bitcoin", where={"Country": "MX"}, author="old", reason="old"
    )

    result = run("drift", "--json")
    assert result.exit_code == Exit.DRIFT, result.output
    found = {(item["feature"], item["kind"]) for item in json.loads(result.stdout)}
    assert found == {
        ("Legacy", "undeclared"),
        ("PaymentProcessor", "invalid"),
        ("AllowedPriorities", "unconfigured"),
        ("ImageProcessing", "unconfigured"),
    }
    table = run("drift")
    assert "unknown implementation 'bitcoin'" in table.stdout


def test_drift_is_clean_when_all_is_configured(serving: Serving, run: Run) -> None:
    for feature, implementation in (
        ("PaymentProcessor", "acme"),
        ("AllowedPriorities", "no_priority"),
        ("ImageProcessing", "enabled"),
    ):
        written(run("set", feature, implementation, "-y", "--json"))
    result = run("drift")
    assert result.exit_code == 0, result.output
    assert "No drift" in result.stdout


def test_catalog_lists_what_each_deploy_published(serving: Serving, run: Run) -> None:
    data = json_of(run("catalog", "--json"))
    [entry] = data["entries"]
    assert entry["features"] == ["PaymentProcessor", "AllowedPriorities", "ImageProcessing"]
    assert entry["segments"] == ["Country", "UserId"]
    assert entry["pid"] == os.getpid()
    assert run("catalog").exit_code == 0


def test_identical_deploys_share_one_catalog_entry(
    serving: Serving, run: Run, sync_redis: redis.Redis, namespace: str
) -> None:
    twin = feats.App(storage=feats.RedisStorage(sync_redis, namespace, block_ms=500))
    declare(twin)
    with twin:
        pass
    assert len(json_of(run("catalog", "--json"))["entries"]) == 1


async def test_an_asyncio_app_publishes_and_follows(
    async_redis: redis.asyncio.Redis, run: Run, namespace: str, redis_url: str
) -> None:
    app = feats.aio.App(storage=feats.aio.RedisStorage(async_redis, namespace, block_ms=500))
    handles = declare(app)
    async with app:
        await asyncio.to_thread(wait_for_catalog, redis_url, namespace)
        version = written(
            run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json")
        )
        await app.wait_for_version(version, timeout=5)
        assert await handles.PaymentProcessor.create(user(1, "CA")) == "premium"


def test_app_option_validates_without_any_catalog(
    run: Run, sync_redis: redis.Redis, namespace: str
) -> None:
    assert json_of(run("catalog", "--json"))["entries"] == []
    no_catalog = run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y")
    assert no_catalog.exit_code == Exit.NOT_FOUND
    assert "no App has published a catalog" in no_catalog.stderr

    with_app = run(
        "--app",
        "tests.cli._shop:app",
        "set",
        "PaymentProcessor",
        "premium",
        "-w",
        "Country=CA",
        "-y",
        "--json",
    )
    version = written(with_app)
    app = feats.App(storage=feats.RedisStorage(sync_redis, namespace, block_ms=500))
    handles = declare(app)
    with app:
        app.wait_for_version(version, timeout=5)
        assert handles.PaymentProcessor.create(user(1, "CA")) == "premium"

    typo = run("--app", "tests.cli._shop:ap", "list")
    assert typo.exit_code == Exit.USAGE
    assert "has no attribute ap" in typo.stderr
    missing = run("list", "--app", "tests.cli._nowhere:app")
    assert missing.exit_code == Exit.USAGE
    assert "cannot import tests.cli._nowhere" in missing.stderr


@pytest.fixture
def watcher(redis_url: str, namespace: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feats",
            "watch",
            "--redis",
            redis_url,
            "--namespace",
            namespace,
            "--count",
            "2",
            "--timeout",
            "30",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_watch_tails_changes_live(
    serving: Serving, run: Run, watcher: subprocess.Popen[str]
) -> None:
    assert watcher.stderr is not None and watcher.stdout is not None
    ready = watcher.stderr.readline()
    assert "watching namespace" in ready, ready
    first = written(
        run(
            "set",
            "PaymentProcessor",
            "premium",
            "-w",
            "Country=CA",
            "-y",
            "--json",
            "--author",
            "alice",
            "--reason",
            "CA down",
        )
    )
    second = written(run("rollback", "PaymentProcessor", "-y", "--json"))
    out, _ = watcher.communicate(timeout=30)
    assert watcher.returncode == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["version"] for line in lines] == [first, second]
    assert lines[0]["author"] == "alice"
    assert [d["text"] for d in lines[0]["diff"]][-1] == "+ Country=CA: premium"
    assert lines[1]["diff"][0]["op"] == "-"


def test_watch_from_a_version_and_with_a_timeout(serving: Serving, run: Run) -> None:
    first = written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    written(run("set", "AllowedPriorities", "two_priorities", "-y", "--json"))
    result = run("watch", "--after", "0-0", "--count", "2")
    assert result.exit_code == 0, result.output
    assert "PaymentProcessor " + first in result.stdout
    assert "+ fallthrough: two_priorities" in result.stdout

    only = run("watch", "AllowedPriorities", "--after", "0-0", "--timeout", "0.3", "--json")
    assert only.exit_code == 0, only.output
    assert [json.loads(line)["feature"] for line in only.stdout.splitlines()] == [
        "AllowedPriorities"
    ]


def test_python_dash_m_feats(redis_url: str, namespace: str, serving: Serving) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "feats", "list", "--json", "--redis", redis_url, "-n", namespace],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert {row["feature"] for row in json.loads(result.stdout)} == {
        "PaymentProcessor",
        "AllowedPriorities",
        "ImageProcessing",
    }


def _feats(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEATS_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "feats", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("where", ["checkout", "elsewhere"])
def test_bench_runs_the_checkouts_suite_in_its_own_process(where: str, tmp_path: Path) -> None:
    # From the checkout, or from anywhere with feats installed from it (pip install -e).
    result = _feats("bench", "--help", cwd=ROOT if where == "checkout" else tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: python -m benchmarks" in result.stdout
    assert "--quick" in result.stdout


def test_bench_from_an_installed_package_says_what_to_do(tmp_path: Path) -> None:
    # An installed package: feats alone in a site directory, no checkout around it.
    site = tmp_path / "site"
    shutil.copytree(ROOT / "feats", site / "feats", ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = _feats("--version", cwd=elsewhere, PYTHONPATH=str(site))
    assert located.returncode == 0, located.stderr
    where = subprocess.run(
        [sys.executable, "-c", "import feats; print(feats.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        check=True,
    )
    assert where.stdout.strip() == str(site / "feats" / "__init__.py")

    result = _feats("bench", "--quick", cwd=elsewhere, PYTHONPATH=str(site))
    assert result.returncode == Exit.USAGE, result.stderr
    assert "feats bench runs the benchmark suite of a source checkout" in result.stderr
    assert "git clone https://github.com/feats-dev/feats" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (elsewhere / "benchmarks").exists()


def test_app_imports_a_package_from_the_working_directory(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    """The seed's layout (myapp/feats.py), run from the project's directory by the console
    script, whose sys.path does not include it: found without editing sys.path."""
    package = tmp_path / "myshop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "feats.py").write_text(
        "import feats\n"
        "from feats._cli._shop import declare\n"
        "app = feats.App()\n"
        "declare(app, ('Country', 'UserId', 'PaymentProcessor'))\n"
    )
    script = Path(sys.executable).with_name("feats")
    result = subprocess.run(
        [
            str(script),
            "--redis",
            redis_url,
            "-n",
            namespace,
            "--app",
            "myshop.feats:app",
            "list",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("FEATS_")},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [row["feature"] for row in json.loads(result.stdout)] == ["PaymentProcessor"]


def test_the_cli_never_edits_sys_path() -> None:
    edits = re.compile(r"sys\.path\s*(\.(insert|append|extend|remove)|\[|[+]?=)")
    for source in (ROOT / "feats").rglob("*.py"):
        assert not edits.search(source.read_text()), source
