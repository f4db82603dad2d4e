"""FeatsProvider: OpenFeature resolutions answered from a feats App's snapshot."""

from __future__ import annotations

import asyncio
import logging
import threading
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import (
    ErrorCode,
    OpenFeatureError,
    ProviderFatalError,
    ProviderNotReadyError,
)
from openfeature.flag_evaluation import FlagResolutionDetails, FlagType, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

import feats
import feats.aio
from feats import (
    ConfigurationError,
    Evaluation,
    FeatureDeclaration,
    Implementation,
    NotFoundError,
    Status,
)

from ._context import segment_values
from ._values import _answers, typed_value

__all__ = ["FeatsProvider", "Inputs"]

logger = logging.getLogger("feats")

Inputs: TypeAlias = Callable[[str, EvaluationContext], Sequence[Any]]
"""``inputs(feature, context)``: the arguments a feature's implementations take, built from
an evaluation context (e.g. ``(User(int(context.targeting_key), ...),)``)."""

AnyApp: TypeAlias = feats.App | feats.aio.App
ObjectValue: TypeAlias = Sequence[FlagValueType] | Mapping[str, FlagValueType]
_Announced = Literal["ready", "stale", "error"] | None

DRIFT = "configuration drift"
"""How explain() and explain_values() begin the reason when the default answers because the
configuration names something this code does not declare."""
NAME = "feats"
CLOSE_TIMEOUT = 30.0
"""Seconds shutdown() waits for an asyncio App to close on its loop from another thread."""


@dataclass(frozen=True, slots=True)
class _Call:
    """A decision whose value an implementation computes: call it, then finish."""

    feature: str
    implementation: Implementation
    args: tuple[Any, ...]
    kind: FlagType
    default: Any
    reason: Reason
    metadata: Mapping[str, str]
    evaluation: Evaluation | None


