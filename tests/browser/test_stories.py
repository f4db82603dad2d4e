"""The seed README's five stories, clicked through in Chromium, each served by another App.

Every test signs in to the standalone ``feats web``, makes its change through the form and
the preview page, checks that the App in the other process serves it, and takes the
screenshots the README shows (into docs/screenshots/ only with FEATS_SCREENSHOTS set).
"""

from __future__ import annotations

from collections import Counter

from playwright.sync_api import Page, expect

import feats

from .conftest import Shoot, Stack, sign_in

US_USERS = [(i, "US") for i in range(1, 2001)]


def open_feature(page: Page, stack: Stack, name: str) -> None:
    page.goto(stack.base + "/")
    page.get_by_role("link", name=name, exact=True).first.click()
    expect(page.locator("h1")).to_contain_text(name)


def preview_and_apply(
    page: Page,
    stack: Stack,
    reason: str,
    shot: tuple[Shoot, str] | None = None,
    feature: str = "PaymentProcessor",
) -> str:
    """From an editor: preview, give the reason, apply; the version written."""
    page.get_by_role("button", name="Preview the change").click()
    expect(page.locator("h1")).to_contain_text("Review:")
    page.get_by_label("Why?").fill(reason)
    if shot:
        shoot, name = shot
        shoot(page, name)
    before = len(stack.history(feature))
    page.get_by_role("button", name="Apply to").click()
    expect(page.locator(".banner.ok")).to_contain_text("is now at version")
    history = stack.history(feature)
    assert len(history) == before + 1
    latest = history[-1]
    assert (latest.author, latest.reason) == ("alice", reason)
    expect(page.locator(".banner.ok")).to_contain_text(latest.version)
    return latest.version


def set_weights(page: Page, weights: dict[str, int]) -> None:
    """Fill the weights in, in the order given."""
    for name, weight in weights.items():
        page.locator(f"#weight-{name}").fill(str(weight))
    expect(page.locator("#total")).to_have_text("100")


def test_canada_to_premium(page: Page, stack: Stack, shoot: Shoot) -> None:
    sign_in(page, stack)
    open_feature(page, stack, "PaymentProcessor")
    expect(page.locator("table.impls")).to_contain_text("2% + $0.30 / Transaction")
    expect(page.locator("tr.default")).to_contain_text("acme")
    page.get_by_role("link", name="Route users…").click()
    page.get_by_label("Country").select_option("CA")
    page.locator("input[name=implementation][value=premium]").check()
    expect(page.locator("#plan-out")).to_contain_text("Country=CA: premium")
    shoot(page, "canada-route")
    version = preview_and_apply(page, stack, "Acme fails in Canada", shot=(shoot, "canada-preview"))
    expect(page.locator("table.rules")).to_contain_text("premium")
    assert stack.peer.serves(version, "PaymentProcessor", [(1, "CA"), (2, "US"), (3, "GB")]) == [
        "premium",
        "acme",
        "acme",
    ]


def test_rollback(page: Page, stack: Stack, shoot: Shoot) -> None:
    admin = stack.app.admin
    first = admin.set_fallthrough(
        "PaymentProcessor", "acme", author="ops", reason="Everyone pays with Acme"
    )
    second = admin.route(
        "PaymentProcessor",
        "premium",
        where={"Country": "CA"},
        author="ops",
        reason="Acme fails in Canada",
    )
    assert stack.peer.serves(second, "PaymentProcessor", [(1, "CA")]) == ["premium"]
    sign_in(page, stack)
    open_feature(page, stack, "PaymentProcessor")
    page.get_by_role("link", name="History").click()
    expect(page.locator(".entry.current")).to_contain_text(second)
    shoot(page, "rollback-history")
    page.locator(f"#v-{first}").get_by_role("button", name="Roll back to this version…").click()
    expect(page.locator("h1")).to_contain_text(f"roll back to version {first}")
    expect(page.locator("ul.diff")).to_contain_text("Country=CA")
    page.get_by_label("Why?").fill("Acme recovered")
    shoot(page, "rollback-preview")
    page.get_by_role("button", name="Apply to").click()
    expect(page.locator(".banner.ok")).to_contain_text("is now at version")
    latest = stack.history()[-1]
    assert latest.state == stack.history()[0].state and latest.author == "alice"
    assert stack.peer.serves(latest.version, "PaymentProcessor", [(1, "CA"), (2, "US")]) == [
        "acme",
        "acme",
    ]


def test_us_rollout_of_aperture_to_five_percent(page: Page, stack: Stack, shoot: Shoot) -> None:
    sign_in(page, stack)
    open_feature(page, stack, "PaymentProcessor")
    page.get_by_role("link", name="Roll out…").click()
    page.get_by_label("Country").select_option("US")
    page.locator("select[name=by]").select_option("UserId")
    expect(page.locator(".hint .by-name")).to_have_text("UserId")
    # Typed as for the CLI (aperture=5 acme=95): the rule reads in that order, not in the
    # order of the declaration (acme first).
    set_weights(page, {"aperture": 5, "acme": 95})
    expect(page.locator("#plan-out")).to_contain_text(
        "Country=US: rollout by UserId: aperture 5%, acme 95%"
    )
    shoot(page, "us-rollout")
    version = preview_and_apply(page, stack, "Aperture, carefully")
    state = stack.app.admin.get_state("PaymentProcessor")
    assert state is not None and isinstance(rule := state.rules[("US",)], feats.Rollout)
    assert list(rule.weights) == ["aperture", "acme"]
    answers = stack.peer.serves(version, "PaymentProcessor", US_USERS)
    share = answers.count("aperture") / len(answers)
    assert 0.035 < share < 0.065, share
    assert set(answers) == {"aperture", "acme"}
    assert (
        stack.peer.serves(version, "PaymentProcessor", [(i, "CA") for i in range(1, 201)])
        == ["acme"] * 200
    )


