"""Pages and actions the other web tests do not reach: drift markers on the overview,
signing out, the stop-experiment editor, and a feature configured that no App declares."""

from __future__ import annotations

import html
import re

import pytest
import redis
from starlette.testclient import TestClient

import feats

from .conftest import Client, Serving, csrf_of, sign_in

STOP_LINK = re.compile(r'href="(/features/AllowedPriorities/edit/stop\?[^"]+)"')
ARMS = {"no_priority": 50, "two_priorities": 50}


@pytest.fixture
def legacy(serving: Serving, sync_redis: redis.Redis, namespace: str) -> feats.App:
    """An older deploy (never started, so it published no catalog entry) that configured
    ``Legacy``, which no App declares now, and routed Mexico to ``bitcoin``, which the
    serving App's PaymentProcessor does not have."""
    old = feats.App(storage=feats.RedisStorage(sync_redis, namespace))

    @old.feature
    class Legacy:
        @old.default
        def on(self) -> str:
            return "on"

        def off(self) -> str:
            return "off"

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
    old.admin.route("Legacy", "off", author="old", reason="switched off long ago")
    old.admin.route(
        "PaymentProcessor", "bitcoin", where={"Country": "MX"}, author="old", reason="crypto"
    )
    return old


def _row(page: str, feature: str) -> str:
    return page.split(f'id="feature-{feature}"')[1].split("</tr>")[0]


def _marks(row: str) -> list[str]:
    return [
        html.unescape(m) for m in re.findall(r'<div class="drift-mark"[^>]*>([^<]*)</div>', row)
    ]


# -- 1. drift on the overview ----------------------------------------------------------------


def test_overview_marks_the_rules_no_app_can_serve(
    viewer: TestClient, serving: Serving, legacy: feats.App
) -> None:
    page = viewer.get("/")
    assert page.status_code == 200
    [invalid] = _marks(_row(page.text, "PaymentProcessor"))
    assert invalid.startswith("⚠ invalid: ") and "unknown implementation 'bitcoin'" in invalid
    assert _marks(_row(page.text, "Legacy")) == [
        "⚠ undeclared: configured, but no App declares this feature"
    ]
    # Declared and never configured is not drift worth a mark on the overview.
    for name in ("AllowedPriorities", "ImageProcessing", "ConfirmText"):
        assert _marks(_row(page.text, name)) == [], name
    assert "undeclared" in _row(page.text, "Legacy").split('class="sub"')[1].split("</div>")[0]


def test_overview_has_no_marks_once_the_rules_fit(viewer: TestClient, serving: Serving) -> None:
    serving.admin.route(
        "PaymentProcessor", "premium", where={"Country": "MX"}, author="o", reason="r"
    )
    page = viewer.get("/")
    assert 'class="drift-mark"' not in page.text
    assert "Country=MX → premium" in _row(page.text, "PaymentProcessor")


# -- 2. signing out ---------------------------------------------------------------------------


