"""Mistakes get one clear message, a meaningful exit code, and change nothing."""

from __future__ import annotations

import io
import json
import time

import pytest
from click.testing import CliRunner

import feats
from feats._cli import Exit, cli

from .conftest import Run, Serving, written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("set", "PaymentProcessor", "premum", "--where", "Country=CA"),
            "unknown implementation 'premum' of PaymentProcessor; did you mean 'premium'?",
        ),
        (
            ("set", "PaymentProcesor", "premium"),
            "unknown feature 'PaymentProcesor'; did you mean 'PaymentProcessor'?",
        ),
        (
            ("set", "PaymentProcessor", "premium", "--where", "Contry=CA"),
            "unknown segment 'Contry'; did you mean 'Country'?",
        ),
        (
            ("set", "PaymentProcessor", "premium", "--where", "Country=CAN"),
            "unknown option 'CAN' of Country; did you mean 'CA'?",
        ),
        (
            ("rollout", "PaymentProcessor", "--by", "UserID", "aperture=5", "acme=95"),
            None,  # a unique case-insensitive match is accepted
        ),
        (
            ("rollout", "PaymentProcessor", "--by", "UsrId", "apertur=5", "acme=95"),
            "unknown segment 'UsrId'; did you mean 'UserId'?",
        ),
        (
            ("rollout", "PaymentProcessor", "--by", "UserId", "apertur=5", "acme=95"),
            "unknown implementation 'apertur' of PaymentProcessor; did you mean 'aperture'?",
        ),
        (
            ("explain", "PaymentProcessor", "Country=ca", "Usrid=4"),
            "unknown segment 'Usrid'; did you mean 'UserId'?",
        ),
        (("history", "PaymentProcessr"), "did you mean 'PaymentProcessor'?"),
        (("show", "Nothing"), "unknown feature 'Nothing' (features: "),
    ],
)
def test_unknown_names_suggest_the_close_one(
    serving: Serving, run: Run, args: tuple[str, ...], message: str | None
) -> None:
    result = run(*args, "--yes") if args[0] in ("set", "rollout") else run(*args)
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == Exit.NOT_FOUND, result.output
    assert message in result.stderr
    assert serving.app.admin.history("PaymentProcessor") == []


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (("aperture=5", "acme=90"), "weights add up to 95, not 100 (aperture=5 acme=90)"),
        (("aperture=five", "acme=95"), "weight of aperture: 'five' is not a number"),
        (("aperture=-5", "acme=105"), "weight of aperture: '-5' must be a number from 0 to 100"),
        (("aperture", "acme=100"), "bad weight 'aperture': expected IMPLEMENTATION=WEIGHT"),
        (("aperture=nan", "acme=100"), "must be a number from 0 to 100"),
        (("aperture=5", "aperture=95"), "weight of aperture: given twice"),
    ],
)
def test_bad_weights_are_refused(
    serving: Serving, run: Run, weights: tuple[str, ...], message: str
) -> None:
    result = run("rollout", "PaymentProcessor", "--by", "UserId", *weights, "--yes")
    assert result.exit_code == Exit.INVALID, result.output
    assert message in result.stderr
    assert serving.app.admin.history("PaymentProcessor") == []


def test_percent_signs_are_fine(serving: Serving, run: Run) -> None:
    version = written(
        run(
            "rollout",
            "PaymentProcessor",
            "--by",
            "UserId",
            "aperture=5%",
            "acme=95%",
            "-y",
            "--json",
        )
    )
    state = serving.app.admin.get_state("PaymentProcessor")
    assert state is not None and isinstance(state.fallthrough, feats.Rollout)
    assert state.fallthrough == feats.Rollout(
        "UserId", {"aperture": 5, "acme": 95}, salt=state.fallthrough.salt
    ).resolved("PaymentProcessor", None, None)
    assert version


def test_an_unreachable_redis_is_reported_fast(closed_port: int, namespace: str) -> None:
    began = time.monotonic()
    result = CliRunner().invoke(
        cli, ["--redis", f"redis://127.0.0.1:{closed_port}/0", "-n", namespace, "list"]
    )
    assert time.monotonic() - began < 5
    assert result.exit_code == Exit.UNREACHABLE
    assert f"cannot reach Redis at redis://127.0.0.1:{closed_port}/0" in result.stderr
    assert "FEATS_REDIS_URL" in result.stderr


def test_the_redis_url_comes_from_the_environment(closed_port: int, namespace: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["list", "--json"],
        env={"FEATS_REDIS_URL": f"redis://user:secret@127.0.0.1:{closed_port}/0"},
    )
    assert result.exit_code == Exit.UNREACHABLE
    assert "secret" not in result.output
    assert json.loads(result.stdout)["error"] == "unreachable"


