"""The admin works without JavaScript: every change is a plain form, preview, apply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

import feats

from .conftest import Stack, sign_in


@pytest.fixture
def page_without_javascript(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 860}
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def test_route_canada_to_premium_without_javascript(
    page_without_javascript: Page, stack: Stack
) -> None:
    page = page_without_javascript
    sign_in(page, stack)
    page.get_by_role("link", name="PaymentProcessor", exact=True).first.click()
    expect(page.locator("h1")).to_contain_text("PaymentProcessor")
    page.get_by_role("link", name="Route users…").click()
    expect(page.locator("h1")).to_have_text("Route users to an implementation")
    page.get_by_label("Country").select_option("CA")
    page.locator("input[name=implementation][value=premium]").check()
    # No script ran: the live figure of what the form changes stays hidden and empty.
    expect(page.locator("#live-plan")).to_be_hidden()
    expect(page.locator("#plan-out")).to_be_empty()
    expect(page.locator("body")).not_to_have_attribute("data-live-state", "connected")
    page.get_by_role("button", name="Preview the change").click()
    expect(page.locator("h1")).to_contain_text("Review:")
    expect(page.locator("ul.diff")).to_contain_text("Country=CA")
    assert stack.history() == []  # the preview writes nothing
    page.get_by_label("Why?").fill("Acme fails in Canada")
    page.get_by_role("button", name="Apply to").click()
    expect(page.locator(".banner.ok")).to_contain_text("is now at version")
    [change] = stack.history()
    assert (change.author, change.reason) == ("alice", "Acme fails in Canada")
    assert change.state == feats.FeatureState(
        segments=["Country"], rules={("CA",): feats.Static("premium")}
    )
    expect(page.locator(".banner.ok")).to_contain_text(change.version)
    expect(page.locator("table.rules")).to_contain_text("premium")
    served = stack.peer.serves(change.version, "PaymentProcessor", [(1, "CA"), (2, "US")])
    assert served == ["premium", "acme"]
