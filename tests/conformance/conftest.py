"""The OpenFeature conformance harness: a World per scenario, and every step the scenarios use.

Each scenario runs four times: on a sync ``feats.App`` and on a ``feats.aio.App`` (running on
an event loop of its own thread, as in a server), each resolved through the OpenFeature
client's sync methods and its ``*_async`` ones. Every evaluation step also resolves the same
flag through a second provider on the same App in the other mode and asserts both agree.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pytest
import redis
import redis.asyncio
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagResolutionDetails, Reason
from openfeature.hook import Hook, HookContext, HookHints
from openfeature.provider import ProviderStatus
from pytest_bdd import given, parsers, then, when

import feats
import feats.aio
from feats.openfeature import FeatsProvider
from tests.conformance._shop import Shopper, declare_shop, shopper_inputs
from tests.servers import FaultProxy

T = TypeVar("T")
AppKind = Literal["App", "aio"]
Mode = Literal["sync", "async"]
AnyApp = feats.App | feats.aio.App

DEADLINE = 15.0
"""Seconds a step waits for something asynchronous (an event handler, a state) at most."""
KINDS = ("boolean", "string", "integer", "float", "object")


def pytest_bdd_apply_tag(tag: str, function: Any) -> bool | None:
    """Spec requirement tags (``@spec-1.4.8``) label scenarios; they are not pytest marks."""
    return True if tag.startswith("spec-") or tag.startswith("feats-") else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every scenario on both Apps in both resolve modes (the other tests here run once)."""
    if metafunc.module.__name__.endswith("test_scenarios"):
        metafunc.parametrize("app_kind", ["App", "aio"], indirect=True)
        metafunc.parametrize("resolve_mode", ["sync", "async"], indirect=True)


@pytest.fixture(autouse=True)
def app_kind(request: pytest.FixtureRequest) -> AppKind:
    kind: AppKind = getattr(request, "param", "App")
    return kind


@pytest.fixture(autouse=True)
def resolve_mode(request: pytest.FixtureRequest) -> Mode:
    mode: Mode = getattr(request, "param", "sync")
    return mode


class LoopThread:
    """An event loop on a daemon thread: where the asyncio App lives and async resolves run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="conformance-loop")
        self._thread.daemon = True
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = DEADLINE) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, function: Callable[[], T]) -> T:
        """Run a plain function on the loop's thread (inside the running loop)."""

        async def inside() -> T:
            return function()

        return self.run(inside())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=DEADLINE)
        self.loop.close()


class EventLog:
    """What OpenFeature event handlers received, waited on with a deadline."""

    def __init__(self) -> None:
        self._seen: list[tuple[ProviderEvent, EventDetails]] = []
        self._changed = threading.Condition()

    def handler(self, event: ProviderEvent) -> Callable[[EventDetails], None]:
        def record(details: EventDetails) -> None:
            with self._changed:
                self._seen.append((event, details))
                self._changed.notify_all()

        return record

    def of(self, event: ProviderEvent) -> list[EventDetails]:
        """Events of this kind from feats' provider.

        A handler added while its client still falls back to the SDK's default No-op
        provider runs at once for that provider's READY state: those are not ours.
        """
        with self._changed:
            return [
                details
                for kind, details in self._seen
                if kind is event and details.provider_name == "feats"
            ]

    def wait(self, event: ProviderEvent, count: int = 1) -> list[EventDetails]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.of(event)) >= count, DEADLINE):
                seen = [(kind.value, details.provider_name) for kind, details in self._seen]
                raise AssertionError(f"no {count} {event.value} within {DEADLINE}s; saw {seen}")
            return self.of(event)


class RecordingHook(Hook):
    """Records which hook stages ran and the details the after and finally stages saw."""

    def __init__(self) -> None:
        self.stages: list[str] = []
        self.details: dict[str, FlagEvaluationDetails[Any]] = {}

    def before(self, hook_context: HookContext, hints: HookHints) -> EvaluationContext | None:
        self.stages.append("before")
        return None

    def after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
    ) -> None:
        self.stages.append("after")
        self.details["after"] = details

    def error(self, hook_context: HookContext, exception: Exception, hints: HookHints) -> None:
        self.stages.append("error")

    def finally_after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
    ) -> None:
        self.stages.append("finally")
        self.details["finally"] = details


