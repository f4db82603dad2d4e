"""OpenTelemetry ``feature_flag.evaluation`` events from feats evaluations and OpenFeature calls.

Two sources, the same event and attribute names (the feature-flag semantic conventions):

- ``EvaluationEvents``, a feats evaluation listener: one event per ``create``,
  ``is_enabled`` and ``find_implementation`` of the App it is added to
  (``app.add_evaluation_listener(EvaluationEvents())``). Opt-in: while it is registered
  each evaluation also costs an ``explain()`` and the event; without it the hot path is
  untouched (``benchmarks/telemetry.py`` measures both).
- ``openfeature_hook()``, an OpenFeature hook: one event per flag evaluation of any
  OpenFeature client it is added to (``client.add_hooks([openfeature_hook()])``).

Events go through the OpenTelemetry logs API (``opentelemetry-api``, the ``opentelemetry``
extra) to the global logger provider unless one is given. No user identifier is attached
unless asked for: ``context_id_segment`` (the listener) or ``include_targeting_key`` (the
hook) set ``feature_flag.context.id``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry._logs import Logger, LoggerProvider, LogRecord, get_logger
from opentelemetry.util.types import AnyValue

import feats
from feats import Evaluation

if TYPE_CHECKING:
    from openfeature.hook import Hook

__all__ = [
    "CONTEXT_ID",
    "ERROR_MESSAGE",
    "ERROR_TYPE",
    "EVENT_NAME",
    "KEY",
    "PROVIDER_NAME",
    "REASON",
    "VALUE",
    "VARIANT",
    "VERSION",
    "EvaluationEvents",
    "evaluation_attributes",
    "openfeature_hook",
]

EVENT_NAME = "feature_flag.evaluation"
KEY = "feature_flag.key"
VARIANT = "feature_flag.result.variant"
VALUE = "feature_flag.result.value"
REASON = "feature_flag.result.reason"
PROVIDER_NAME = "feature_flag.provider.name"
VERSION = "feature_flag.version"
CONTEXT_ID = "feature_flag.context.id"
ERROR_TYPE = "error.type"
ERROR_MESSAGE = "error.message"

SCOPE = "feats"
DRIFT = "configuration drift"


def _logger(logger_provider: LoggerProvider | None) -> Logger:
    return get_logger(SCOPE, feats.__version__, logger_provider=logger_provider)


def _emit(logger: Logger, attributes: Mapping[str, AnyValue]) -> None:
    logger.emit(LogRecord(timestamp=time.time_ns(), event_name=EVENT_NAME, attributes=attributes))


def evaluation_attributes(
    evaluation: Evaluation, *, provider_name: str = "feats", context_id_segment: str | None = None
) -> dict[str, AnyValue]:
    """The event's attributes for a feats evaluation.

    The reason is ``default`` (nothing configured answered), ``static`` (a static
    fallthrough), ``targeting_match`` (a rule's static answer), ``split`` (a rollout or an
    experiment), ``stale``, or ``error`` with ``error.type`` ``general`` when the default
    answered because the configuration names what this code lacks or a segment raised.
    """
    attributes: dict[str, AnyValue] = {
        KEY: evaluation.feature,
        VARIANT: evaluation.implementation,
        PROVIDER_NAME: provider_name,
    }
    reason = evaluation.reason
    if evaluation.default and (DRIFT in reason or " raised " in reason):
        attributes[REASON] = "error"
        attributes[ERROR_TYPE] = "general"
        attributes[ERROR_MESSAGE] = reason
    elif evaluation.stale:
        attributes[REASON] = "stale"
    elif evaluation.selector is None:
        attributes[REASON] = "default"
    elif evaluation.selector.hashing() is None:
        attributes[REASON] = "static" if evaluation.rule is None else "targeting_match"
    else:
        attributes[REASON] = "split"
    if evaluation.version is not None:
        attributes[VERSION] = evaluation.version
    if context_id_segment is not None:
        unit = evaluation.segment_values.get(context_id_segment)
        if unit is not None:
            attributes[CONTEXT_ID] = unit
    return attributes


class EvaluationEvents:
    """A feats evaluation listener emitting one ``feature_flag.evaluation`` event per call.

    ``context_id_segment``: the segment whose value (e.g. ``UserId``) becomes
    ``feature_flag.context.id`` when the evaluation read it; by default none is sent.
    """

    def __init__(
        self,
        *,
        logger_provider: LoggerProvider | None = None,
        provider_name: str = "feats",
        context_id_segment: str | None = None,
    ) -> None:
        self.provider_name = provider_name
        self.context_id_segment = context_id_segment
        self._logger = _logger(logger_provider)

    def __call__(self, evaluation: Evaluation) -> None:
        _emit(
            self._logger,
            evaluation_attributes(
                evaluation,
                provider_name=self.provider_name,
                context_id_segment=self.context_id_segment,
            ),
        )


def openfeature_hook(
    *, logger_provider: LoggerProvider | None = None, include_targeting_key: bool = False
) -> Hook:
    """An OpenFeature hook emitting one ``feature_flag.evaluation`` event per evaluation,
    errors included (its ``finally_after`` stage), for any provider.

    The OpenFeature SDK's own ``create_evaluation_event`` predates the current attribute
    names (``feature_flag.variant``, ``feature_flag.provider_name``) and sends the targeting
    key by default; this hook uses the current names and sends it only with
    ``include_targeting_key``. Needs openfeature-sdk (the ``openfeature`` extra).
    """
    from openfeature.flag_evaluation import FlagEvaluationDetails, FlagValueType
    from openfeature.hook import Hook, HookContext, HookHints

    logger = _logger(logger_provider)

    class EvaluationEventHook(Hook):
        def finally_after(
            self,
            hook_context: HookContext,
            details: FlagEvaluationDetails[FlagValueType],
            hints: HookHints,
        ) -> None:
            attributes: dict[str, AnyValue] = {
                KEY: details.flag_key,
                REASON: str(details.reason or "UNKNOWN").lower(),
            }
            if details.variant:
                attributes[VARIANT] = details.variant
            elif isinstance(details.value, bool | int | float | str):
                attributes[VALUE] = details.value
            if hook_context.provider_metadata is not None:
                attributes[PROVIDER_NAME] = hook_context.provider_metadata.name
            version = details.flag_metadata.get("version")
            if version is not None:
                attributes[VERSION] = str(version)
            if details.error_code is not None:
                attributes[ERROR_TYPE] = str(details.error_code).lower()
                if details.error_message:
                    attributes[ERROR_MESSAGE] = details.error_message
            if include_targeting_key and hook_context.evaluation_context.targeting_key:
                attributes[CONTEXT_ID] = hook_context.evaluation_context.targeting_key
            _emit(logger, attributes)

    return EvaluationEventHook()
