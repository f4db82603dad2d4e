"""FeatsProvider resolves an implementation's return annotation once, not on each resolution
(typing.get_type_hints compiles and evaluates every annotation of the function it is given)."""

from __future__ import annotations

import typing
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagType

import feats
from feats.openfeature import FeatsProvider
from feats.openfeature._values import answers
from tests.conformance._shop import declare_shop, shopper_inputs

CONTEXT = EvaluationContext("7", {"Country": "CA"})


@pytest.fixture
def shop() -> Iterator[tuple[feats.App, FeatsProvider]]:
    app = feats.App(storage=feats.MemoryStorage())
    declare_shop(app)
    with app:
        yield app, FeatsProvider(app, inputs=shopper_inputs, owns_app=False)


def count_hints(monkeypatch: pytest.MonkeyPatch, app: feats.App) -> Counter[str]:
    """Calls of typing.get_type_hints on the shop's implementations, by qualified name."""
    functions = {
        implementation.function: f"{declaration.name}.{implementation.name}"
        for declaration in app.registry.features.values()
        for implementation in declaration.implementations.values()
    }
    calls: Counter[str] = Counter()
    real = typing.get_type_hints

    def counting(obj: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        name = functions.get(obj)
        if name is not None:
            calls[name] += 1
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(typing, "get_type_hints", counting)
    return calls


def test_return_annotations_are_resolved_once_per_implementation(
    shop: tuple[feats.App, FeatsProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, provider = shop
    calls = count_hints(monkeypatch, app)
    for _ in range(5):
        assert provider.resolve_integer_details("Limit", 1, CONTEXT).value == 10
        assert provider.resolve_float_details("Limit", 1.5, CONTEXT).value == 10.0
        assert provider.resolve_float_details("Discount", 1.5, CONTEXT).value == 0.0
        assert provider.resolve_object_details("Banner", {"x": 1}, CONTEXT).value == {}
        assert provider.resolve_object_details("Theme", {"x": 1}).value == {"background": "white"}
        mismatch = provider.resolve_integer_details("PaymentProcessor", 1, CONTEXT)
        assert (mismatch.value, mismatch.error_code) == (1, ErrorCode.TYPE_MISMATCH)
    assert calls == {
        "Limit.standard": 1,
        "Discount.nothing": 1,
        "Banner.plain": 1,
        "Theme.light": 1,
        "PaymentProcessor.acme": 1,
    }
    # Another implementation chosen: its own annotation, resolved once as well.
    version = app.admin.set_state(
        "Limit", feats.FeatureState(rules={None: feats.Static("high")}), author="t", reason=""
    )
    app.wait_for_version(version, timeout=5)
    for _ in range(3):
        assert provider.resolve_integer_details("Limit", 1, CONTEXT).value == 100
    assert calls["Limit.high"] == 1
    assert calls["Limit.standard"] == 1


def test_an_annotation_that_does_not_resolve_is_tried_again(
    shop: tuple[feats.App, FeatsProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As answers() does: the declared type's name answers meanwhile, and nothing is kept."""
    app, provider = shop
    calls = count_hints(monkeypatch, app)
    counting = typing.get_type_hints
    failures = iter([NameError("name 'later' is not defined")] * 2)

    def failing_twice(obj: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = counting(obj, *args, **kwargs)
        error = next(failures, None)
        if error is not None:
            raise error
        return result

    monkeypatch.setattr(typing, "get_type_hints", failing_twice)
    for _ in range(4):
        assert provider.resolve_integer_details("Limit", 1, CONTEXT).value == 10
    assert calls == {"Limit.standard": 3}


def test_the_cached_answers_are_those_of_answers(shop: tuple[feats.App, FeatsProvider]) -> None:
    app, provider = shop
    kinds = (FlagType.INTEGER, FlagType.FLOAT, FlagType.OBJECT)
    for _ in range(2):  # cold, then from the cache
        for declaration in app.registry.features.values():
            for implementation in declaration.implementations.values():
                for kind in kinds:
                    assert provider._answers(declaration, implementation, kind) == answers(
                        implementation, kind
                    ), (declaration.name, implementation.name, kind)