@dataclass
class World:
    """One scenario's App, provider, client, context and last result."""

    kind: AppKind
    mode: Mode
    loop: LoopThread
    redis_url: str
    domain: str = field(default_factory=lambda: f"conformance-{uuid.uuid4().hex[:10]}")
    app: AnyApp | None = None
    handles: dict[str, Any] = field(default_factory=dict)
    provider: FeatsProvider | None = None
    shadow: FeatsProvider | None = None
    client: OpenFeatureClient | None = None
    targeting_key: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    details: FlagEvaluationDetails[Any] | None = None
    results: list[tuple[str | None, FlagEvaluationDetails[Any]]] = field(default_factory=list)
    """Every evaluation's targeting key and details, in order."""
    versions: dict[str, str] = field(default_factory=dict)
    events: EventLog = field(default_factory=EventLog)
    hook: RecordingHook = field(default_factory=RecordingHook)
    proxy: FaultProxy | None = None
    namespace: str | None = None
    apps: list[AnyApp] = field(default_factory=list)
    clients: list[Any] = field(default_factory=list)
    """The Redis clients the Apps were given, closed with the world."""

    # -- Apps ---------------------------------------------------------------------------

    def make_app(self, storage: str = "memory", start_timeout: float = 5.0) -> AnyApp:
        """A fresh App with the shop declared; ``storage`` is memory, redis or proxy."""
        app: AnyApp
        if self.kind == "App":
            sync_storage: feats.Storage = feats.MemoryStorage()
            if storage != "memory":
                sync_client = redis.Redis.from_url(self._url(storage), socket_timeout=1.0)
                self.clients.append(sync_client)
                sync_storage = feats.RedisStorage(
                    redis=sync_client,
                    namespace=self._namespace(),
                    block_ms=300,
                )
            app = feats.App(storage=sync_storage, start_timeout=start_timeout, block_ms=300)
        else:
            aio_storage: feats.aio.Storage = feats.aio.MemoryStorage()
            if storage != "memory":
                aio_client = redis.asyncio.Redis.from_url(self._url(storage), socket_timeout=1.0)
                self.clients.append(aio_client)
                aio_storage = feats.aio.RedisStorage(
                    redis=aio_client,
                    namespace=self._namespace(),
                    block_ms=300,
                )
            app = feats.aio.App(storage=aio_storage, start_timeout=start_timeout, block_ms=300)
        self.handles = declare_shop(app)
        self.app = app
        self.apps.append(app)
        return app

    def _url(self, storage: str) -> str:
        if storage == "proxy":
            if self.proxy is None:
                host, port = self.redis_url.removeprefix("redis://").split("/")[0].split(":")
                self.proxy = FaultProxy(host, int(port)).start()
            return self.proxy.url
        return self.redis_url

    def _namespace(self) -> str:
        if self.namespace is None:
            self.namespace = f"test-{uuid.uuid4().hex[:12]}"
        return self.namespace

    @property
    def the_app(self) -> AnyApp:
        assert self.app is not None, "no App yet: a Given step makes one"
        return self.app

    def new_provider(self, **options: Any) -> FeatsProvider:
        """A provider made where the App's code would make it: inside its event loop."""
        app = self.the_app
        options.setdefault("inputs", shopper_inputs)
        if isinstance(app, feats.aio.App):
            return self.loop.call(lambda: FeatsProvider(app, **options))
        return FeatsProvider(app, **options)

    def register(self, *, wait: bool = True, **options: Any) -> None:
        self.provider = self.new_provider(**options)
        self.shadow = self.new_provider(owns_app=False, record_exposures=False)
        self.client = api.get_client(self.domain)
        if wait:
            api.set_provider_and_wait(self.provider, domain=self.domain)
        else:
            api.set_provider(self.provider, domain=self.domain)

    @property
    def the_client(self) -> OpenFeatureClient:
        if self.client is None:
            self.client = api.get_client(self.domain)
        return self.client

    def write(self, feature: str, state: feats.FeatureState | None) -> str:
        app = self.the_app
        if isinstance(app, feats.App):
            version = app.admin.set_state(feature, state, author="conformance", reason="scenario")
        else:
            version = self.loop.run(
                app.admin.set_state(feature, state, author="conformance", reason="scenario")
            )
        self.versions[feature] = version
        return version

    def wait_for_version(self, version: str) -> None:
        app = self.the_app
        if isinstance(app, feats.App):
            app.wait_for_version(version, timeout=DEADLINE)
        else:
            self.loop.run(app.wait_for_version(version, timeout=DEADLINE))

    def close_app(self, app: AnyApp) -> None:
        if isinstance(app, feats.App):
            app.close()
        else:
            self.loop.run(app.aclose())

    # -- evaluating ---------------------------------------------------------------------

    def context(self) -> EvaluationContext:
        return EvaluationContext(self.targeting_key, dict(self.attributes))

    def evaluate(self, kind: str, key: str, default: Any, *, options: Any = None) -> None:
        assert kind in KINDS, kind
        client = self.the_client
        context = self.context()
        method = f"get_{kind}_details"
        if self.mode == "sync":
            details = getattr(client, method)(key, default, context, options)
        else:
            details = self.loop.run(
                getattr(client, f"{method}_async")(key, default, context, options)
            )
        self.details = details
        self.results.append((context.targeting_key, details))
        self._agree(kind, key, default, context, details)

    def _agree(
        self,
        kind: str,
        key: str,
        default: Any,
        context: EvaluationContext,
        details: FlagEvaluationDetails[Any],
    ) -> None:
        """The other resolve mode, on a second provider, answers the same."""
        if self.shadow is None or details.error_code in (
            ErrorCode.PROVIDER_NOT_READY,
            ErrorCode.PROVIDER_FATAL,
        ):
            return  # the SDK answered without asking the provider
        # The client merges API, transaction, client and invocation contexts for its provider.
        context = (
            api.get_evaluation_context()
            .merge(api.get_transaction_context())
            .merge(self.the_client.context)
            .merge(context)
        )
        method = f"resolve_{kind}_details"
        other: FlagResolutionDetails[Any]
        if self.mode == "sync":
            other = self.loop.run(getattr(self.shadow, f"{method}_async")(key, default, context))
        else:
            other = getattr(self.shadow, method)(key, default, context)
        assert (other.value, other.variant, other.reason, other.error_code) == (
            details.value,
            details.variant,
            details.reason,
            details.error_code,
        ), f"{self.mode} and the other resolve mode disagree on {key}"
        assert dict(other.flag_metadata) == dict(details.flag_metadata)

    @property
    def last(self) -> FlagEvaluationDetails[Any]:
        assert self.details is not None, "nothing evaluated yet"
        return self.details

    def close(self) -> None:
        api.shutdown()
        for app in self.apps:
            self.close_app(app)
        for client in self.clients:
            if isinstance(client, redis.asyncio.Redis):
                self.loop.run(client.aclose())  # on the loop its connections belong to
            else:
                client.close()
        if self.namespace is not None:
            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(match=f"feats:{{{self.namespace}}}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
        if self.proxy is not None:
            self.proxy.close()
        self.loop.close()


@pytest.fixture
def world(app_kind: AppKind, resolve_mode: Mode, redis_url: str) -> Iterator[World]:
    api.shutdown()
    world = World(app_kind, resolve_mode, LoopThread(), redis_url)
    yield world
    world.close()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (bounded in time) until it holds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE}s waiting for {what}")
        time.sleep(0.005)


