"""Declarations: the seed's valid examples work, every broken rule is a clear DeclarationError."""

import re
from collections.abc import Iterator

import pytest

import feats
import feats.aio
from tests.unit._models import (
    AcmeProcessor,
    Address,
    ApertureProcessor,
    PremiumProcessor,
    Request,
    User,
    declare_payments,
    declare_segments,
    user,
)


@pytest.fixture
def app() -> Iterator[feats.App]:
    with feats.App(storage=feats.MemoryStorage(), start_timeout=1) as app:
        yield app


def as_feature(handle: object) -> feats.Feature:
    """What a decorated class became: a feature handle, not the class."""
    assert isinstance(handle, feats.Feature)
    return handle


def as_boolean(handle: object) -> feats.Boolean:
    assert isinstance(handle, feats.Boolean)
    return handle


def translate(language: str, text: str) -> str:
    return f"{text} ({language})"


def broken(app: feats.App, declare: object, *, names: list[str], rule: str) -> str:
    """Declare something broken; the error names the class, the method and the rule."""
    with pytest.raises(feats.DeclarationError) as caught:
        if isinstance(declare, type):
            app.feature(declare)
        else:
            app.boolean(declare)  # type: ignore[arg-type]
    message = str(caught.value)
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
    assert re.search(rule, message), f"{rule!r} not in {message!r}"
    return message


# -- the seed's valid declarations ---------------------------------------------------------


def test_confirm_text_without_inputs(app: feats.App) -> None:
    @app.feature
    class ConfirmText:
        @app.default
        def submit(self) -> str:
            return "Submit"

        def save(self) -> str:
            return "Save"

    handle = as_feature(ConfirmText)
    assert handle.create() == "Submit"
    assert handle.find_implementation() == "submit"
    assert handle.implementations == ("submit", "save")
    assert handle.default == "submit"
    assert handle.name == "ConfirmText"


def test_confirm_text_with_inputs(app: feats.App) -> None:
    @app.feature
    class ConfirmText:
        @app.default
        def submit(self, user: User) -> str:
            return translate(user.language, "Submit")

        def save(self, user: User) -> str:
            return translate(user.language, "Save")

    assert as_feature(ConfirmText).create(user(1)) == "Submit (en)"


def test_image_processing_boolean(app: feats.App) -> None:
    @app.boolean
    def ImageProcessing() -> bool:
        return True  # This is the default value

    handle = as_boolean(ImageProcessing)
    assert handle.is_enabled() is True
    assert handle.implementations == ("enabled", "disabled", "default")
    assert handle.default == "default"


def test_image_processing_boolean_with_inputs(app: feats.App) -> None:
    @app.boolean
    def ImageProcessing(user: User) -> bool:
        return user.id % 2 == 0

    handle = as_boolean(ImageProcessing)
    assert handle.is_enabled(user(2)) is True
    assert handle.is_enabled(user(3)) is False


def test_payment_processor_creates_the_default(app: feats.App) -> None:
    processor = declare_payments(app)
    assert isinstance(processor.create(user(1)), AcmeProcessor)
    assert processor.implementations == ("acme", "premium", "aperture")
    assert processor.declaration.implementations["acme"].doc == "2% + $0.30 / Transaction"
    assert processor.declaration.implementations["premium"].returns == PremiumProcessor.__name__
    assert processor.declaration.implementations["aperture"].returns == ApertureProcessor.__name__


def test_segments_with_and_without_options(app: feats.App) -> None:
    segments = declare_segments(app)
    assert segments.country.name == "Country"
    assert segments.country.OPTIONS is None
    assert segments.device.OPTIONS == ("ios", "android")
    assert segments.subdivision.declaration.doc == "The ISO 3166-2 Subdivision Code, e.g US-WA"
    methods = [accessor.method for accessor in segments.subdivision.declaration.accessors]
    assert methods == ["user", "address"]
    read = {a.method: a.read for a in segments.subdivision.declaration.accessors}
    assert read["user"](user(1, "US", "WA")) == "US-WA"
    assert read["address"](Address("CA", "QC")) == "CA-QC"


