"""Telemetry: what evaluation costs with feats' evaluation listeners on, against off.

Scenario (b) (Canada static, a three-way rollout elsewhere), sync ``create`` on Apps that
differ only in what listens: nothing; a no-op evaluation listener (the price of the
``explain()`` every listener gets); OpenTelemetry ``feature_flag.evaluation`` events with no
SDK installed, and through the OpenTelemetry SDK to an exporter that only counts; the
Prometheus collector's evaluation counts; and an App whose listener was added and removed
again (the hot path must be back to the first row's cost). Then the same through
OpenFeature: ``get_string_value`` on FeatsProvider, without and with the OpenTelemetry hook.

Each subject has its own App (a listener sees every evaluation of its App), and the users
go in slices timed for every subject in turn, as in the evaluation section, so machine noise
lands on all of them alike. Events emitted are counted and must equal the evaluations.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import feats
from benchmarks._measure import gc_paused, loop_overhead_ns, time_sync_ns
from benchmarks._progress import Section
from benchmarks._results import Failure, Results, TelemetryRow
from benchmarks._scenarios import declare, scenario_states
from benchmarks._settings import Settings
from benchmarks._users import User, make_users

__all__ = ["run_telemetry", "telemetry_steps"]

CHUNK = 250
SCENARIO = "b"


def telemetry_steps(settings: Settings) -> int:
    return settings.repeat + 1


@dataclass
class _Subject:
    name: str
    note: str
    fn: Callable[[User], Any]
    events: Callable[[], int] | None = None
    runs: list[float] = field(default_factory=list)
    calls: int = 0


def _app() -> tuple[feats.App, Any]:
    app = feats.App(storage=feats.MemoryStorage())
    handles = declare(app)
    app.start()
    feature = handles.features[SCENARIO]
    app.admin.set_state(feature, scenario_states(handles)[SCENARIO], author="bench", reason="x")
    return app, feature


def _otel_sdk() -> tuple[Any, Callable[[], int]]:
    """An SDK logger provider exporting synchronously to an exporter that only counts."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        LogRecordExporter,
        LogRecordExportResult,
        SimpleLogRecordProcessor,
    )

    class Counting(LogRecordExporter):
        def __init__(self) -> None:
            self.count = 0

        def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
            self.count += len(batch)
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

    exporter = Counting()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, lambda: exporter.count


def _feats_subjects(apps: list[feats.App]) -> list[_Subject]:
    from opentelemetry._logs import NoOpLoggerProvider

    from feats.contrib.opentelemetry import EvaluationEvents
    from feats.contrib.prometheus import FeatsCollector

    subjects = []
    app, feature = _app()
    apps.append(app)
    subjects.append(_Subject("off", "no listener: the plain hot path", feature.create))

    app, feature = _app()
    apps.append(app)
    calls = [0]

    def noop(evaluation: feats.Evaluation) -> None:
        calls[0] += 1

    app.add_evaluation_listener(noop)
    subjects.append(
        _Subject(
            "a no-op evaluation listener",
            "the explain() every listener is given",
            feature.create,
            lambda: calls[0],
        )
    )

    app, feature = _app()
    apps.append(app)
    app.add_evaluation_listener(EvaluationEvents(logger_provider=NoOpLoggerProvider()))
    subjects.append(
        _Subject(
            "OpenTelemetry events, no SDK",
            "EvaluationEvents to the API's no-op logger: attributes and a LogRecord",
            feature.create,
        )
    )

    app, feature = _app()
    apps.append(app)
    provider, count = _otel_sdk()
    app.add_evaluation_listener(EvaluationEvents(logger_provider=provider))
    subjects.append(
        _Subject(
            "OpenTelemetry events, SDK",
            "EvaluationEvents through the SDK's LoggerProvider, exported synchronously to "
            "an exporter that counts",
            feature.create,
            count,
        )
    )

    app, feature = _app()
    apps.append(app)
    collector = FeatsCollector(app, evaluations=True)

    def counted() -> int:
        return sum(collector.evaluation_counts().values())

    subjects.append(
        _Subject(
            "Prometheus evaluation counts",
            "FeatsCollector(evaluations=True): a locked dict increment per evaluation",
            feature.create,
            counted,
        )
    )

    app, feature = _app()
    apps.append(app)
    app.add_evaluation_listener(noop)
    app.remove_evaluation_listener(noop)
    subjects.append(
        _Subject(
            "off again", "a listener added, then removed: the hot path as before", feature.create
        )
    )
    return subjects