# -- parsing the scenarios' words ------------------------------------------------------------


def selector(
    text: str, handles: Mapping[str, Any]
) -> feats.Static | feats.Rollout | feats.Experiment:
    """``static premium``, ``rollout by UserId: aperture 25, acme 75``, ``experiment by ...``."""
    kind, _, rest = text.partition(" ")
    if kind == "static":
        return feats.Static(rest.strip())
    by, _, weights_text = rest.partition(":")
    segment = by.removeprefix("by").strip()
    weights: dict[str, float] = {}
    for part in weights_text.split(","):
        name, weight = part.split()
        weights[name] = float(weight)
    if kind == "rollout":
        return feats.Rollout(handles[segment], weights)
    if kind == "experiment":
        return feats.Experiment(handles[segment], weights)
    raise AssertionError(f"unknown selector {text!r}")


def flag_value(text: str) -> Any:
    """Values and defaults are written as JSON: ``false``, ``"bye"``, ``10``, ``{}``."""
    return json.loads(text)


# -- Given: Apps and providers ---------------------------------------------------------------


@given("a feats App with the shop's features")
def a_feats_app(world: World) -> None:
    world.make_app()


@given("a feats App with the shop's features on Redis")
def a_feats_app_on_redis(world: World) -> None:
    world.make_app("redis")