def _error(default: Any, code: ErrorCode, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(
        value=default, reason=Reason.ERROR, error_code=code, error_message=message
    )


def _reason(evaluation: Evaluation) -> Reason:
    """No configuration, or no rule: DEFAULT; a static fallthrough: STATIC; a rule's static
    answer: TARGETING_MATCH; any rollout or experiment: SPLIT."""
    selector = evaluation.selector
    if selector is None:
        return Reason.DEFAULT
    if selector.hashing() is None:
        return Reason.STATIC if evaluation.rule is None else Reason.TARGETING_MATCH
    return Reason.SPLIT


def _return_annotation(implementation: Implementation) -> tuple[Any, bool]:
    """The return annotation as ``answers()`` resolves it (the declared type's name when
    it cannot be), and whether it resolved."""
    try:
        hints = typing.get_type_hints(implementation.function)
    except Exception:
        return implementation.returns, False
    return hints.get("return", implementation.returns), True


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class FeatsProvider(AbstractProvider):
    """An OpenFeature provider whose flags are the features declared on a feats App.

    The flag key is the feature name and the variant is the implementation name. A string
    resolution answers the implementation's name; a boolean resolution answers a boolean
    feature (``enabled``, ``disabled``, or its own function's value); integer, float and
    object resolutions answer what the chosen implementation returns, where it is declared
    to return that type (a JSON-like container for objects), else TYPE_MISMATCH.

    The evaluation context gives segment values by segment name (``Country="US"``, as in
    ``feats explain FEATURE Country=US``) and its targeting key is the value of the segment
    ``targeting_key`` (default ``UserId``). Decisions come from the App's snapshot: no I/O.
    Calling an implementation needs the feature's inputs: none for a feature that takes
    none, otherwise ``inputs(feature, context)`` builds them. Without it a boolean
    feature's own function is answered by the caller's default (reason DEFAULT).

    Every successful resolution is an evaluation whose value the caller uses, so one an
    experiment decided records an exposure (``record_exposures=False`` turns that off);
    errors record none. With ``owns_app`` (the default) ``initialize`` starts the App and
    ``shutdown`` closes it; an asyncio App is started on the event loop running when the
    provider was created.
    """

    def __init__(
        self,
        app: AnyApp,
        *,
        targeting_key: str | None = "UserId",
        inputs: Inputs | None = None,
        owns_app: bool = True,
        record_exposures: bool = True,
    ) -> None:
        super().__init__()
        self.app = app
        self.targeting_key = targeting_key
        self.inputs = inputs
        self.owns_app = owns_app
        self.record_exposures = record_exposures
        self._metadata = Metadata(name=NAME)
        self._loop = _running_loop() if isinstance(app, feats.aio.App) else None
        self._lock = threading.Lock()
        self._announcing = False
        self._announced: _Announced = None
        status = app.status
        self._state = status.state
        self._loaded = status.reloads > 0
        self._closing: asyncio.Task[None] | None = None
        self._last_change: tuple[str, tuple[str, ...]] | None = None
        self._returns: dict[str, tuple[FeatureDeclaration, dict[str, Any]]] = {}
        """Per feature: its declaration and its implementations' resolved return annotations."""
        app.add_status_listener(self._on_status)
        app.add_listener(self._on_change)

    # -- metadata and lifecycle --------------------------------------------------------

    def get_metadata(self) -> Metadata:
        return self._metadata

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Start the App when the provider owns it; return once configuration is loaded.

        ProviderNotReadyError when none was loaded within the App's ``start_timeout``: the
        App keeps retrying and PROVIDER_READY follows its first load.
        """
        with self._lock:
            self._announcing = False
            self._announced = None
        if self.owns_app:
            self._start_app()
        loaded = self._is_loaded()
        with self._lock:
            self._announcing = True
            self._announced = "ready" if loaded else "error"
        if not loaded:
            status = self.app.status
            raise ProviderNotReadyError(
                f"no configuration loaded within {self.app.start_timeout}s "
                f"({status.error or 'no answer from storage'}); the App keeps retrying "
                "and PROVIDER_READY follows its first load"
            )

    def shutdown(self) -> None:
        """Stop announcing events; close the App when the provider owns it."""
        with self._lock:
            self._announcing = False
            self._announced = None
        if self.owns_app:
            self._close_app()

    def _is_loaded(self) -> bool:
        if not self._loaded and self.app.status.reloads > 0:
            self._loaded = True
        return self._loaded

    def _running(self) -> bool:
        status = self.app.status
        return status.reloads > 0 and status.state in ("live", "stale")

    def _start_app(self) -> None:
        app = self.app
        if isinstance(app, feats.App):
            app.start()
            return
        if self._running():
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            raise ProviderFatalError(
                "an asyncio App runs on an event loop: create the FeatsProvider inside the "
                "running loop, or start the App yourself and pass owns_app=False"
            )
        if _running_loop() is loop:
            raise ProviderFatalError(
                "initialize() was called on the App's own event loop, which it would have to "
                "block to start the App: start it first (async with app) or call "
                "api.set_provider(), which initializes on another thread"
            )
        future = asyncio.run_coroutine_threadsafe(app.start(), loop)
        try:
            future.result(timeout=app.start_timeout + 5)
        except TimeoutError:
            future.cancel()
            raise ProviderNotReadyError(
                "the App's event loop did not run start() in time; is it running?"
            ) from None

    def _close_app(self) -> None:
        app = self.app
        if isinstance(app, feats.App):
            app.close()
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _running_loop() is loop:
            # Called from a coroutine on the App's loop: the close finishes there, soon.
            self._closing = loop.create_task(app.aclose())
            return
        if not loop.is_running():
            logger.warning("feats: the App's event loop is not running; it was not closed")
            return
        future = asyncio.run_coroutine_threadsafe(app.aclose(), loop)
        try:
            future.result(timeout=CLOSE_TIMEOUT)
        except TimeoutError:
            logger.warning("feats: the App did not close in time")

    # -- events ------------------------------------------------------------------------

    def _on_status(self, status: Status) -> None:
        """PROVIDER_READY, _STALE or _ERROR as the App's state changes (after initialize)."""
        self._state = status.state
        if status.reloads > 0:
            self._loaded = True
        with self._lock:
            if not self._announcing:
                return
            event: _Announced = None
            if status.state == "live" and self._loaded:
                event = "ready"
            elif status.state == "closed" or (status.state == "stale" and self._loaded):
                event = "stale"
            elif status.state == "stale":
                event = "error"
            if event is None or event == self._announced:
                return
            self._announced = event
        metadata: dict[str, bool | str | int | float] = {}
        if status.version is not None:
            metadata["version"] = status.version
        if event == "ready":
            self.emit_provider_ready(ProviderEventDetails(metadata=metadata))
        elif event == "stale":
            message = (
                "the App was closed: the last configuration answers, no change arrives"
                if status.state == "closed"
                else f"configuration may be out of date: {status.error}"
            )
            self.emit_provider_stale(ProviderEventDetails(message=message, metadata=metadata))
        else:
            self.emit_provider_error(
                ProviderEventDetails(
                    message=f"no configuration loaded yet: {status.error}",
                    error_code=ErrorCode.GENERAL,
                    metadata=metadata,
                )
            )

    def _on_change(self, version: str, features: tuple[str, ...]) -> None:
        """PROVIDER_CONFIGURATION_CHANGED for every applied change to a declared feature."""
        with self._lock:
            if not self._announcing or self._announced not in ("ready", "stale"):
                return
            # A writer's own change is announced when written and again when its tail
            # reads it back: one event.
            if (version, features) == self._last_change:
                return
            self._last_change = (version, features)
        declared = self.app.registry.features
        changed = [name for name in features if name in declared]
        if changed:
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=changed, metadata={"version": version})
            )

    # -- resolving ---------------------------------------------------------------------

    def _decide(
        self,
        kind: FlagType,
        key: str,
        default: Any,
        context: EvaluationContext | None,
    ) -> FlagResolutionDetails[Any] | _Call:
        """Everything but calling an implementation: errors and name answers are final."""
        declaration = self.app.registry.features.get(key)
        if declaration is None:
            return _error(default, ErrorCode.FLAG_NOT_FOUND, f"no feature {key!r} is declared")
        if not self._is_loaded():
            return _error(
                default,
                ErrorCode.PROVIDER_NOT_READY,
                "the App has not loaded its configuration yet",
            )
        if kind is FlagType.BOOLEAN and not declaration.boolean:
            return _error(
                default,
                ErrorCode.TYPE_MISMATCH,
                f"{key} is not a boolean feature; resolve it as a string for its implementation",
            )
        if kind is FlagType.STRING and declaration.boolean:
            return _error(
                default, ErrorCode.TYPE_MISMATCH, f"{key} is a boolean feature; resolve a boolean"
            )
        evaluation: Evaluation | None
        try:
            evaluation = self.app.explain_values(key, segment_values(context, self.targeting_key))
        except NotFoundError as error:
            return _error(default, ErrorCode.FLAG_NOT_FOUND, str(error))
        except ConfigurationError as error:
            evaluation = None
            implementation = declaration.default
            reason = Reason.DEFAULT
            explanation = f"the context lacks a segment: {error}; the default answers"
            version = None
        else:
            if evaluation.reason.startswith(DRIFT):
                return _error(default, ErrorCode.GENERAL, evaluation.reason)
            implementation = evaluation.implementation
            reason = _reason(evaluation)
            explanation = evaluation.reason
            version = evaluation.version
        if (evaluation is not None and evaluation.stale) or self._state == "closed":
            reason = Reason.STALE
        metadata = {"explanation": explanation}
        if version is not None:
            metadata["version"] = version
        if kind is FlagType.STRING:
            return self._resolved(implementation, implementation, reason, metadata, evaluation)
        if kind is FlagType.BOOLEAN and implementation in ("enabled", "disabled"):
            value = implementation == "enabled"
            return self._resolved(value, implementation, reason, metadata, evaluation)
        chosen = declaration.implementations[implementation]
        if kind is not FlagType.BOOLEAN and not self._answers(declaration, chosen, kind):
            return _error(
                default,
                ErrorCode.TYPE_MISMATCH,
                f"{key}.{implementation} is declared to return {chosen.returns}, "
                f"not a {kind.value.lower()} value",
            )
        args = self._arguments(declaration, key, default, context)
        if isinstance(args, FlagResolutionDetails):
            return args
        if args is None:
            if kind is FlagType.BOOLEAN:
                # A boolean feature's own function needs its inputs; the caller's default
                # stands in for it.
                metadata["explanation"] = (
                    f"{explanation}; {key}'s own function needs its inputs "
                    "(FeatsProvider(inputs=...)): the caller's default answers"
                )
                if reason is not Reason.STALE:
                    reason = Reason.DEFAULT
                return self._resolved(default, implementation, reason, metadata, evaluation)
            return _error(
                default,
                ErrorCode.GENERAL,
                f"{key}.{implementation} takes inputs ({_types(declaration)}): give "
                "FeatsProvider(inputs=...) to build them from the evaluation context",
            )
        return _Call(key, chosen, args, kind, default, reason, metadata, evaluation)

    def _answers(
        self, declaration: FeatureDeclaration, implementation: Implementation, kind: FlagType
    ) -> bool:
        """``answers(implementation, kind)``, with the return annotation resolved once per
        implementation rather than by ``typing.get_type_hints`` (a compile and an eval per
        annotation) on every resolution. Kept per feature and dropped if the registry ever
        holds another declaration under its name (an App's never does); an annotation that
        does not resolve yet (a forward reference) is not kept, so it is tried again."""
        cached = self._returns.get(declaration.name)
        if cached is None or cached[0] is not declaration:
            cached = (declaration, {})
            self._returns[declaration.name] = cached
        annotations = cached[1]
        try:
            annotation = annotations[implementation.name]
        except KeyError:
            annotation, resolved = _return_annotation(implementation)
            if resolved:
                annotations[implementation.name] = annotation
        return _answers(annotation, kind)

    def _arguments(
        self,
        declaration: FeatureDeclaration,
        key: str,
        default: Any,
        context: EvaluationContext | None,
    ) -> tuple[Any, ...] | FlagResolutionDetails[Any] | None:
        """The inputs to call an implementation with; None when they cannot be built."""
        if declaration.arity == 0:
            return ()
        if self.inputs is None:
            return None
        try:
            args = tuple(self.inputs(key, context or EvaluationContext()))
        except OpenFeatureError as error:
            return _error(default, error.error_code, error.error_message or type(error).__name__)
        except Exception as error:
            return _error(
                default, ErrorCode.GENERAL, f"inputs() raised {type(error).__name__}: {error}"
            )
        if len(args) != declaration.arity:
            return _error(
                default,
                ErrorCode.GENERAL,
                f"inputs() gave {len(args)} argument(s) for {key}, which takes "
                f"{declaration.arity} ({_types(declaration)})",
            )
        return args

    def _resolved(
        self,
        value: Any,
        variant: str,
        reason: Reason,
        metadata: Mapping[str, str],
        evaluation: Evaluation | None,
    ) -> FlagResolutionDetails[Any]:
        if self.record_exposures and evaluation is not None:
            self.app.record_exposure(evaluation)
        return FlagResolutionDetails(
            value=value,
            reason=reason,
            variant=variant,
            flag_metadata=MappingProxyType(dict(metadata)),
        )

    def _finish(self, call: _Call, value: Any) -> FlagResolutionDetails[Any]:
        ok, typed = typed_value(value, call.kind)
        if not ok:
            return _error(
                call.default,
                ErrorCode.TYPE_MISMATCH,
                f"{call.feature}.{call.implementation.name} returned {type(value).__name__}, "
                f"not a {call.kind.value.lower()} value",
            )
        return self._resolved(
            typed, call.implementation.name, call.reason, call.metadata, call.evaluation
        )

    def _raised(self, call: _Call, error: Exception) -> FlagResolutionDetails[Any]:
        return _error(
            call.default,
            ErrorCode.GENERAL,
            f"{call.feature}.{call.implementation.name} raised {type(error).__name__}: {error}",
        )

    def _resolve(
        self, kind: FlagType, key: str, default: Any, context: EvaluationContext | None
    ) -> FlagResolutionDetails[Any]:
        step = self._decide(kind, key, default, context)
        if isinstance(step, FlagResolutionDetails):
            return step
        if step.implementation.is_async:
            return _error(
                default,
                ErrorCode.GENERAL,
                f"{key}.{step.implementation.name} is async def: use the client's *_async "
                "evaluation methods",
            )
        try:
            value = step.implementation.function(*step.args)
        except Exception as error:
            return self._raised(step, error)
        return self._finish(step, value)

    async def _resolve_async(
        self, kind: FlagType, key: str, default: Any, context: EvaluationContext | None
    ) -> FlagResolutionDetails[Any]:
        step = self._decide(kind, key, default, context)
        if isinstance(step, FlagResolutionDetails):
            return step
        try:
            value = step.implementation.function(*step.args)
            if step.implementation.is_async:
                value = await value
        except Exception as error:
            return self._raised(step, error)
        return self._finish(step, value)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(FlagType.BOOLEAN, flag_key, default_value, evaluation_context)

    async def resolve_boolean_details_async(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return await self._resolve_async(
            FlagType.BOOLEAN, flag_key, default_value, evaluation_context
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(FlagType.STRING, flag_key, default_value, evaluation_context)

    async def resolve_string_details_async(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return await self._resolve_async(
            FlagType.STRING, flag_key, default_value, evaluation_context
        )

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(FlagType.INTEGER, flag_key, default_value, evaluation_context)

    async def resolve_integer_details_async(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return await self._resolve_async(
            FlagType.INTEGER, flag_key, default_value, evaluation_context
        )

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(FlagType.FLOAT, flag_key, default_value, evaluation_context)

    async def resolve_float_details_async(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return await self._resolve_async(
            FlagType.FLOAT, flag_key, default_value, evaluation_context
        )

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        return self._resolve(FlagType.OBJECT, flag_key, default_value, evaluation_context)

    async def resolve_object_details_async(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        return await self._resolve_async(
            FlagType.OBJECT, flag_key, default_value, evaluation_context
        )


def _types(declaration: FeatureDeclaration) -> str:
    return ", ".join(getattr(t, "__name__", repr(t)) for t in declaration.input_types)