def test_sign_out_ends_the_session(client_for: Client, serving: Serving) -> None:
    with client_for() as client:
        sign_in(client, "alice")
        home = client.get("/")
        assert home.status_code == 200 and "Sign out" in home.text
        token = csrf_of(client, "/")
        # Without the page's token: refused, and still signed in.
        refused = client.post("/logout", data={"csrf": "forged"}, follow_redirects=False)
        assert refused.status_code == 403
        assert client.get("/", follow_redirects=False).status_code == 200
        response = client.post("/logout", data={"csrf": token}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"
        after = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"] == "/login"
        # The token of the signed-in session is not the signed-out one's.
        assert csrf_of(client) != token
        denied = client.post(
            "/features/PaymentProcessor/apply",
            data={
                "csrf": token,
                "kind": "route",
                "implementation": "premium",
                "expected_version": "",
                "reason": "after sign-out",
            },
        )
        assert denied.status_code == 401
    assert serving.history() == []


# -- 3. the stop-experiment editor ------------------------------------------------------------


def _experiment(serving: Serving) -> str:
    return serving.admin.start_experiment(
        "AllowedPriorities",
        "UserId",
        ARMS,
        where={"Country": "US"},
        author="ops",
        reason="do priorities help?",
    )


def test_the_stop_editor_offers_the_experiment_and_its_winners(
    editor: TestClient, serving: Serving
) -> None:
    _experiment(serving)
    version = serving.admin.start_experiment(
        "AllowedPriorities", "UserId", ARMS, author="ops", reason="everyone else too"
    )
    feature = editor.get("/features/AllowedPriorities").text
    links = [html.unescape(link) for link in STOP_LINK.findall(feature)]
    assert len(links) == 2, "a Stop link on each experiment's row"
    keyed, fallthrough_link = links
    assert "where.Country=US" in keyed and "where." not in fallthrough_link
    page = editor.get(keyed)
    assert page.status_code == 200
    assert "<h1>Stop the experiment</h1>" in page.text
    assert "<code>Country=US</code>" in page.text
    assert '<input type="hidden" name="where.Country" value="US">' in page.text
    assert '<input type="hidden" name="kind" value="stop">' in page.text
    assert f'name="expected_version" value="{version}"' in page.text
    winners = re.findall(r'<input type="radio" name="winner" value="(\w*)"( checked)?', page.text)
    assert winners == [
        ("", " checked"),
        ("no_priority", ""),
        ("two_priorities", ""),
        ("three_priorities", ""),
    ]
    # Only the stop form's fields: no weights or split to edit.
    assert 'name="weight.' not in page.text and 'name="by"' not in page.text
    # The fallthrough's experiment: no where to carry.
    fallthrough = editor.get(fallthrough_link)
    assert fallthrough.status_code == 200
    assert "The experiment of the fallthrough" in fallthrough.text
    assert 'name="where.' not in fallthrough.text.split('id="editor"')[1]
    assert len(serving.history("AllowedPriorities")) == 2  # looking writes nothing


def test_stopping_through_the_stop_editor_with_and_without_a_winner(
    editor: TestClient, serving: Serving
) -> None:
    version = _experiment(serving)
    token = csrf_of(editor, "/features/AllowedPriorities/edit/stop?where.Country=US")
    stop = {
        "csrf": token,
        "kind": "stop",
        "where.Country": "US",
        "winner": "two_priorities",
        "expected_version": version,
    }
    preview = editor.post("/features/AllowedPriorities/preview", data=stop)
    assert preview.status_code == 200
    assert "stop the experiment for Country=US, two_priorities wins" in preview.text
    back = re.search(r'<a href="([^"]+)">Back</a>', preview.text)
    assert back is not None and "/features/AllowedPriorities/edit/stop?" in back.group(1)
    assert "winner=two_priorities" in html.unescape(back.group(1))
    assert len(serving.history("AllowedPriorities")) == 1
    applied = editor.post(
        "/features/AllowedPriorities/apply",
        data={**stop, "reason": "two won"},
        follow_redirects=False,
    )
    assert applied.status_code == 303
    stopped = serving.history("AllowedPriorities")[-1]
    assert stopped.state is not None
    assert stopped.state.rules[("US",)] == feats.Static("two_priorities")
    assert (stopped.author, stopped.reason) == ("alice", "two won")

    # Again with no winner, on a second experiment: the rule goes.
    again = serving.admin.start_experiment(
        "AllowedPriorities", "UserId", ARMS, where={"Country": "CA"}, author="ops", reason="CA"
    )
    applied = editor.post(
        "/features/AllowedPriorities/apply",
        data={
            "csrf": token,
            "kind": "stop",
            "where.Country": "CA",
            "winner": "",
            "expected_version": again,
            "reason": "inconclusive",
        },
        follow_redirects=False,
    )
    assert applied.status_code == 303
    removed = serving.history("AllowedPriorities")[-1].state
    assert removed is not None and ("CA",) not in removed.rules
    assert removed.rules[("US",)] == feats.Static("two_priorities")


def test_stopping_what_runs_no_experiment_comes_back_to_the_stop_editor(
    editor: TestClient, serving: Serving
) -> None:
    _experiment(serving)
    serving.admin.route(
        "AllowedPriorities", "three_priorities", where={"Country": "CA"}, author="o", reason="r"
    )
    version = serving.history("AllowedPriorities")[-1].version
    response = editor.post(
        "/features/AllowedPriorities/apply",
        data={
            "csrf": csrf_of(editor, "/"),
            "kind": "stop",
            "where.Country": "CA",
            "expected_version": version,
            "reason": "oops",
        },
    )
    assert response.status_code == 400
    assert "<h1>Stop the experiment</h1>" in response.text
    assert "Country=CA runs no experiment" in html.unescape(response.text)
    assert '<input type="hidden" name="where.Country" value="CA">' in response.text
    assert len(serving.history("AllowedPriorities")) == 2


# -- 4. configured, but no App declares it ---------------------------------------------------


def test_a_feature_only_redis_knows_says_so_and_can_only_be_reset(
    editor: TestClient, serving: Serving, legacy: feats.App
) -> None:
    page = editor.get("/features/Legacy")
    assert page.status_code == 200
    assert '<span class="kind">undeclared</span>' in page.text
    assert "No App declares Legacy any more: its implementations are unknown." in page.text
    assert "⚠ undeclared: configured, but no App declares this feature" in page.text
    assert "Route users…" not in page.text and "/features/Legacy/edit/" not in page.text
    assert "Reset to the default…" in page.text
    for kind in ("route", "rollout", "experiment", "stop"):
        response = editor.get(f"/features/Legacy/edit/{kind}")
        assert response.status_code == 400, kind
        assert "No App declares Legacy" in response.text
        assert "this feature can only be reset" in response.text
    version = legacy.admin.history("Legacy")[-1].version
    token = csrf_of(editor, "/features/Legacy")
    route = {
        "csrf": token,
        "kind": "route",
        "implementation": "on",
        "expected_version": version,
        "reason": "back on",
    }
    for action in ("preview", "apply"):
        response = editor.post(f"/features/Legacy/{action}", data=route)
        assert response.status_code == 400, action
        assert "No App declares Legacy" in response.text
    assert len(legacy.admin.history("Legacy")) == 1
    # What the page offers, it does.
    reset = {"csrf": token, "kind": "reset", "expected_version": version, "reason": "gone"}
    applied = editor.post("/features/Legacy/apply", data=reset, follow_redirects=False)
    assert applied.status_code == 303
    last = legacy.admin.history("Legacy")[-1]
    assert last.state is None and (last.author, last.reason) == ("alice", "gone")