@given("a feats App with the shop's features on Redis through a proxy")
def a_feats_app_through_a_proxy(world: World) -> None:
    world.make_app("proxy", start_timeout=1.0)


@given("the provider is registered and ready")
def the_provider_is_ready(world: World) -> None:
    world.register()
    assert world.the_client.get_provider_status() is ProviderStatus.READY


@given("the provider is registered")
@when("the provider is registered")
def the_provider_is_registered(world: World) -> None:
    world.register(wait=False)


@given("the provider builds no inputs")
def the_provider_builds_no_inputs(world: World) -> None:
    # A second domain, its provider without FeatsProvider(inputs=...), becomes the client.
    assert world.provider is not None
    world.domain = f"{world.domain}-no-inputs"
    world.client = None
    world.shadow = world.new_provider(owns_app=False, record_exposures=False, inputs=None)
    api.set_provider_and_wait(world.new_provider(owns_app=False, inputs=None), domain=world.domain)


@given("the provider records no exposures")
def the_provider_records_no_exposures(world: World) -> None:
    world.domain = f"{world.domain}-no-exposures"
    world.client = None
    api.set_provider_and_wait(
        world.new_provider(owns_app=False, record_exposures=False), domain=world.domain
    )


@given("Redis does not answer")
@when("Redis does not answer")
def redis_does_not_answer(world: World) -> None:
    world._url("proxy")
    assert world.proxy is not None
    world.proxy.blackhole()


@given("Redis refuses connections")
@when("Redis becomes unreachable")
def redis_becomes_unreachable(world: World) -> None:
    world._url("proxy")
    assert world.proxy is not None
    world.proxy.refuse()
    world.proxy.reset_all()


@when("Redis is reachable again")
def redis_is_reachable_again(world: World) -> None:
    assert world.proxy is not None
    world.proxy.restore()


@given("the App is an asyncio App whose provider was made outside any event loop")
def an_aio_app_outside_a_loop(world: World, app_kind: AppKind) -> None:
    if app_kind == "App":
        pytest.skip("a sync App starts on any thread: it has no irrecoverable start failure")
    world.provider = FeatsProvider(world.the_app, inputs=shopper_inputs)
    world.client = api.get_client(world.domain)


@when("the provider is set")
def the_provider_is_set(world: World) -> None:
    assert world.provider is not None
    api.set_provider(world.provider, domain=world.domain)


@when("the same provider is registered again")
def registered_again(world: World) -> None:
    assert world.provider is not None
    api.set_provider_and_wait(world.provider, domain=world.domain)


@when("the OpenFeature API shuts down")
def the_api_shuts_down(world: World) -> None:
    api.shutdown()


@when("the App's owner closes it")
def the_owner_closes_the_app(world: World) -> None:
    world.close_app(world.the_app)


@given(parsers.parse("a handler for {event} events on the client"))
@when(parsers.parse("a handler for {event} events is added on the client"))
def a_client_handler(world: World, event: str) -> None:
    kind = ProviderEvent[event]
    world.the_client.add_handler(kind, world.events.handler(kind))