def test_a_stale_expected_version_is_a_conflict_showing_both(serving: Serving, run: Run) -> None:
    base = written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    theirs = written(
        run(
            "set",
            "PaymentProcessor",
            "aperture",
            "-w",
            "Country=CA",
            "-y",
            "--json",
            "--author",
            "bob",
            "--reason",
            "aperture for Canada",
        )
    )
    result = run(
        "set", "PaymentProcessor", "acme", "-w", "Country=CA", "-y", "--expect-version", base
    )
    assert result.exit_code == Exit.CONFLICT, result.output
    assert f"based on version {base}, but PaymentProcessor is now at {theirs}" in result.stderr
    assert "bob" in result.stderr and "aperture for Canada" in result.stderr
    assert "~ Country=CA: premium → aperture" in result.stderr
    assert "yours (not written):" in result.stderr
    assert "~ Country=CA: aperture → acme" in result.stderr
    assert serving.app.admin.get_version("PaymentProcessor") == theirs


class _ChangesWhileAsked(io.BytesIO):
    """Answers "y" to the confirmation, but someone else writes while the operator reads."""

    def __init__(self, serving: Serving) -> None:
        super().__init__(b"y\n")
        self.serving = serving
        self.raced = False

    def _race(self, size: int | None) -> None:
        if size != 0 and not self.raced:
            self.raced = True
            self.serving.app.admin.route(
                "PaymentProcessor",
                "aperture",
                where={"Country": "CA"},
                author="carol",
                reason="at the same time",
            )

    def read(self, size: int | None = -1) -> bytes:
        self._race(size)
        return super().read(size)

    def read1(self, size: int | None = -1) -> bytes:
        self._race(size)
        return super().read1(size)

    def readline(self, size: int | None = -1) -> bytes:
        self._race(size)
        return super().readline(size)


def test_a_concurrent_change_during_confirmation_is_a_conflict(serving: Serving, run: Run) -> None:
    written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    answer = _ChangesWhileAsked(serving)
    result = run("set", "PaymentProcessor", "acme", "-w", "Country=CA", input=answer)
    assert answer.raced
    assert result.exit_code == Exit.CONFLICT, result.output
    assert "carol" in result.stderr and "at the same time" in result.stderr
    assert "~ Country=CA: premium → aperture" in result.stderr
    assert "~ Country=CA: premium → acme" in result.stderr
    state = serving.app.admin.get_state("PaymentProcessor")
    assert state is not None and state.rules[("CA",)] == feats.Static("aperture")


def test_errors_in_json_mode_are_json_too(serving: Serving, run: Run) -> None:
    result = run("set", "PaymentProcessor", "premum", "-y", "--json")
    assert result.exit_code == Exit.NOT_FOUND
    data = json.loads(result.stdout)
    assert data["error"] == "not_found"
    assert "did you mean 'premium'?" in data["message"]


def test_other_mistakes(serving: Serving, run: Run) -> None:
    unknown_version = run("rollback", "PaymentProcessor", "123-0", "-y")
    assert unknown_version.exit_code == Exit.NOT_FOUND
    assert "no version '123-0'" in unknown_version.stderr

    nothing = run("rollback", "PaymentProcessor", "-y")
    assert nothing.exit_code == Exit.NOT_FOUND
    assert "never configured" in nothing.stderr

    no_experiment = run("experiment", "AllowedPriorities", "--stop", "-y")
    assert no_experiment.exit_code == Exit.NOT_FOUND
    assert "no configuration" in no_experiment.stderr

    no_by = run("experiment", "AllowedPriorities", "no_priority=50", "two_priorities=50", "-y")
    assert no_by.exit_code == Exit.USAGE
    assert "--by SEGMENT" in no_by.stderr

    no_rule = run("remove", "PaymentProcessor", "-w", "Country=GB", "-y")
    assert no_rule.exit_code == Exit.NOT_FOUND

    written(run("set", "PaymentProcessor", "premium", "-w", "Country=CA", "-y", "--json"))
    reshape = run("set", "PaymentProcessor", "premium", "-w", "UserId=7", "-y")
    assert reshape.exit_code == Exit.INVALID
    assert "rules are keyed by Country" in reshape.stderr
    assert "--resegment" in reshape.stderr or "resegment" in reshape.stderr

    needs_value = run("explain", "PaymentProcessor", "UserId=3")
    assert needs_value.exit_code == Exit.INVALID
    assert "give Country=VALUE" in needs_value.stderr

    bad_pair = run("explain", "PaymentProcessor", "Country")
    assert bad_pair.exit_code == Exit.INVALID
    assert "expected SEGMENT=VALUE" in bad_pair.stderr

    bad_namespace = run("list", "--namespace", "no spaces")
    assert bad_namespace.exit_code == Exit.USAGE

    assert len(serving.app.admin.history("PaymentProcessor")) == 1
