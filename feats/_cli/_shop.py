"""The shop: the seed README's business objects and declarations, the one model that the
demo, the examples and the tests run on.

``declare(app)`` puts the shop's segments and features on any App (sync or asyncio) and
returns their handles; ``parts=`` picks some of them, for a test that needs a smaller shop.
The classes are made anew by every call, so each App gets handles of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

from .._base import AppBase
from .._handles import FeatureHandleBase, SegmentHandle

__all__ = [
    "COUNTRIES",
    "FEATURES",
    "SEGMENTS",
    "SHOP",
    "AcmeProcessor",
    "Address",
    "ApertureProcessor",
    "PremiumProcessor",
    "Processor",
    "Request",
    "Shop",
    "User",
    "declare",
    "payment_processor_class",
    "translate",
    "user",
]

F = TypeVar("F", bound=FeatureHandleBase)
B = TypeVar("B", bound=FeatureHandleBase)
T = TypeVar("T")

COUNTRIES = ("US", "CA", "GB", "DE", "MX", "FR")
"""Country's OPTIONS: where the shop sells."""
SUBDIVISIONS = {"US": "WA", "CA": "QC", "GB": "ENG", "DE": "BE", "MX": "CMX", "FR": "IDF"}
SEGMENTS = ("Country", "Subdivision", "UserId", "UserDevice")
FEATURES = ("PaymentProcessor", "AllowedPriorities", "ImageProcessing", "ConfirmText", "Checkout")
SHOP = SEGMENTS + FEATURES[:4]
"""What ``declare`` declares by default: the seed README's shop (Checkout is the fault
suite's feature, declared when asked for)."""


# -- the business objects ----------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    country_code: str
    subdivision_code: str = ""


@dataclass(frozen=True, init=False)
class User:
    """A customer. ``address`` may be given as a country code: ``User(7, "CA")``."""

    id: int
    address: Address
    name: str
    language: str
    device: str

    def __init__(
        self,
        id: int,
        address: Address | str,
        name: str = "",
        language: str = "en",
        device: str = "web",
    ) -> None:
        if isinstance(address, str):
            address = Address(address, SUBDIVISIONS.get(address, ""))
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "name", name or f"user{id}")
        object.__setattr__(self, "language", language)
        object.__setattr__(self, "device", device)

    @property
    def country(self) -> str:
        return self.address.country_code


def user(id: int, country: str = "US", subdivision: str | None = None) -> User:
    """A user living in ``country`` (and ``subdivision``, by default its usual one)."""
    if subdivision is None:
        subdivision = SUBDIVISIONS.get(country, "")
    return User(id, Address(country, subdivision))


Request = dict[str, str]
"""What a web framework hands over, as the seed reads it: ``request["device"]``."""


class Processor(str):
    """A card processor and what it costs per transaction.

    It is also its implementation's name (``AcmeProcessor() == "acme"``), so a test, a
    demo or a shell can compare an answer with the name an operator configured.
    """

    implementation: ClassVar[str] = ""
    brand: ClassVar[str] = ""
    percent: ClassVar[float] = 0.0
    fixed: ClassVar[float] = 0.0

    def __new__(cls) -> Self:
        return super().__new__(cls, cls.implementation)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def charge(self, amount: float) -> str:
        fee = amount * self.percent / 100 + self.fixed
        return f"{self.brand} charged ${amount:.2f} (fee ${fee:.2f})"


class AcmeProcessor(Processor):
    implementation, brand, percent, fixed = "acme", "Acme", 2.0, 0.30


class PremiumProcessor(Processor):
    implementation, brand, percent, fixed = "premium", "Premium", 4.0, 0.50


class ApertureProcessor(Processor):
    implementation, brand, percent, fixed = "aperture", "Aperture", 1.0, 0.00


TRANSLATIONS = {
    ("fr", "Submit"): "Soumettre",
    ("fr", "Save"): "Enregistrer",
    ("de", "Submit"): "Absenden",
    ("de", "Save"): "Speichern",
}


def translate(language: str, text: str) -> str:
    return TRANSLATIONS.get((language, text), text)


# -- the declarations ------------------------------------------------------------------------


def payment_processor_class() -> type:
    """A fresh PaymentProcessor class, not declared yet: ``app.feature(...)`` it."""

    class PaymentProcessor:
        @AppBase.default
        def acme(self, user: User) -> AcmeProcessor:
            """2% + $0.30 / Transaction"""
            return AcmeProcessor()

        def premium(self, user: User) -> PremiumProcessor:
            """4% + $0.50 / Transaction"""
            return PremiumProcessor()

        def aperture(self, user: User) -> ApertureProcessor:
            """1% + $0.00 / Transaction"""
            return ApertureProcessor()

    return PaymentProcessor