@given("a hook on the client")
def a_hook_on_the_client(world: World) -> None:
    world.the_client.add_hooks([world.hook])


# -- Given: configuration and context --------------------------------------------------------


@given(parsers.parse('"{feature}" answers "{implementation}" for everyone'))
@when(parsers.parse('"{feature}" is changed to answer "{implementation}" for everyone'))
def answers_for_everyone(world: World, feature: str, implementation: str) -> None:
    world.write(feature, feats.FeatureState(rules={None: feats.Static(implementation)}))


@given(parsers.parse('"{feature}" is configured by {segments}:'))
def configured_by(world: World, feature: str, segments: str, datatable: list[list[str]]) -> None:
    """Rows of segment values and a selector; ``*`` in every value column: the fallthrough."""
    names = [name.strip() for name in segments.split(",")]
    header, *rows = datatable
    assert header[: len(names)] == names and header[-1] == "answer", header
    rules: dict[tuple[str, ...] | None, Any] = {}
    for row in rows:
        key = tuple(row[: len(names)])
        rules[None if set(key) == {"*"} else key] = selector(row[-1], world.handles)
    segment_handles = [world.handles[name] for name in names]
    world.write(feature, feats.FeatureState(segments=segment_handles, rules=rules))


@given(parsers.parse('"{feature}" splits everyone by {description}'))
def split_for_everyone(world: World, feature: str, description: str) -> None:
    world.write(feature, feats.FeatureState(rules={None: selector(description, world.handles)}))


@given(parsers.parse('another program configured "{feature}" with the implementation "{name}"'))
def configured_by_other_code(world: World, feature: str, name: str) -> None:
    """A state this code cannot follow: written without validation, as other code might."""
    app = world.the_app
    record = {
        "schema": 1,
        "feature": feature,
        "state": {
            "segments": [],
            "rules": [{"key": None, "selector": {"type": "static", "implementation": name}}],
        },
        "author": "other program",
        "reason": "",
        "time": 0,
    }
    if isinstance(app, feats.App):
        ok, version = app.storage.write(feature, json.dumps(record), None)
    else:
        ok, version = world.loop.run(app.storage.write(feature, json.dumps(record), None))
    assert ok
    world.wait_for_version(version)


@given(parsers.parse('the context\'s targeting key is "{key}"'))
def the_targeting_key(world: World, key: str) -> None:
    world.targeting_key = key


@given(parsers.parse('the context has "{name}" set to {value}'))
def a_context_attribute(world: World, name: str, value: str) -> None:
    world.attributes[name] = flag_value(value)


@given(parsers.parse('the API-level context has "{name}" set to {value}'))
def an_api_context_attribute(world: World, name: str, value: str) -> None:
    context = api.get_evaluation_context()
    api.set_evaluation_context(
        EvaluationContext(context.targeting_key, {**context.attributes, name: flag_value(value)})
    )


@given(parsers.parse('the client-level context has "{name}" set to {value}'))
def a_client_context_attribute(world: World, name: str, value: str) -> None:
    client = world.the_client
    client.context = EvaluationContext(
        client.context.targeting_key, {**client.context.attributes, name: flag_value(value)}
    )


@given("the context is empty")
def the_context_is_empty(world: World) -> None:
    world.targeting_key = None
    world.attributes.clear()


# -- When: evaluations and changes -----------------------------------------------------------


@when(parsers.parse('the {kind} flag "{key}" is evaluated with the default {default}'))
def evaluated_with_details(world: World, kind: str, key: str, default: str) -> None:
    world.evaluate(kind, key, flag_value(default))


@when(parsers.parse('the {kind} value of "{key}" is evaluated with the default {default}'))
def evaluated_value(world: World, kind: str, key: str, default: str) -> None:
    client = world.the_client
    method = f"get_{kind}_value"
    if world.mode == "sync":
        value = getattr(client, method)(key, flag_value(default), world.context())
    else:
        value = world.loop.run(
            getattr(client, f"{method}_async")(key, flag_value(default), world.context())
        )
    world.details = FlagEvaluationDetails(flag_key=key, value=value)


