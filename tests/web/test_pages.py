"""Every page renders from what the Apps publish and what is configured."""

from __future__ import annotations

import redis.asyncio
from starlette.testclient import TestClient

import feats.aio
import feats.web

from ._shop import COUNTRIES, SHOP, SHOP_FEATURES, user
from .conftest import SECRET, Serving


def test_overview_lists_every_feature_with_its_configuration(
    viewer: TestClient, serving: Serving
) -> None:
    serving.admin.route(
        "PaymentProcessor", "premium", where={"Country": "CA"}, author="ops", reason="Acme fails"
    )
    page = viewer.get("/")
    assert page.status_code == 200
    for name in SHOP_FEATURES:
        assert f'id="feature-{name}"' in page.text
    row = page.text.split('id="feature-PaymentProcessor"')[1].split("</tr>")[0]
    assert "Country=CA → premium" in row and "everyone else → the default (acme)" in row
    assert "<b>ops</b>" in row and "Acme fails" in row
    assert serving.history()[-1].version in row
    assert "● live: 1 deploy, heartbeat just now" in row
    assert "Live: an App that declares it sent a heartbeat within the last 3 minutes" in page.text
    assert "boolean" in page.text.split('id="feature-ImageProcessing"')[1].split("</tr>")[0]


def test_feature_page_shows_declarations_and_rules(viewer: TestClient, serving: Serving) -> None:
    serving.admin.rollout(
        "PaymentProcessor",
        "UserId",
        {"aperture": 5, "acme": 95},
        where={"Country": "US"},
        author="ops",
        reason="carefully",
    )
    serving.admin.set_fallthrough("PaymentProcessor", "acme", author="ops", reason="everyone else")
    page = viewer.get("/features/PaymentProcessor").text
    default_row = page.split('<tr class="default">')[1].split("</tr>")[0]
    assert (
        "acme" in default_row
        and "default" in default_row
        and "2% + $0.30 / Transaction" in default_row
    )
    assert "4% + $0.50 / Transaction" in page and "1% + $0.00 / Transaction" in page
    for option in COUNTRIES:
        assert f'<span class="chip">{option}</span>' in page
    assert "The ISO-3166 2 char country code of the object" in page
    assert "rollout by UserId: aperture 5%, acme 95%" in page
    assert "everyone else (fallthrough)" in page
    assert '<rect x="0" y="0" width="5000"' in page  # aperture's buckets, drawn


def test_explain_gives_implementation_reason_bucket_and_version(
    viewer: TestClient, serving: Serving
) -> None:
    version = serving.admin.rollout(
        "PaymentProcessor",
        "UserId",
        {"aperture": 5, "acme": 95},
        where={"Country": "US"},
        author="ops",
        reason="carefully",
    )
    expected = serving.admin.explain("PaymentProcessor", {"Country": "US", "UserId": "42"})
    page = viewer.get(
        "/features/PaymentProcessor/explain", params={"where.Country": "US", "where.UserId": "42"}
    )
    assert page.status_code == 200
    result = page.text.split('id="result"')[1]
    assert expected.implementation in result and expected.reason in result
    assert f"{expected.bucket} of 100000" in result and version in result
    missing = viewer.get("/features/PaymentProcessor/explain", params={"where.Country": "US"})
    assert missing.status_code == 400 and "give UserId=VALUE" in missing.text


def test_exposures_drift_and_catalog(viewer: TestClient, serving: Serving) -> None:
    serving.admin.start_experiment(
        "AllowedPriorities",
        "UserId",
        {"no_priority": 50, "two_priorities": 50},
        author="ops",
        reason="test",
    )
    serving.app.wait_for_version(serving.history("AllowedPriorities")[-1].version, timeout=5)
    for i in range(40):
        serving.shop.AllowedPriorities.create(user(i))
    serving.app.close()  # flushes the exposures
    page = viewer.get("/features/AllowedPriorities/exposures")
    assert '<b id="exposure-total">40</b>' in page.text
    by_value = viewer.get("/features/AllowedPriorities/exposures", params={"by_value": "1"})
    assert "Per value" in by_value.text
    drift = viewer.get("/drift").text
    assert "ImageProcessing" in drift and "never configured" in drift
    catalog = viewer.get("/catalog").text
    for name in SHOP:
        assert name in catalog
    assert "● live" in catalog and 'id="live-meaning"' in catalog


def test_unknown_feature_and_page_are_404(viewer: TestClient, serving: Serving) -> None:
    page = viewer.get("/features/Nope")
    assert page.status_code == 404 and "No App declares a feature" in page.text
    assert viewer.get("/no/such/page").status_code == 404


def test_state_json_for_polling_pages(viewer: TestClient, serving: Serving) -> None:
    assert viewer.get("/state.json").json() == {"version": "0-0"}  # Admin.head(): none yet
    version = serving.admin.route("PaymentProcessor", "premium", author="ops", reason="x")
    assert viewer.get("/state.json").json() == {"version": version}
    assert viewer.get("/state.json", params={"feature": "PaymentProcessor"}).json() == {
        "version": version
    }
    assert viewer.get("/state.json", params={"feature": "AllowedPriorities"}).json() == {
        "version": ""
    }


def test_redis_unreachable_is_a_page_not_a_traceback(closed_port: int) -> None:
    storage = feats.aio.RedisStorage(
        redis.asyncio.Redis(host="127.0.0.1", port=closed_port, socket_connect_timeout=1),
        "shop",
    )
    app = feats.web.create_app(
        storage, anonymous=feats.web.Principal("local", "editor"), secret_key=SECRET
    )
    with TestClient(app) as client:
        for path in ("/", "/features/PaymentProcessor", "/drift"):
            page = client.get(path)
            assert page.status_code == 503, path
            assert "Redis is unavailable" in page.text and "Traceback" not in page.text
