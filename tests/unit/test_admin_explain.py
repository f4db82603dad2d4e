"""The admin's explain (feats explain, the web admin) says what an App with the same
declarations would answer: drift included."""

from __future__ import annotations

import feats
from feats._cli._shop import User, declare, user


def test_the_admin_explains_drift_as_the_app_does() -> None:
    storage = feats.MemoryStorage(namespace="drift")
    old = feats.App(storage=storage)
    declare(old)
    state = feats.FeatureState(
        segments=("Country",),
        rules={("GB",): feats.Static("aperture"), ("CA",): feats.Static("premium")},
    )
    version = old.admin.set_state("PaymentProcessor", state, author="t", reason="r")

    new = feats.App(storage=storage)

    @new.segment
    class Country:
        def user(self, user: User) -> str:
            return user.address.country_code

    class PaymentProcessor(feats.FeatureClass[[User], str], app=new):  # aperture is gone
        @new.default
        def acme(self, user: User) -> str:
            return "acme"

        def premium(self, user: User) -> str:
            return "premium"

    with new:
        new.wait_for_version(version, timeout=5)
        for country, answer in (("GB", "acme"), ("CA", "premium")):
            by_app = PaymentProcessor.explain(user(1, country))
            by_admin = new.admin.explain("PaymentProcessor", {"Country": country})
            assert by_app.implementation == by_admin.implementation == answer
            assert ("drift" in by_admin.reason) is (country == "GB"), by_admin.reason
            assert ("drift" in by_app.reason) is (country == "GB"), by_app.reason