@when(
    parsers.parse(
        'the {kind} flag "{key}" is evaluated for targeting keys {first:d} to {last:d} '
        "with the default {default}"
    )
)
def evaluated_for_many(
    world: World, kind: str, key: str, first: int, last: int, default: str
) -> None:
    world.results.clear()
    for number in range(first, last + 1):
        world.targeting_key = str(number)
        world.evaluate(kind, key, flag_value(default))


@when(parsers.parse('another App changes "{feature}" to answer "{implementation}" for everyone'))
def another_app_changes(world: World, feature: str, implementation: str) -> None:
    assert world.namespace is not None
    writer = feats.App(
        storage=feats.RedisStorage(
            redis=redis.Redis.from_url(world.redis_url), namespace=world.namespace
        )
    )
    declare_shop(writer)
    with writer:
        version = writer.admin.set_state(
            feature,
            feats.FeatureState(rules={None: feats.Static(implementation)}),
            author="another App",
            reason="scenario",
        )
    world.versions[feature] = version
    world.wait_for_version(version)


# -- Then: evaluation details ----------------------------------------------------------------


@then(parsers.parse("the value is {value}"))
def the_value_is(world: World, value: str) -> None:
    expected = flag_value(value)
    assert world.last.value == expected
    assert type(world.last.value) is type(expected)


@then(parsers.parse('the variant is "{variant}"'))
def the_variant_is(world: World, variant: str) -> None:
    assert world.last.variant == variant


@then("there is no variant")
def there_is_no_variant(world: World) -> None:
    assert world.last.variant is None


@then(parsers.parse('the reason is "{reason}"'))
def the_reason_is(world: World, reason: str) -> None:
    assert world.last.reason == Reason[reason]


@then(parsers.parse('the error code is "{code}"'))
def the_error_code_is(world: World, code: str) -> None:
    assert world.last.error_code == ErrorCode[code]
    assert world.last.reason == Reason.ERROR


@then("no error is reported")
def no_error(world: World) -> None:
    assert world.last.error_code is None
    assert world.last.error_message is None


@then(parsers.parse('the error message mentions "{text}"'))
def the_error_message_mentions(world: World, text: str) -> None:
    assert world.last.error_message is not None and text in world.last.error_message


@then(parsers.parse('the flag key is "{key}"'))
def the_flag_key_is(world: World, key: str) -> None:
    assert world.last.flag_key == key


@then(parsers.parse('the flag metadata holds the version of "{feature}"'))
def metadata_holds_the_version(world: World, feature: str) -> None:
    assert world.last.flag_metadata["version"] == world.versions[feature]


@then("the flag metadata holds no version")
def metadata_holds_no_version(world: World) -> None:
    assert "version" not in world.last.flag_metadata


@then(parsers.parse('the flag metadata explains "{text}"'))
def metadata_explains(world: World, text: str) -> None:
    explanation = world.last.flag_metadata["explanation"]
    assert isinstance(explanation, str) and text in explanation, explanation


@then("the flag metadata is empty")
def metadata_is_empty(world: World) -> None:
    assert dict(world.last.flag_metadata) == {}


@then("the flag metadata cannot be changed")
def metadata_is_immutable(world: World) -> None:
    metadata: Any = world.last.flag_metadata
    with pytest.raises(TypeError):
        metadata["version"] = "tampered"


@then(parsers.parse('every result has the reason "{reason}" and no error'))
def every_result(world: World, reason: str) -> None:
    assert world.results
    for _, details in world.results:
        assert details.reason == Reason[reason] and details.error_code is None, details


@then(parsers.parse('every variant is what feats gives the same shoppers in "{country}"'))
def variants_match_feats(world: World, country: str) -> None:
    handle = world.handles[world.last.flag_key]
    assert world.results
    for key, details in world.results:
        assert key is not None
        assert details.variant == handle.find_implementation(Shopper(int(key), country))


@then(parsers.parse('the variants split about {share:d}% "{name}" and the rest "{other}"'))
def variants_split(world: World, share: int, name: str, other: str) -> None:
    variants = [details.variant for _, details in world.results]
    assert set(variants) <= {name, other}
    measured = 100 * variants.count(name) / len(variants)
    assert abs(measured - share) < 10, measured