def _openfeature_subjects(apps: list[feats.App], users: Sequence[User]) -> list[_Subject]:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext

    from feats.contrib.opentelemetry import openfeature_hook
    from feats.openfeature import FeatsProvider

    contexts = {
        user.id: EvaluationContext(str(user.id), {"Country": user.country}) for user in users
    }
    subjects = []
    for name, hooked in (
        ("OpenFeature, no hook", False),
        ("OpenFeature, OpenTelemetry hook", True),
    ):
        app, feature = _app()
        apps.append(app)
        domain = f"bench-telemetry-{len(apps)}"
        api.set_provider_and_wait(
            FeatsProvider(app, owns_app=False, record_exposures=False), domain=domain
        )
        client = api.get_client(domain)
        count = None
        if hooked:
            provider, count = _otel_sdk()
            client.add_hooks([openfeature_hook(logger_provider=provider)])

        def evaluate(user: User, client: Any = client, key: str = feature.name) -> str:
            value: str = client.get_string_value(key, "none", contexts[user.id])
            return value

        note = "get_string_value on FeatsProvider"
        if hooked:
            note += ", its hook exporting to a counting exporter through the SDK"
        subjects.append(_Subject(name, note, evaluate, count))
    return subjects


def _round(subjects: Sequence[_Subject], users: Sequence[User]) -> None:
    totals = [0] * len(subjects)
    chunks = [users[start : start + CHUNK] for start in range(0, len(users), CHUNK)]
    with gc_paused():
        for number, chunk in enumerate(chunks):
            for offset in range(len(subjects)):
                index = (number + offset) % len(subjects)
                totals[index] += time_sync_ns(subjects[index].fn, chunk)
    for subject, total in zip(subjects, totals, strict=True):
        subject.runs.append(total / len(users))
        subject.calls += len(users)


def run_telemetry(settings: Settings, url: str | None, section: Section, results: Results) -> None:
    """Evaluation cost with each telemetry listener on; the App's storage plays no part."""
    users = make_users(settings.users)
    overhead = loop_overhead_ns(users, max(settings.repeat, 5))
    apps: list[feats.App] = []
    subjects: list[_Subject] = []
    try:
        try:
            subjects += _feats_subjects(apps)
        except ImportError as error:
            results.failures.append(Failure("telemetry", "feats.contrib", str(error)))
        try:
            subjects += _openfeature_subjects(apps, users)
        except ImportError as error:
            results.failures.append(Failure("telemetry", "OpenFeature", str(error)))
        answers = {subject.name: [subject.fn(user) for user in users] for subject in subjects}
        for subject in subjects:
            subject.calls = len(users)
        section.advance("answers")
        for round_ in range(settings.repeat):
            _round(subjects, users)
            section.advance(f"round {round_ + 1} of {settings.repeat}")
    finally:
        from openfeature import api

        api.shutdown()
        for app in apps:
            app.close()
    expected = answers.get("off")
    for subject in subjects:
        problems = []
        if expected is not None and [str(a) for a in answers[subject.name]] != [
            str(a) for a in expected
        ]:
            problems.append("answers differ from the App without listeners")
        events = subject.events() if subject.events is not None else None
        if events is not None and events != subject.calls:
            problems.append(f"{events:,} events for {subject.calls:,} evaluations")
        net = sorted(max(run - overhead, 0.0) for run in subject.runs)
        results.telemetry.append(
            TelemetryRow(
                subject=subject.name,
                note=subject.note,
                ns=round(statistics.median(net), 1) if net else 0.0,
                runs=[round(run, 1) for run in net],
                evaluations=subject.calls,
                events=events,
                problems=problems,
            )
        )
    section.done()