def test_decorated_class_is_a_handle_its_methods_unreachable(app: feats.App) -> None:
    PaymentProcessor = declare_payments(app)
    with pytest.raises(AttributeError, match=r"PaymentProcessor\.acme cannot be called"):
        PaymentProcessor.acme(user(1))  # type: ignore[attr-defined]  # the point of the test
    with pytest.raises(AttributeError, match=r"PaymentProcessor\.acme cannot be called"):
        PaymentProcessor().acme(user(1))  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        PaymentProcessor.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def test_segment_reads_the_first_argument_it_accepts(app: feats.App) -> None:
    segments = declare_segments(app)

    class Anything:
        def anything(self, value: object) -> str:
            return f"object:{value!r}"

    anything = app.segment(Anything)

    class Checkout:
        @app.default
        def standard(self, request: Request, buyer: User, seller: User) -> str:
            return "standard"

        def express(self, request: Request, buyer: User, seller: User) -> str:
            return "express"

    checkout = app.feature(Checkout)
    state = feats.FeatureState(
        segments=[segments.country, segments.device, anything],
        rules={("CA", "ios", "object:{'device': 'ios'}"): feats.Static("express")},
    )
    app.admin.set_state(checkout, state, author="test", reason="multi-input")
    request = {"device": "ios"}
    buyer, seller = user(1, "CA"), user(2, "US")
    evaluation = checkout.explain(request, buyer, seller)
    # Country reads the buyer (the first User), UserDevice the request, Anything argument 0.
    assert evaluation.segment_values == {
        "Country": "CA",
        "UserDevice": "ios",
        "Anything": "object:{'device': 'ios'}",
    }
    assert checkout.create(request, buyer, seller) == "express"
    assert checkout.create(request, seller, buyer) == "standard"


def test_valid_segments(app: feats.App) -> None:
    declare_segments(app)
    processor = declare_payments(app)

    class ConfirmText:
        @app.default
        def submit(self) -> str:
            return "Submit"

    class DeviceBanner:
        @app.default
        def plain(self, request: Request) -> str:
            return "plain"

    assert processor.valid_segments() == ["Country", "Subdivision", "UserId"]
    assert app.feature(ConfirmText).valid_segments() == []
    assert app.feature(DeviceBanner).valid_segments() == ["UserDevice"]


def test_feature_without_inputs_takes_fallthrough_rules_only(app: feats.App) -> None:
    segments = declare_segments(app)

    class ConfirmText:
        @app.default
        def submit(self) -> str:
            return "Submit"

        def save(self) -> str:
            return "Save"

    confirm = app.feature(ConfirmText)
    app.admin.set_state(
        confirm, feats.FeatureState(rules={None: feats.Static("save")}), author="t", reason="r"
    )
    assert confirm.create() == "Save"
    assert confirm.explain().implementation == "save"
    with pytest.raises(feats.ConfigurationError, match="cannot read this feature's inputs"):
        app.admin.set_state(
            confirm,
            feats.FeatureState(segments=[segments.country], rules={"CA": feats.Static("save")}),
            author="t",
            reason="r",
        )


def test_wrong_arity_is_a_type_error(app: feats.App) -> None:
    processor = declare_payments(app)

    @app.boolean
    def ImageProcessing(user: User) -> bool:
        return True

    images = as_boolean(ImageProcessing)
    with pytest.raises(TypeError, match=r"PaymentProcessor takes 1 argument\(s\) \(User\), got 0"):
        processor.create()
    with pytest.raises(TypeError, match="got 2"):
        processor.find_implementation(user(1), user(2))
    with pytest.raises(TypeError, match="got 0"):
        processor.explain()
    with pytest.raises(TypeError, match="got 0"):
        processor.used_implementation("acme")
    with pytest.raises(TypeError, match="got 0"):
        images.is_enabled()
    assert not isinstance(TypeError("x"), feats.FeatsError)


async def test_wrong_arity_is_a_type_error_aio() -> None:
    app = feats.aio.App(storage=feats.aio.MemoryStorage())

    class ConfirmText:
        @app.default
        def submit(self, user: User) -> str:
            return "Submit"

    confirm = app.feature(ConfirmText)
    with pytest.raises(TypeError, match="got 0"):
        await confirm.create()
    with pytest.raises(TypeError, match="got 2"):
        confirm.find_implementation(user(1), user(2))


# -- broken declarations -------------------------------------------------------------------


def test_declaration_error_is_a_feats_error() -> None:
    assert issubclass(feats.DeclarationError, feats.FeatsError)


def test_untyped_parameter(app: feats.App) -> None:
    class ConfirmText:
        @app.default
        def submit(self, user) -> str:  # type: ignore[no-untyped-def]
            return "Submit"

    broken(app, ConfirmText, names=["ConfirmText", "submit", "'user'"], rule="untyped")


def test_untyped_segment_parameter(app: feats.App) -> None:
    class Subdivision:
        def user(self, user) -> str:  # type: ignore[no-untyped-def]
            return "US-WA"

    with pytest.raises(
        feats.DeclarationError, match=r"Subdivision\.user: parameter 'user' is untyped"
    ):
        app.segment(Subdivision)


def test_missing_return_type(app: feats.App) -> None:
    class ConfirmText:
        @app.default
        def submit(self):  # type: ignore[no-untyped-def]
            return "Submit"

    broken(app, ConfirmText, names=["ConfirmText.submit"], rule="missing return type")


def test_segment_missing_return_type(app: feats.App) -> None:
    class Subdivision:
        def address(self, address: Address):  # type: ignore[no-untyped-def]
            return "US-WA"

    with pytest.raises(feats.DeclarationError, match=r"Subdivision\.address: missing return type"):
        app.segment(Subdivision)