# -- Then: exposures -------------------------------------------------------------------------


def _exposures(world: World, feature: str, count: int = 0) -> feats.ExposureReport:
    """The stored report, once ``count`` exposures are written and none is buffered."""
    app = world.the_app

    def flushed() -> bool:
        status = app.status
        return status.exposures_written >= count and status.exposures_buffered == 0

    wait_for(flushed, f"{count} exposures to be written")
    if isinstance(app, feats.App):
        return app.admin.exposures(feature)
    return world.loop.run(app.admin.exposures(feature))


@then(
    parsers.parse('the App has recorded {count:d} exposures of "{feature}", one per variant served')
)
def recorded_exposures(world: World, count: int, feature: str) -> None:
    report = _exposures(world, feature, count)
    assert report.total == count
    served: dict[str, int] = {}
    for _, details in world.results:
        assert details.variant is not None
        served[details.variant] = served.get(details.variant, 0) + 1
    assert {row.implementation: row.exposures for row in report.implementations} == served


@then(parsers.parse('the App has recorded no exposure of "{feature}"'))
def recorded_no_exposure(world: World, feature: str) -> None:
    assert _exposures(world, feature).total == 0
    assert world.the_app.status.exposures_written == 0


# -- Then: status, events, hooks -------------------------------------------------------------


@then(parsers.parse('the client\'s provider status becomes "{status}"'))
def provider_status_becomes(world: World, status: str) -> None:
    wanted = ProviderStatus[status]
    wait_for(lambda: world.the_client.get_provider_status() is wanted, f"status {status}")


@then(parsers.parse('the client\'s provider status is "{status}"'))
def provider_status_is(world: World, status: str) -> None:
    assert world.the_client.get_provider_status() is ProviderStatus[status]


@then(parsers.parse("the {event} handler runs"))
def the_handler_runs(world: World, event: str) -> None:
    world.events.wait(ProviderEvent[event])


@then(parsers.parse("the {event} handler runs with the provider's name"))
def the_handler_runs_with_the_name(world: World, event: str) -> None:
    details = world.events.wait(ProviderEvent[event])[-1]
    assert details.provider_name == "feats"


@then(parsers.parse("the {event} handler runs with an error message"))
def the_handler_runs_with_a_message(world: World, event: str) -> None:
    details = world.events.wait(ProviderEvent[event])[-1]
    assert details.message


@then(parsers.parse('the {event} handler runs for "{feature}" at its new version'))
def the_handler_runs_for(world: World, event: str, feature: str) -> None:
    version = world.versions[feature]

    def announced() -> bool:
        return any(
            details.flags_changed == [feature] and details.metadata.get("version") == version
            for details in world.events.of(ProviderEvent[event])
        )

    wait_for(announced, f"{event} for {feature} at {version}")


@then(parsers.parse("no {event} handler has run"))
def no_handler_has_run(world: World, event: str) -> None:
    assert world.events.of(ProviderEvent[event]) == []


@then("the App is closed")
def the_app_is_closed(world: World) -> None:
    wait_for(lambda: world.the_app.status.closed, "the App to close")


@then("the App is live")
def the_app_is_live(world: World) -> None:
    assert world.the_app.status.live


@then(parsers.parse('the hook stages ran in the order "{stages}"'))
def hook_stages(world: World, stages: str) -> None:
    assert world.hook.stages == [stage.strip() for stage in stages.split(",")]


@then(
    parsers.parse(
        'the after and finally hooks saw the variant "{variant}" and the reason "{reason}"'
    )
)
def hooks_saw(world: World, variant: str, reason: str) -> None:
    for stage in ("after", "finally"):
        details = world.hook.details[stage]
        assert (details.variant, details.reason) == (variant, Reason[reason]), stage


@then(parsers.parse('the finally hook saw the error code "{code}"'))
def finally_hook_saw_error(world: World, code: str) -> None:
    assert world.hook.details["finally"].error_code == ErrorCode[code]