def _segment_classes(
    country_options: Sequence[str] | None, device_reads_user: bool
) -> dict[str, type]:
    class Country:
        """The ISO-3166 2 char country code of the object"""

        if country_options is not None:
            OPTIONS = tuple(country_options)

        def user(self, user: User) -> str:
            return self.address(user.address)

        def address(self, address: Address) -> str:
            return address.country_code

    class Subdivision:
        """The ISO 3166-2 Subdivision Code, e.g US-WA"""

        def user(self, user: User) -> str:
            return self.address(user.address)

        def address(self, address: Address) -> str:
            return f"{address.country_code}-{address.subdivision_code}"

    class UserId:
        def user(self, user: User) -> str:
            return str(user.id)

    class UserDevice:
        """The user device data from the Request, e.g "ios" """

        OPTIONS = ("ios", "android")

        def request(self, request: Request) -> str:
            return request["device"]

        if device_reads_user:

            def user(self, user: User) -> str:
                return user.device

    return {
        "Country": Country,
        "Subdivision": Subdivision,
        "UserId": UserId,
        "UserDevice": UserDevice,
    }


def _feature_classes() -> dict[str, type]:
    default = AppBase.default

    class AllowedPriorities:
        @default
        def no_priority(self, user: User) -> list[str]:
            return []

        def two_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal"]

        def three_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal", "Unimportant"]

    class ConfirmText:
        @default
        def submit(self, user: User) -> str:
            return translate(user.language, "Submit")

        def save(self, user: User) -> str:
            return translate(user.language, "Save")

    class Checkout:
        @default
        def classic(self, user: User) -> str:
            return "classic"

        def express(self, user: User) -> str:
            return "express"

        def oneclick(self, user: User) -> str:
            return "oneclick"

    return {
        "PaymentProcessor": payment_processor_class(),
        "AllowedPriorities": AllowedPriorities,
        "ConfirmText": ConfirmText,
        "Checkout": Checkout,
    }


def _image_processing() -> Any:
    def ImageProcessing(user: User) -> bool:
        return True  # This is the default value

    return ImageProcessing


@dataclass(frozen=True)
class Shop(Generic[F, B]):
    """The handles ``declare`` returned, by name; asking for a part not declared is a
    LookupError saying so."""

    segments: Mapping[str, SegmentHandle]
    features: Mapping[str, F]
    booleans: Mapping[str, B]

    def segment(self, name: str) -> SegmentHandle:
        return self._find(self.segments, name)

    def feature(self, name: str) -> F:
        return self._find(self.features, name)

    def _find(self, handles: Mapping[str, T], name: str) -> T:
        try:
            return handles[name]
        except KeyError:
            declared = ", ".join([*self.segments, *self.features, *self.booleans])
            raise LookupError(f"{name} is not declared in this shop (it has {declared})") from None

    @property
    def Country(self) -> SegmentHandle:
        return self.segment("Country")

    @property
    def Subdivision(self) -> SegmentHandle:
        return self.segment("Subdivision")

    @property
    def UserId(self) -> SegmentHandle:
        return self.segment("UserId")

    @property
    def UserDevice(self) -> SegmentHandle:
        return self.segment("UserDevice")

    @property
    def PaymentProcessor(self) -> F:
        return self.feature("PaymentProcessor")

    @property
    def AllowedPriorities(self) -> F:
        return self.feature("AllowedPriorities")

    @property
    def ConfirmText(self) -> F:
        return self.feature("ConfirmText")

    @property
    def Checkout(self) -> F:
        return self.feature("Checkout")

    @property
    def ImageProcessing(self) -> B:
        return self._find(self.booleans, "ImageProcessing")


def declare(
    app: AppBase[F, B],
    parts: Collection[str] = SHOP,
    *,
    country_options: Sequence[str] | None = COUNTRIES,
    device_reads_user: bool = True,
) -> Shop[F, B]:
    """Declare the shop's ``parts`` (segments first, then features, in the shop's order).

    ``country_options``: Country's OPTIONS (None: any country). ``device_reads_user``:
    UserDevice also reads a User's device, not only the seed's request.
    """
    unknown = set(parts) - {*SEGMENTS, *FEATURES}
    if unknown:
        raise ValueError(f"not parts of the shop: {', '.join(sorted(unknown))}")
    segment_classes = _segment_classes(country_options, device_reads_user)
    segments = {name: app.segment(segment_classes[name]) for name in SEGMENTS if name in parts}
    feature_classes = _feature_classes()
    features: dict[str, F] = {}
    booleans: dict[str, B] = {}
    for name in FEATURES:
        if name not in parts:
            continue
        if name == "ImageProcessing":
            booleans[name] = app.boolean(_image_processing())
        else:
            features[name] = app.feature(feature_classes[name])
    return Shop(segments, features, booleans)
