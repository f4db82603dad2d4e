"""override(): pin features of an App to an implementation, an on/off answer or a state."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TypeAlias, TypeVar, cast

from .._base import AppBase
from .._errors import NotFoundError
from .._state import FeatureState, Static, validate_state

__all__ = ["Overrides", "Pin", "override"]

Pin: TypeAlias = str | bool | FeatureState
"""What a feature is pinned to: an implementation's name, True / False for a boolean
feature (its ``enabled`` / ``disabled`` implementation), or a whole FeatureState."""

Function = TypeVar("Function", bound=Callable[..., Any])


class Overrides(Protocol):
    """The type of the ``feats_override`` fixture: ``feats_override(app, **pins)``."""

    def __call__(self, app: AppBase[Any, Any], /, **pins: Pin) -> None: ...


def _close_names(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def pinned_state(app: AppBase[Any, Any], feature: str, pin: Pin) -> FeatureState:
    """The state ``pin`` stands for, or a clear error naming what exists."""
    declaration = app.registry.features.get(feature)
    if declaration is None:
        declared = sorted(app.registry.features)
        raise NotFoundError(
            f"override: unknown feature {feature!r}{_close_names(feature, declared)} "
            f"(declared: {', '.join(declared) or 'none'})"
        )
    implementations = list(declaration.implementations)
    if isinstance(pin, bool):
        if not declaration.boolean:
            raise TypeError(
                f"override: {feature} is not a boolean feature; pin it to one of its "
                f"implementations ({', '.join(implementations)}) instead of {pin!r}"
            )
        return FeatureState(rules={None: Static("enabled" if pin else "disabled")})
    if isinstance(pin, str):
        if pin not in declaration.implementations:
            raise NotFoundError(
                f"override: {feature} has no implementation {pin!r}"
                f"{_close_names(pin, implementations)} "
                f"(implementations: {', '.join(implementations)})"
            )
        return FeatureState(rules={None: Static(pin)})
    if isinstance(pin, FeatureState):
        return pin
    raise TypeError(
        f"override: pin {feature} to an implementation name, a bool (boolean features) "
        f"or a FeatureState, not {pin!r}"
    )


class override:
    """Pin features of ``app`` by name for the duration of a block or a test::

        with feats.testing.override(app, PaymentProcessor="premium", ImageProcessing=False):
            ...

        @feats.testing.override(app, PaymentProcessor="premium")
        async def test_premium() -> None: ...

    In this process only: no storage is touched, no Redis needed, the App need not be
    started; ``explain()`` says "overridden in this process". Overrides nest, and leaving
    one restores what was pinned before. An unknown feature or implementation, or a
    state the declarations cannot serve, raises at the call.
    """

    def __init__(self, app: AppBase[Any, Any], /, **pins: Pin) -> None:
        if not isinstance(app, AppBase):
            raise TypeError(f"override: expected a feats.App or feats.aio.App, got {app!r}")
        self._app = app
        self._states = {name: pinned_state(app, name, pin) for name, pin in pins.items()}
        for name, state in self._states.items():
            # Validated now, so a bad pin fails at the call, not when the block starts.
            validate_state(name, state, app.registry)
        self._saved: list[dict[str, FeatureState | None]] = []

    def __enter__(self) -> override:
        saved: dict[str, FeatureState | None] = {}
        for name, state in self._states.items():
            saved[name] = self._app.override(name, state)
        self._saved.append(saved)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        saved = self._saved.pop()
        for name, previous in reversed(saved.items()):
            self._app.override(name, previous)

    def __call__(self, function: Function) -> Function:
        """As a decorator: the pins hold while the (sync or ``async def``) function runs."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def pinned_coroutine(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await function(*args, **kwargs)

            return cast(Function, pinned_coroutine)

        @functools.wraps(function)
        def pinned(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return cast(Function, pinned)
