"""The seed README's shop: one aio App with its features and segments, shared by every example."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import redis.asyncio

import feats.aio
from feats.aio import App

__all__ = [
    "NAMESPACE",
    "AcmeProcessor",
    "Address",
    "AllowedPriorities",
    "ApertureProcessor",
    "ConfirmText",
    "Country",
    "ImageProcessing",
    "PaymentProcessor",
    "PremiumProcessor",
    "Processor",
    "Request",
    "Subdivision",
    "User",
    "UserDevice",
    "UserId",
    "app",
    "describe",
    "describe_storage",
    "read_exposures",
    "users",
]

REDIS_URL = os.environ.get("FEATS_REDIS_URL")
"""Set it (e.g. ``redis://127.0.0.1:6379/0``) to run the examples on Redis instead of memory."""
NAMESPACE = os.environ.get("FEATS_NAMESPACE", "feats-examples")


# -- the business objects -------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    country_code: str
    subdivision_code: str


@dataclass(frozen=True)
class User:
    id: int
    name: str
    address: Address
    language: str = "en"
    device: str = "web"


@dataclass(frozen=True)
class Request:
    """What a web framework would hand us: the user and the device they came from."""

    user: User
    headers: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        return self.headers[key]


SUBDIVISIONS = {"US": "WA", "CA": "QC", "GB": "ENG", "FR": "IDF", "DE": "BE"}


def users(country: str, count: int, *, first_id: int = 1) -> list[User]:
    """``count`` users living in ``country``, with consecutive ids from ``first_id``."""
    address = Address(country, SUBDIVISIONS.get(country, "XX"))
    return [User(i, f"user{i}", address) for i in range(first_id, first_id + count)]


# -- the payment processors -----------------------------------------------------------------


@dataclass(frozen=True)
class Processor:
    """A card processor and what it costs per transaction."""

    name: str
    percent: float
    fixed: float

    def charge(self, amount: float) -> str:
        fee = amount * self.percent / 100 + self.fixed
        return f"{self.name} charged ${amount:.2f} (fee ${fee:.2f})"


class AcmeProcessor(Processor):
    def __init__(self) -> None:
        super().__init__("Acme", 2.0, 0.30)


class PremiumProcessor(Processor):
    def __init__(self) -> None:
        super().__init__("Premium", 4.0, 0.50)


class ApertureProcessor(Processor):
    def __init__(self) -> None:
        super().__init__("Aperture", 1.0, 0.00)


# -- the App ----------------------------------------------------------------------------------


def _storage() -> feats.aio.Storage:
    if REDIS_URL:
        return feats.aio.RedisStorage(
            redis=redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True),
            namespace=NAMESPACE,
        )
    return feats.aio.MemoryStorage(namespace=NAMESPACE)


app = App(storage=_storage())


def describe(state: feats.aio.FeatureState | None) -> str:
    """A feature state in one line, e.g. ``CA -> premium; everyone else -> acme``."""
    if state is None:
        return "no configuration (the default answers)"
    parts = [f"{'/'.join(key)} -> {s.describe()}" for key, s in state.rules.items() if key]
    if state.fallthrough is not None:
        everyone = "everyone else" if parts else "everyone"
        parts.append(f"{everyone} -> {state.fallthrough.describe()}")
    return "; ".join(parts) or "no rules (the default answers)"


async def read_exposures(storage: feats.aio.Storage) -> tuple[int, list[list[str | None]]]:
    """Every exposure stored so far, read back in pages: (stream entries, exposures).

    Each stream entry is one batch written by the App's exposure writer; its ``batch`` field
    is JSON, a list of ``[feature, implementation, version, [segment value, ...]]``.
    """
    entries, after = 0, "0-0"
    exposures: list[list[Any]] = []
    while page := await storage.read_exposures(after, 1000):
        for entry in page:
            entries += 1
            for feature, implementation, version, units in json.loads(entry.fields["batch"]):
                exposures.extend([feature, implementation, unit, version] for unit in units)
        after = page[-1].id
    return entries, exposures


def describe_storage() -> str:
    if REDIS_URL:
        return f"RedisStorage at {REDIS_URL}, namespace {NAMESPACE!r}"
    return "MemoryStorage (in-process; set FEATS_REDIS_URL to use Redis)"


# -- segments ---------------------------------------------------------------------------------


@app.segment
class Country:
    """
    The ISO-3166 2 char country code of the object
    """

    def user(self, user: User) -> str:
        return self.address(user.address)

    def address(self, address: Address) -> str:
        return address.country_code


@app.segment
class Subdivision:
    """
    The ISO 3166-2 Subdivision Code, e.g US-WA
    """

    def user(self, user: User) -> str:
        return self.address(user.address)

    def address(self, address: Address) -> str:
        return f"{address.country_code}-{address.subdivision_code}"


@app.segment
class UserId:
    def user(self, user: User) -> str:
        return str(user.id)


@app.segment
class UserDevice:
    """
    The user device data from the Request, e.g "ios"
    """

    OPTIONS: ClassVar[list[str]] = ["ios", "android"]

    def request(self, request: Request) -> str:
        return request["device"]

    def user(self, user: User) -> str:
        return user.device


# -- features ---------------------------------------------------------------------------------


class PaymentProcessor(feats.aio.FeatureClass[[User], Processor], app=app):
    @app.default
    def acme(self, user: User) -> AcmeProcessor:
        """
        2% + $0.30 / Transaction
        """
        return AcmeProcessor()

    def premium(self, user: User) -> PremiumProcessor:
        """
        4% + $0.50 / Transaction
        """
        return PremiumProcessor()

    def aperture(self, user: User) -> ApertureProcessor:
        """
        1% + $0.00 / Transaction
        """
        return ApertureProcessor()


TRANSLATIONS = {
    ("fr", "Submit"): "Soumettre",
    ("fr", "Save"): "Enregistrer",
    ("de", "Submit"): "Absenden",
    ("de", "Save"): "Speichern",
}


def translate(language: str, text: str) -> str:
    return TRANSLATIONS.get((language, text), text)


class ConfirmText(feats.aio.FeatureClass[[User], str], app=app):
    @app.default
    def submit(self, user: User) -> str:
        return translate(user.language, "Submit")

    def save(self, user: User) -> str:
        return translate(user.language, "Save")


@app.boolean
def ImageProcessing(user: User) -> bool:
    return True  # This is the default value


class AllowedPriorities(feats.aio.FeatureClass[[User], list[str]], app=app):
    @app.default
    def no_priority(self, user: User) -> list[str]:
        return []

    def two_priorities(self, user: User) -> list[str]:
        return ["Important", "Normal"]

    def three_priorities(self, user: User) -> list[str]:
        return ["Important", "Normal", "Unimportant"]
