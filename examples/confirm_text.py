"""ConfirmText story: the button reads "Submit" by default, "Save" where configured."""

from __future__ import annotations

import asyncio

from shop import Address, ConfirmText, Country, User, UserDevice, app, describe, describe_storage

import feats

VISITORS = [
    User(1, Address("US", "WA"), "Alice", device="ios"),
    User(2, Address("FR", "IDF"), "Bruno", language="fr", device="android"),
    User(3, Address("FR", "IDF"), "Chloe", language="fr", device="ios"),
    User(4, Address("DE", "BE"), "Dieter", language="de", device="web"),
]


async def show(title: str) -> None:
    print(f"\n{title}")
    for user in VISITORS:
        text = await ConfirmText.create(user)
        print(
            f"  {user.name:<7} {user.address.country_code} {user.device:<8} {'[' + text + ']':<14}"
            f"  <- {ConfirmText.explain(user).reason}"
        )


async def main() -> None:
    print(f"feats ConfirmText example on {describe_storage()}")
    async with app:
        admin = app.admin
        print(f"ConfirmText implementations: {', '.join(ConfirmText.implementations)}")
        print(f"It can be segmented by: {', '.join(ConfirmText.valid_segments())}")

        await admin.set_state(
            ConfirmText, None, author="design@shop", reason="start from the default"
        )
        await show("No configuration: the default implementation, submit, answers")

        everyone = feats.FeatureState(rules={None: feats.Static("save")})
        await admin.set_state(ConfirmText, everyone, author="design@shop", reason="Save for all")
        await show(f"Configured: {describe(everyone)}")

        by_device = feats.FeatureState(
            segments=[UserDevice],
            rules={("ios",): feats.Static("save"), None: feats.Static("submit")},
        )
        await admin.set_state(
            ConfirmText, by_device, author="design@shop", reason="iOS users expect Save"
        )
        await show(f"Configured by device: {describe(by_device)}")

        print(f"\nUserDevice.OPTIONS = {UserDevice.OPTIONS}; a value outside them is refused:")
        try:
            await admin.set_state(
                ConfirmText,
                by_device.with_rule(("windows",), feats.Static("save")),
                author="design@shop",
                reason="typo",
            )
        except feats.ConfigurationError as error:
            print(f"  ConfigurationError: {error}")

        by_country = feats.FeatureState(
            segments=[Country, UserDevice],
            rules={("FR", "ios"): feats.Static("save"), None: feats.Static("submit")},
        )
        await admin.set_state(
            ConfirmText, by_country, author="design@shop", reason="try Save on French iPhones"
        )
        await show(f"Two segments: {describe(by_country)}")


if __name__ == "__main__":
    asyncio.run(main())
