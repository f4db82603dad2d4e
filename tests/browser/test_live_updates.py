"""Live updates in Chromium: a page follows changes made elsewhere, by polling as well.

feats.js listens to ``/events`` (server-sent events) and polls ``/state.json`` every second
when the browser has no EventSource (or the stream keeps failing). One test takes a browser
without EventSource and checks that the page still follows changes written by another
admin, printing how long each took to show (see it with ``-s``; no time is asserted). The
other holds the page's refresh so that a second change's event comes while it is in flight.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect

from .conftest import ANSWER_SECONDS, Stack, record_errors, sign_in
from .test_stories import open_feature

FEATURE = "PaymentProcessor"
RECORD_CHANGE_EVENTS = """
(function () {
  var Original = window.EventSource;
  window.changeEvents = [];
  window.EventSource = class extends Original {
    constructor(url, options) {
      super(url, options);
      this.addEventListener("change", function (event) {
        window.changeEvents.push(JSON.parse(event.data).version);
      });
    }
  };
})();
"""
"""Each change event's version, recorded before feats.js's own listener sees the event."""
RECORD_VERSIONS_SHOWN = """
window.versionShown = {};
new MutationObserver(function () {
  var version = document.body && document.body.getAttribute("data-version");
  if (version && !(version in window.versionShown)) window.versionShown[version] = Date.now();
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-version"] });
"""
"""When (Date.now(), ms) body's data-version first took each value: feats.js sets it in the
task that puts the fetched <main> in, so this is when the page showed that version."""


@pytest.fixture
def polling_page(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A page whose window has no EventSource, reporting no errors, as ``page`` does."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        context.add_init_script("delete window.EventSource;")
        context.add_init_script(RECORD_VERSIONS_SHOWN)
        opened = context.new_page()
        errors = record_errors(opened)
        yield opened
    finally:
        context.close()
    assert errors == [], f"the page reported errors: {errors}"


def write_elsewhere(stack: Stack, implementation: str, reason: str) -> tuple[str, float]:
    """A change by another admin (as the CLI makes it): its version, and when (time.time())
    the write returned."""
    version = stack.app.admin.route(
        FEATURE, implementation, where={"Country": "GB"}, author="carol", reason=reason
    )
    return version, time.time()


def _asks_state(request: Request) -> bool:
    return "/state.json" in request.url


def test_a_page_without_server_sent_events_follows_changes_by_polling(
    polling_page: Page, stack: Stack
) -> None:
    page = polling_page
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    sign_in(page, stack)
    open_feature(page, stack, FEATURE)
    assert page.evaluate("typeof window.EventSource") == "undefined"
    body = page.locator("body")
    expect(body).to_have_attribute("data-live-state", "polling")

    def polls() -> int:
        return sum(1 for url in requests if "/state.json" in url)

    # A poll before the change: the page asks and finds nothing new.
    page.wait_for_event("request", _asks_state, timeout=5_000)
    before = polls()

    for implementation in ("aperture", "premium"):
        version, written = write_elsewhere(stack, implementation, f"to {implementation}")
        expect(body).to_have_attribute("data-version", version)
        expect(page.locator("#live-note")).to_contain_text(f"version {version}")
        row = page.locator("table.rules tr", has_text="GB")
        expect(row).to_contain_text(implementation)
        shown = page.evaluate("version => window.versionShown[version]", version) / 1000
        # Printed, not asserted: the poll's phase decides most of it (0 to 1 s, plus the
        # page's two fetches).
        print(f"polling: {version} shown {shown - written:.3f}s after the write returned")

    assert polls() > before, "the page showed the changes without polling /state.json"
    assert not [url for url in requests if "/events" in url], "the page opened /events"
    expect(body).to_have_attribute("data-live-state", "polling")


def test_a_change_that_arrives_while_the_page_refreshes_is_shown_too(
    page: Page, stack: Stack
) -> None:
    """Two changes in quick succession (a script, say): the second one's event comes while
    the page is still fetching itself for the first, so that fetch may show the first only;
    the page fetches itself again and shows the second."""
    page.add_init_script(RECORD_CHANGE_EVENTS)
    sign_in(page, stack)
    open_feature(page, stack, FEATURE)
    body = page.locator("body")
    expect(body).to_have_attribute("data-live-state", "connected")
    url = page.url
    held: list[Route] = []

    def hold_the_first(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(url, hold_the_first)
    first, _ = write_elsewhere(stack, "aperture", "first of two")
    deadline = time.monotonic() + ANSWER_SECONDS
    while not held:
        assert time.monotonic() < deadline, "the page did not fetch itself after a change"
        page.wait_for_timeout(10)
    # The page as the server makes it now, with the first change only.
    made_before_the_second = held[0].fetch()
    second, _ = write_elsewhere(stack, "premium", "second of two")
    page.wait_for_function("version => window.changeEvents.includes(version)", arg=second)
    held[0].fulfill(response=made_before_the_second)

    expect(body).to_have_attribute("data-version", second)
    expect(page.locator("table.rules tr", has_text="GB")).to_contain_text("premium")
    expect(page.locator("#live-note")).to_contain_text(f"version {second} by carol")
    assert first != second
