"""Every change goes form → preview → compare-and-set write, with the signed-in author."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

import feats

from .conftest import CSRF, Serving, csrf_of


def token(client: TestClient) -> str:
    return csrf_of(client, "/features/PaymentProcessor")


def apply(client: TestClient, fields: dict[str, str]) -> tuple[int, str]:
    response = client.post(
        "/features/PaymentProcessor/apply",
        data={"csrf": token(client), **fields},
        follow_redirects=False,
    )
    return response.status_code, response.text


CANADA = {"kind": "route", "where.Country": "CA", "implementation": "premium"}


def test_route_preview_shows_the_diff_and_writes_nothing(
    editor: TestClient, serving: Serving
) -> None:
    page = editor.get("/features/PaymentProcessor/edit/route")
    assert page.status_code == 200
    assert '<option value="CA">CA</option>' in page.text  # Country's OPTIONS as a select
    assert 'name="where.UserId"' in page.text  # no OPTIONS: a text field
    response = editor.post(
        "/features/PaymentProcessor/preview",
        data={"csrf": token(editor), "expected_version": "", **CANADA},
    )
    assert response.status_code == 200
    assert "Country=CA" in response.text and "premium" in response.text
    assert 'name="reason"' in response.text and "Recorded as <b>alice</b>" in response.text
    assert serving.history() == []


def test_apply_writes_with_the_user_as_author(editor: TestClient, serving: Serving) -> None:
    status, _ = apply(editor, {**CANADA, "expected_version": "", "reason": "Acme fails in Canada"})
    assert status == 303
    [change] = serving.history()
    assert (change.author, change.reason) == ("alice", "Acme fails in Canada")
    assert change.state == feats.FeatureState(
        segments=["Country"], rules={("CA",): feats.Static("premium")}
    )
    page = editor.get("/features/PaymentProcessor")
    assert f"is now at version {change.version}" in page.text  # the flash, once
    assert "is now at version" not in editor.get("/features/PaymentProcessor").text


def test_a_reason_is_required(editor: TestClient, serving: Serving) -> None:
    status, text = apply(editor, {**CANADA, "expected_version": "", "reason": "  "})
    assert status == 400
    assert "say why" in text
    assert serving.history() == []


def test_a_stale_page_shows_both_sides_and_writes_nothing(
    editor: TestClient, serving: Serving
) -> None:
    page = editor.get("/features/PaymentProcessor/edit/route")
    rendered = re.search(r'name="expected_version" value="([^"]*)"', page.text)
    assert rendered is not None and rendered.group(1) == ""
    theirs = serving.admin.route(
        "PaymentProcessor", "aperture", where={"Country": "GB"}, author="bob", reason="GB first"
    )
    status, text = apply(editor, {**CANADA, "expected_version": "", "reason": "mine"})
    assert status == 409
    assert "Nothing was written" in text
    assert theirs in text and "bob" in text and "GB first" in text  # theirs
    assert "Country=CA" in text  # yours, not written
    assert [c.version for c in serving.history()] == [theirs]
    # Reviewing again starts from their version.
    retry = CSRF.sub("", text)
    assert f'name="expected_version" value="{theirs}"' in retry


def test_preview_of_a_stale_form_is_a_conflict_too(editor: TestClient, serving: Serving) -> None:
    serving.admin.route("PaymentProcessor", "aperture", author="bob", reason="everyone")
    response = editor.post(
        "/features/PaymentProcessor/preview",
        data={"csrf": token(editor), "expected_version": "", **CANADA},
    )
    assert response.status_code == 409
    assert len(serving.history()) == 1


def test_rollout_weights_must_total_100(editor: TestClient, serving: Serving) -> None:
    fields = {
        "kind": "rollout",
        "where.Country": "US",
        "by": "UserId",
        "weight.aperture": "25",
        "weight.acme": "70",
        "expected_version": "",
    }
    response = editor.post(
        "/features/PaymentProcessor/preview", data={"csrf": token(editor), **fields}
    )
    assert response.status_code == 400
    assert "add up to 95%, not 100%" in response.text
    assert 'value="70"' in response.text  # the form comes back filled in
    status, _ = apply(editor, {**fields, "reason": "sneaky"})
    assert status == 400
    assert serving.history() == []


def test_unknown_option_and_implementation_come_back_with_a_message(
    editor: TestClient, serving: Serving
) -> None:
    for fields, message in [
        (
            {"where.Country": "XX", "implementation": "premium"},
            "unknown option &#39;XX&#39; of Country",
        ),
        ({"where.Country": "CA", "implementation": "premum"}, "did you mean &#39;premium&#39;"),
    ]:
        status, text = apply(
            editor, {"kind": "route", "expected_version": "", "reason": "r", **fields}
        )
        assert status == 400, text
        assert message in text
    assert serving.history() == []


def test_a_feature_no_app_declares_cannot_be_edited(editor: TestClient, serving: Serving) -> None:
    response = editor.get("/features/Nothing/edit/route")
    assert response.status_code == 404
    response = editor.post(
        "/features/Nothing/apply",
        data={"csrf": token(editor), **CANADA, "expected_version": "", "reason": "r"},
    )
    assert response.status_code == 404


def test_raising_a_rollout_shows_who_moves_from_the_diff_core(
    editor: TestClient, serving: Serving
) -> None:
    serving.admin.rollout(
        "PaymentProcessor",
        "UserId",
        {"aperture": 5, "acme": 95},
        where={"Country": "US"},
        author="ops",
        reason="carefully",
    )
    version = serving.history()[-1].version
    fields = {
        "kind": "rollout",
        "where.Country": "US",
        "by": "UserId",
        "weight.aperture": "25",
        "weight.acme": "75",
        "weight.premium": "0",
        "expected_version": version,
    }
    live = editor.get("/features/PaymentProcessor/plan.json", params=fields).json()
    expected = serving.admin.preview(
        "PaymentProcessor",
        feats.SetRollout("UserId", {"aperture": 25, "acme": 75}, {"Country": "US"}),
    )
    assert live["ok"] and not live["stale"]
    assert [line["note"] for line in live["diff"]] == [line.note for line in expected.diff]
    assert live["diff"][0]["note"] == "moves 20% of these users: acme→aperture 20%"
    page = editor.post("/features/PaymentProcessor/preview", data={"csrf": token(editor), **fields})
    assert "moves 20% of these users: acme→aperture 20%" in page.text
    status, _ = apply(editor, {**fields, "reason": "no integration issues"})
    assert status == 303
    after = serving.history()[-1].state
    assert after is not None
    raised = after.rules[("US",)]
    assert isinstance(raised, feats.Rollout)
    assert dict(raised.weights) == {"aperture": 25, "acme": 75}


ORDER = re.compile(r'name="order" id="weight-order" value="([^"]*)"')


def _rule_weights(serving: Serving, country: str = "US") -> list[str]:
    """The implementations of the rollout for ``country``, in their stored order."""
    state = serving.history()[-1].state
    assert state is not None
    rule = state.rules[(country,)]
    assert isinstance(rule, feats.Rollout)
    return list(rule.weights)


def test_a_first_rollout_is_written_in_the_order_its_weights_were_filled_in(
    editor: TestClient, serving: Serving
) -> None:
    page = editor.get("/features/PaymentProcessor/edit/rollout")
    found = ORDER.search(page.text)
    assert found is not None and found.group(1) == ""  # new: the script records the order
    # The form lists the declaration's order (acme first); aperture was filled in first.
    fields = {
        "kind": "rollout",
        "where.Country": "US",
        "by": "UserId",
        "weight.acme": "95",
        "weight.premium": "0",
        "weight.aperture": "5",
        "order": "aperture,acme",
        "expected_version": "",
    }
    live = editor.get("/features/PaymentProcessor/plan.json", params=fields).json()
    assert live["diff"][-1]["after"] == "rollout by UserId: aperture 5%, acme 95%"
    preview = editor.post(
        "/features/PaymentProcessor/preview", data={"csrf": token(editor), **fields}
    )
    assert "rollout by UserId: aperture 5%, acme 95%" in preview.text
    # The preview carries the weights in that order to the write.
    carried = re.findall(r'name="weight\.(\w+)"', preview.text)
    assert carried[:2] == ["aperture", "acme"]
    status, _ = apply(editor, {**fields, "reason": "Aperture, carefully"})
    assert status == 303
    assert _rule_weights(serving) == ["aperture", "acme"]
    # Without the script (no order), the form's own order.
    status, _ = apply(
        editor,
        {
            **{k: v for k, v in fields.items() if k != "order"},
            "where.Country": "MX",
            "expected_version": serving.history()[-1].version,
            "reason": "no script",
        },
    )
    assert status == 303
    assert _rule_weights(serving, "MX") == ["acme", "aperture"]


def test_editing_a_rule_keeps_its_order(editor: TestClient, serving: Serving) -> None:
    serving.admin.rollout(
        "PaymentProcessor",
        "UserId",
        {"aperture": 5, "acme": 95},
        where={"Country": "US"},
        author="ops",
        reason="carefully",
    )
    feature = editor.get("/features/PaymentProcessor").text
    change = re.search(r'href="(/features/PaymentProcessor/edit/rollout\?[^"]+)"', feature)
    assert change is not None
    page = editor.get(change.group(1).replace("&amp;", "&"))
    found = ORDER.search(page.text)
    assert found is not None and found.group(1) == "aperture,acme"
    rows = re.findall(r'id="weight-(\w+)" name="weight', page.text)
    assert rows == ["aperture", "acme", "premium"]


def test_experiment_stop_remove_reset(editor: TestClient, serving: Serving) -> None:
    csrf = token(editor)
    start = {
        "kind": "experiment",
        "by": "UserId",
        "expected_version": "",
        "weight.no_priority": "34",
        "weight.two_priorities": "33",
        "weight.three_priorities": "33",
        "reason": "do priorities help?",
    }
    response = editor.post(
        "/features/AllowedPriorities/apply", data={"csrf": csrf, **start}, follow_redirects=False
    )
    assert response.status_code == 303
    [started] = serving.history("AllowedPriorities")
    assert started.state is not None
    assert isinstance(started.state.fallthrough, feats.Experiment)
    page = editor.get("/features/AllowedPriorities")
    assert "Stop" in page.text
    stop = {
        "kind": "stop",
        "winner": "three_priorities",
        "expected_version": started.version,
        "reason": "three won",
    }
    response = editor.post(
        "/features/AllowedPriorities/apply", data={"csrf": csrf, **stop}, follow_redirects=False
    )
    assert response.status_code == 303
    stopped = serving.history("AllowedPriorities")[-1]
    assert stopped.state is not None and stopped.state.fallthrough == feats.Static(
        "three_priorities"
    )
    remove = {"kind": "remove", "expected_version": stopped.version, "reason": "cleanup"}
    response = editor.post(
        "/features/AllowedPriorities/apply", data={"csrf": csrf, **remove}, follow_redirects=False
    )
    assert response.status_code == 303
    removed = serving.history("AllowedPriorities")[-1]
    reset = {"kind": "reset", "expected_version": removed.version, "reason": "back to default"}
    response = editor.post(
        "/features/AllowedPriorities/apply", data={"csrf": csrf, **reset}, follow_redirects=False
    )
    assert response.status_code == 303
    assert serving.history("AllowedPriorities")[-1].state is None
    assert [c.author for c in serving.history("AllowedPriorities")] == ["alice"] * 4


def test_rollback_to_any_version_with_its_preview(editor: TestClient, serving: Serving) -> None:
    first = serving.admin.route(
        "PaymentProcessor", "premium", where={"Country": "CA"}, author="ops", reason="one"
    )
    second = serving.admin.route(
        "PaymentProcessor", "aperture", where={"Country": "CA"}, author="ops", reason="two"
    )
    history = editor.get("/features/PaymentProcessor/history")
    assert "Roll back to this version" in history.text and first in history.text
    fields = {"kind": "rollback", "version": first, "expected_version": second}
    preview = editor.post(
        "/features/PaymentProcessor/preview", data={"csrf": token(editor), **fields}
    )
    assert preview.status_code == 200
    assert f"roll back to version {first}" in preview.text
    assert "aperture" in preview.text and "premium" in preview.text
    status, _ = apply(editor, {**fields, "reason": "back to one"})
    assert status == 303
    latest = serving.history()[-1]
    assert latest.state == serving.history()[0].state and latest.reason == "back to one"
    # ... and to "never configured".
    fields = {"kind": "rollback", "version": "", "expected_version": latest.version}
    status, _ = apply(editor, {**fields, "reason": "all gone"})
    assert status == 303
    assert serving.history()[-1].state is None


def test_the_diff_between_any_two_versions(editor: TestClient, serving: Serving) -> None:
    first = serving.admin.route(
        "PaymentProcessor", "premium", where={"Country": "CA"}, author="ops", reason="one"
    )
    second = serving.admin.route(
        "PaymentProcessor", "aperture", where={"Country": "US"}, author="ops", reason="two"
    )
    page = editor.get("/features/PaymentProcessor/diff", params={"before": first, "after": second})
    assert (
        page.status_code == 200
        and "Country=US" in page.text
        and "Country=CA" not in page.text.split("<main>")[1].split("</h1>")[1]
    )
    page = editor.get("/features/PaymentProcessor/diff", params={"before": "", "after": second})
    assert "Country=CA" in page.text
    page = editor.get("/features/PaymentProcessor/diff", params={"before": "1-0"})
    assert page.status_code == 400 and "no version" in page.text
