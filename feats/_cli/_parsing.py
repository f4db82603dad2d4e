"""What operators type on the command line, parsed: ``SEGMENT=VALUE`` pairs and percent weights."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from .._errors import ConfigurationError

__all__ = ["parse_pairs", "parse_weights"]


def _number(name: str, text: str) -> float:
    cleaned = text.strip().removesuffix("%").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise ConfigurationError(
            f"weight of {name}: {text!r} is not a number (write IMPLEMENTATION=PERCENT, "
            "e.g. aperture=5)"
        ) from None
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ConfigurationError(f"weight of {name}: {text!r} must be a number from 0 to 100")
    return value


def parse_weights(items: Iterable[str], *, total: float = 100.0) -> dict[str, float]:
    """``["aperture=5", "acme=95"]`` as weights; they must add up to ``total`` (percent)."""
    weights: dict[str, float] = {}
    for item in items:
        name, equals, text = item.partition("=")
        name = name.strip()
        if not equals or not name:
            raise ConfigurationError(
                f"bad weight {item!r}: expected IMPLEMENTATION=WEIGHT, e.g. aperture=5"
            )
        if name in weights:
            raise ConfigurationError(f"weight of {name}: given twice")
        weight = _number(name, text)
        weights[name] = int(weight) if weight.is_integer() else weight
    if not weights:
        raise ConfigurationError("no weights: give IMPLEMENTATION=WEIGHT for each implementation")
    added = sum(weights.values())
    if abs(added - total) > 1e-9:
        given = " ".join(f"{name}={weight:g}" for name, weight in weights.items())
        raise ConfigurationError(
            f"weights add up to {added:g}, not {total:g} ({given}); give every implementation "
            f"its share, e.g. {_adding_up(weights, total)}"
        )
    return weights


def _adding_up(weights: Mapping[str, float], total: float) -> str:
    """The given weights changed as little as possible to add up to ``total``."""
    names = list(weights)
    *first, last = names
    head = sum(weights[name] for name in first)
    if len(names) > 1 and head < total:
        fixed = {**{name: weights[name] for name in first}, last: total - head}
    else:
        scale = total / (sum(weights.values()) or 1)
        fixed = {name: round(weights[name] * scale, 2) for name in names}
        if len(names) == 1:
            fixed = {last: total}
    return " ".join(f"{name}={weight:g}" for name, weight in fixed.items())


def parse_pairs(items: Iterable[str], what: str = "SEGMENT=VALUE") -> dict[str, str]:
    """``["Country=CA"]`` as ``{"Country": "CA"}``."""
    pairs: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise ConfigurationError(f"expected {what}, got {item!r} (e.g. Country=CA)")
        if name.strip() in pairs:
            raise ConfigurationError(f"{name.strip()} is given twice")
        pairs[name.strip()] = value
    return pairs
