"""The feats side of the evaluation scenarios: declarations, states, the plain-function floor."""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import xxhash

import feats
import feats.aio
from benchmarks._users import COUNTRY_WEIGHTS, User
from benchmarks.peers import DEFAULT, EXPERIMENT_D, ROLLOUT_B
from feats import BUCKETS, Experiment, FeatureState, Rollout, Static

__all__ = [
    "FEATURE_NAMES",
    "AnyApp",
    "Handles",
    "answer_of",
    "build_floor",
    "declare",
    "declare_flags",
    "scenario_states",
]

AnyApp: TypeAlias = feats.App | feats.aio.App

# The feature each scenario evaluates; (d) also has a twin split as a Rollout: exposures off.
FEATURE_NAMES: Final[Mapping[str, str]] = {
    "a": "new_checkout",
    "b": "PaymentProcessor",
    "c": "Shipping",
    "d": "Pricing",
    "d-off": "PricingNoExposures",
}

_hash = xxhash.xxh3_64_intdigest


@dataclass(frozen=True, slots=True)
class Handles:
    """What `declare` returns: the segments and one feature handle per scenario."""

    user_id: feats.SegmentHandle
    country: feats.SegmentHandle
    features: Mapping[str, Any]


class UserId:
    """The user's id: the unit of rollouts and experiments."""

    def user(self, user: User) -> str:
        return str(user.id)


class Country:
    OPTIONS: Final = list(COUNTRY_WEIGHTS)

    def user(self, user: User) -> str:
        return user.country


def new_checkout(user: User) -> bool:
    """(a) A boolean rolled out to half the users."""
    return False


def _three_way(app: AnyApp, name: str, doc: str) -> Any:
    """A fresh feature class (the name is its identity) with acme as the default."""

    def acme(self: Any, user: User) -> str:
        return "acme"

    def premium(self: Any, user: User) -> str:
        return "premium"

    def aperture(self: Any, user: User) -> str:
        return "aperture"

    members = {"__doc__": doc, "acme": app.default(acme), "premium": premium, "aperture": aperture}
    return app.feature(type(name, (), members))


class Shipping:
    """(c) Never configured: the default answers (named "default", like the peers')."""

    @feats.App.default
    def default(self, user: User) -> str:
        return DEFAULT

    def express(self, user: User) -> str:
        return "express"


def declare(app: AnyApp) -> Handles:
    """Declare the scenario segments and features on a sync or an asyncio App.

    Every implementation returns its own name, so an answer shows which one ran.
    """
    user_id = app.segment(UserId)
    country = app.segment(Country)
    features: dict[str, Any] = {
        "a": app.boolean(new_checkout),
        "b": _three_way(
            app, "PaymentProcessor", "(b) Canada always premium; a three-way rollout elsewhere."
        ),
        "c": app.feature(Shipping),
        "d": _three_way(app, "Pricing", "(d) A three-way experiment: create() records exposures."),
        "d-off": _three_way(
            app, "PricingNoExposures", "(d) with exposures off: the same split as a Rollout."
        ),
    }
    return Handles(user_id, country, features)


def scenario_states(handles: Handles) -> dict[str, FeatureState]:
    """The configuration of each scenario's feature; (c) has none on purpose."""
    user_id, country = handles.user_id, handles.country
    return {
        "a": FeatureState(rules={None: Rollout(user_id, {"enabled": 50, "disabled": 50})}),
        "b": FeatureState(
            segments=[country],
            rules={("CA",): Static("premium"), None: Rollout(user_id, dict(ROLLOUT_B))},
        ),
        "d": FeatureState(rules={None: Experiment(user_id, dict(EXPERIMENT_D))}),
        "d-off": FeatureState(rules={None: Rollout(user_id, dict(EXPERIMENT_D))}),
    }


def answer_of(value: Any) -> str:
    """The implementation an evaluation's result names (booleans as enabled/disabled)."""
    if isinstance(value, bool):
        return "enabled" if value else "disabled"
    return str(value)


def declare_flags(app: AnyApp, count: int, prefix: str = "flag_") -> list[Any]:
    """Declare ``count`` boolean features named ``flag_0 ...`` (the startup and fan-out sets)."""
    handles = []
    for index in range(count):

        def flag(user: User) -> bool:
            return False

        flag.__name__ = flag.__qualname__ = f"{prefix}{index}"
        handles.append(app.boolean(flag))
    return handles


# --------------------------------------------------------------------------- the floor


def _acme(user: User) -> str:
    return "acme"


def _premium(user: User) -> str:
    return "premium"


def _aperture(user: User) -> str:
    return "aperture"


def _default(user: User) -> str:
    return DEFAULT


def _on(user: User) -> bool:
    return True


def _off(user: User) -> bool:
    return False


_PLAIN: Final[Mapping[str, Callable[[User], str]]] = {
    "acme": _acme,
    "premium": _premium,
    "aperture": _aperture,
}


def _split(state: FeatureState) -> tuple[int, list[int], list[str]]:
    """Salt and bucket ranges of a state's fallthrough, as feats resolved them on write."""
    selector = state.rules[None]
    if not isinstance(selector, Rollout | Experiment):
        raise TypeError(f"expected a split fallthrough, got {selector!r}")
    if selector.salt is None or selector.allocation is None:
        raise ValueError("read the state back from storage: it carries salt and allocation")
    return (
        selector.salt,
        [start for _, start, _ in selector.allocation],
        [name for name, _, _ in selector.allocation],
    )


def build_floor(
    scenario: str, stored: FeatureState | None, exposures: deque[tuple[str, str, str, str]]
) -> Callable[[User], Any]:
    """A plain function doing what the hot path must: one dict lookup, one hash, the call.

    It reads the state as stored (same salt, same bucket ranges), so its answers match
    feats user for user. No validation, no drift handling, no arity check, no segment call.
    """
    if scenario == "c":
        config_c: dict[str, Callable[[User], str]] = {}

        def floor_c(user: User) -> str:
            return config_c.get("Shipping", _default)(user)

        return floor_c
    if stored is None:
        raise ValueError(f"scenario {scenario} needs its stored state")
    salt, starts, names = _split(stored)
    if scenario == "a":
        if len(names) != 2:
            raise ValueError(f"scenario a is a two-way split, got {names}")
        flags = {"enabled": _on, "disabled": _off}
        config_a = {"new_checkout": (salt, starts[1])}
        plain_a: dict[bool, Callable[[User], bool]] = {
            True: flags[names[0]],
            False: flags[names[1]],
        }

        def floor_a(user: User) -> bool:
            seed, threshold = config_a["new_checkout"]
            return plain_a[_hash(str(user.id).encode(), seed) % BUCKETS < threshold](user)

        return floor_a
    impls = [_PLAIN[name] for name in names]
    if scenario == "b":
        statics = {"CA": _premium}

        def floor_b(user: User) -> str:
            static = statics.get(user.country)
            if static is not None:
                return static(user)
            return impls[bisect_right(starts, _hash(str(user.id).encode(), salt) % BUCKETS) - 1](
                user
            )

        return floor_b
    record = exposures.append
    config_d = {"Pricing": (salt, starts)}

    def floor_d(user: User) -> str:
        seed, bounds = config_d["Pricing"]
        unit = str(user.id)
        index = bisect_right(bounds, _hash(unit.encode(), seed) % BUCKETS) - 1
        record(("Pricing", names[index], unit, "1-0"))
        return impls[index](user)

    return floor_d