def test_raise_the_rollout_to_twenty_five_percent(page: Page, stack: Stack, shoot: Shoot) -> None:
    five = stack.app.admin.rollout(
        "PaymentProcessor",
        "UserId",
        {"aperture": 5, "acme": 95},
        where={"Country": "US"},
        author="ops",
        reason="Aperture, carefully",
    )
    before = stack.peer.serves(five, "PaymentProcessor", US_USERS)
    early = {user for user, answer in zip(US_USERS, before, strict=True) if answer == "aperture"}
    assert early
    sign_in(page, stack)
    open_feature(page, stack, "PaymentProcessor")
    page.locator("tr.rule", has_text="US").get_by_role("link", name="Change").click()
    expect(page.locator("#weight-aperture")).to_have_value("5")
    # Filled in the other way round, the rule keeps its own order.
    set_weights(page, {"acme": 75, "aperture": 25})
    # The figure comes from the same diff core as `feats rollout` prints.
    expect(page.locator("#plan-out .note")).to_have_text(
        "moves 20% of these users: acme→aperture 20%"
    )
    shoot(page, "raise-rollout")
    page.get_by_role("button", name="Preview the change").click()
    expect(page.locator("ul.diff .note")).to_have_text(
        "moves 20% of these users: acme→aperture 20%"
    )
    expect(page.locator("ul.diff")).to_contain_text("rollout by UserId: aperture 25%, acme 75%")
    page.get_by_label("Why?").fill("No integration issues")
    shoot(page, "raise-preview")
    page.get_by_role("button", name="Apply to").click()
    expect(page.locator(".banner.ok")).to_contain_text("is now at version")
    version = stack.history()[-1].version
    after = stack.peer.serves(version, "PaymentProcessor", US_USERS)
    now = {user for user, answer in zip(US_USERS, after, strict=True) if answer == "aperture"}
    assert early <= now  # everyone who had aperture at 5% keeps it
    assert 0.22 < len(now) / len(US_USERS) < 0.28
    # Explain one of the early users.
    someone = min(early)[0]
    page.get_by_role("link", name="Explain").click()
    page.get_by_label("Country").select_option("US")
    page.locator("input[name='where.UserId']").fill(str(someone))
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#result")).to_contain_text("aperture")
    expect(page.locator("#result")).to_contain_text(version)
    shoot(page, "explain")


def test_priorities_experiment_and_its_exposures(page: Page, stack: Stack, shoot: Shoot) -> None:
    admin = stack.app.admin
    admin.route(
        "PaymentProcessor",
        "premium",
        where={"Country": "CA"},
        author="ops",
        reason="Acme fails in Canada",
    )
    admin.rollout(
        "PaymentProcessor",
        "UserId",
        {"aperture": 25, "acme": 75},
        where={"Country": "US"},
        author="ops",
        reason="No integration issues",
    )
    sign_in(page, stack)
    open_feature(page, stack, "AllowedPriorities")
    page.get_by_role("link", name="Experiment…").click()
    page.locator("select[name=by]").select_option("UserId")
    set_weights(page, {"no_priority": 34, "two_priorities": 33, "three_priorities": 33})
    expect(page.locator("#plan-out")).to_contain_text("experiment by UserId")
    shoot(page, "experiment")
    version = preview_and_apply(page, stack, "Do priorities help?", feature="AllowedPriorities")
    users = [(i, "US") for i in range(1, 601)]
    assert len(set(stack.peer.serves(version, "AllowedPriorities", users))) == 3
    used = stack.peer.ask(op="use", feature="AllowedPriorities", users=users)["answers"]
    counts = Counter(used)
    page.get_by_role("link", name="Exposures").click()
    expect(page.locator("#exposure-total")).to_have_text("600")
    for implementation, count in counts.items():
        expect(page.locator("table.exposures tr", has_text=implementation)).to_contain_text(
            f"{count:,}"
        )
    shoot(page, "experiment-exposures")
    page.goto(stack.base + "/")
    expect(page.locator("#feature-AllowedPriorities")).to_contain_text("experiment")
    shoot(page, "overview")
    open_feature(page, stack, "PaymentProcessor")
    shoot(page, "feature")


def test_a_page_follows_changes_made_elsewhere(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    open_feature(page, stack, "PaymentProcessor")
    expect(page.locator("body")).to_have_attribute("data-live-state", "connected")
    version = stack.app.admin.route(
        "PaymentProcessor",
        "aperture",
        where={"Country": "GB"},
        author="carol",
        reason="from the CLI",
    )
    expect(page.locator("#live-note")).to_contain_text(f"version {version} by carol")
    expect(page.locator("table.rules")).to_contain_text("GB")
    expect(page.locator("body")).to_have_attribute("data-version", version)
