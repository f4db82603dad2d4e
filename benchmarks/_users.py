"""Deterministic synthetic users shared by every benchmark scenario."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

# CA is kept at a tenth so scenario (b) has a visible static slice and a large rollout slice.
COUNTRY_WEIGHTS: Final[dict[str, int]] = {
    "US": 40,
    "CA": 10,
    "GB": 12,
    "DE": 10,
    "FR": 8,
    "BR": 8,
    "IN": 7,
    "JP": 5,
}

DEFAULT_SEED: Final = 20240611


@dataclass(frozen=True, slots=True)
class User:
    id: int
    country: str


def make_users(n: int = 10_000, seed: int = DEFAULT_SEED) -> list[User]:
    """Return `n` users with distinct, scattered ids (sequential ids would flatter weak hashes)."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, 2**31), n)
    countries = rng.choices(list(COUNTRY_WEIGHTS), weights=list(COUNTRY_WEIGHTS.values()), k=n)
    return [
        User(id=user_id, country=country) for user_id, country in zip(ids, countries, strict=True)
    ]
