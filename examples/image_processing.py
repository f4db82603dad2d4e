"""Kill switch story: turn ImageProcessing off during a DDOS, then back on."""

from __future__ import annotations

import asyncio

from shop import ImageProcessing, app, describe_storage, users

import feats

UPLOADS = users("US", 3, first_id=100) + users("GB", 2, first_id=200)


async def handle_uploads(title: str) -> None:
    processed: list[int] = []
    deferred: list[int] = []
    for user in UPLOADS:
        (processed if await ImageProcessing.is_enabled(user) else deferred).append(user.id)
    reason = ImageProcessing.explain(UPLOADS[0]).reason
    print(f"\n{title}")
    print(f"  processed now: {_ids(processed)}; deferred: {_ids(deferred)}")
    print(f"  why: {reason}")


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) or "none"


async def main() -> None:
    print(f"feats ImageProcessing kill switch example on {describe_storage()}")
    async with app:
        admin = app.admin
        print(f"ImageProcessing implementations: {', '.join(ImageProcessing.implementations)}")
        await admin.set_state(
            ImageProcessing, None, author="ops@shop", reason="start from the default"
        )
        await handle_uploads("Normal day: the declared default (True) answers")

        off = feats.FeatureState(rules={None: feats.Static("disabled")})
        version = await admin.set_state(
            ImageProcessing,
            off,
            author="oncall@shop",
            reason="DDOS on the upload endpoint: stop image processing",
        )
        await handle_uploads(f"During the DDOS (kill switch on, version {version})")

        version = await admin.set_state(
            ImageProcessing,
            None,
            author="oncall@shop",
            reason="DDOS mitigated: back to the default",
        )
        await handle_uploads(f"After the DDOS (configuration removed, version {version})")

        print("\nHistory of ImageProcessing (latest 3):")
        for change in (await admin.history(ImageProcessing))[-3:]:
            state = "default" if change.state is None else "disabled for everyone"
            print(f"  {change.author:<12} {state:<22} {change.reason}")


if __name__ == "__main__":
    asyncio.run(main())