def test_segment_not_returning_str(app: feats.App) -> None:
    class UserId:
        def user(self, user: User) -> int:
            return user.id

    with pytest.raises(
        feats.DeclarationError, match=r"UserId\.user: a segment must return str.*int"
    ):
        app.segment(UserId)


def test_boolean_not_returning_bool(app: feats.App) -> None:
    def ImageProcessing() -> str:
        return "yes"

    broken(app, ImageProcessing, names=["ImageProcessing", "str"], rule="must return bool")


def test_no_default(app: feats.App) -> None:
    class ConfirmText:
        def submit(self) -> str:
            return "Submit"

        def save(self) -> str:
            return "Save"

    broken(app, ConfirmText, names=["ConfirmText", "@app.default"], rule="no default")


def test_two_defaults(app: feats.App) -> None:
    class ConfirmText:
        @app.default
        def submit(self) -> str:
            return "Submit"

        @app.default
        def save(self) -> str:
            return "Save"

    broken(app, ConfirmText, names=["ConfirmText", "submit", "save"], rule="two defaults")


def test_implementations_with_different_number_of_inputs(app: feats.App) -> None:
    class ConfirmText:
        @app.default
        def submit(self, user: User) -> str:
            return "Submit"

        def save(self) -> str:
            return "Save"

    broken(app, ConfirmText, names=["ConfirmText.save", "(User)"], rule="different inputs")


def test_implementations_with_different_input_types(app: feats.App) -> None:
    class ConfirmText:
        @app.default
        def submit(self, user: User) -> str:
            return "Submit"

        def persist(self, request: Request) -> str:
            return "Persist"

    broken(app, ConfirmText, names=["ConfirmText.persist", "submit"], rule="different inputs")


def test_no_implementations(app: feats.App) -> None:
    class ConfirmText:
        """Nothing to choose from."""

        def _private(self) -> str:
            return "hidden"

    broken(app, ConfirmText, names=["ConfirmText"], rule="no implementations")


def test_segment_without_accessors(app: feats.App) -> None:
    class Country:
        OPTIONS = ("US", "CA")

    with pytest.raises(feats.DeclarationError, match="Country: no accessors"):
        app.segment(Country)


def test_segment_options_must_be_strings(app: feats.App) -> None:
    class UserDevice:
        OPTIONS = (1, 2)

        def request(self, request: Request) -> str:
            return request["device"]

    with pytest.raises(feats.DeclarationError, match=r"UserDevice\.OPTIONS"):
        app.segment(UserDevice)


def test_duplicate_feature_name(app: feats.App) -> None:
    declare_payments(app)
    with pytest.raises(feats.DeclarationError, match="PaymentProcessor: duplicate name"):
        declare_payments(app)


def test_duplicate_segment_name(app: feats.App) -> None:
    declare_segments(app)

    class Country:
        def user(self, user: User) -> str:
            return user.address.country_code

    with pytest.raises(feats.DeclarationError, match="Country: duplicate name"):
        app.segment(Country)


def test_the_same_name_on_two_apps_is_fine() -> None:
    declare_payments(feats.App(storage=feats.MemoryStorage()))
    declare_payments(feats.App(storage=feats.MemoryStorage()))


def test_async_implementation_on_the_sync_app(app: feats.App) -> None:
    class PaymentProcessor:
        @app.default
        async def acme(self, user: User) -> AcmeProcessor:
            return AcmeProcessor()

    broken(app, PaymentProcessor, names=["PaymentProcessor.acme", "feats.aio.App"], rule="async")


def test_async_boolean_on_the_sync_app(app: feats.App) -> None:
    async def ImageProcessing() -> bool:
        return True

    broken(app, ImageProcessing, names=["ImageProcessing", "feats.aio.App"], rule="async")


async def test_async_implementation_on_the_aio_app() -> None:
    app = feats.aio.App(storage=feats.aio.MemoryStorage())

    class PaymentProcessor:
        @app.default
        async def acme(self, user: User) -> AcmeProcessor:
            return AcmeProcessor()

    processor = app.feature(PaymentProcessor)
    assert isinstance(await processor.create(user(1)), AcmeProcessor)


def test_async_segment_is_refused(app: feats.App) -> None:
    class Country:
        async def user(self, user: User) -> str:
            return user.address.country_code

    with pytest.raises(feats.DeclarationError, match=r"Country\.user: segments must be plain"):
        app.segment(Country)


def test_a_failed_declaration_leaves_nothing_behind(app: feats.App) -> None:
    class PaymentProcessor:
        def acme(self, user: User) -> AcmeProcessor:
            return AcmeProcessor()

    with pytest.raises(feats.DeclarationError):
        app.feature(PaymentProcessor)
    # The name is still free for a correct declaration.
    assert declare_payments(app).name == "PaymentProcessor"
