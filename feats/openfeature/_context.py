"""Evaluation contexts turned into the segment values feats evaluates by."""

from __future__ import annotations

from openfeature.evaluation_context import EvaluationContext, EvaluationContextAttribute

__all__ = ["segment_text", "segment_values"]


def segment_text(value: EvaluationContextAttribute | None) -> str | None:
    """A context attribute as a segment value, or None for what no segment returns.

    Segments return strings; numbers and booleans are written the way the CLI takes them
    (``UserId=42``, ``Beta=true``). Null, dates, lists and structures name no segment value.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def segment_values(
    context: EvaluationContext | None, targeting_segment: str | None
) -> dict[str, str]:
    """Segment values by segment name: the context's attributes, and its targeting key as
    ``targeting_segment`` unless an attribute names that segment itself."""
    values: dict[str, str] = {}
    if context is None:
        return values
    if targeting_segment is not None and context.targeting_key:
        values[targeting_segment] = context.targeting_key
    for name, value in context.attributes.items():
        text = segment_text(value)
        if text is not None:
            values[name] = text
    return values
