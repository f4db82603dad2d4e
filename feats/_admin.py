# Generated from feats/aio/_admin.py by scripts/unasync.py: edit that file, then run the script.
"""The sync admin: reading and changing configuration, with history, diffs and rollback.

Every decision lives in the sans-IO modules (_changes, _verbs, _diff, _catalog,
_exposures); this class only does the reads and writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ._backup import (
    ImportResult,
    export_document,
    is_empty,
    parse_backup,
    restore_items,
    write_plan,
)
from ._catalog import Catalog, Drift, catalog_fields, encode_entry, find_drift, merge_registries
from ._changes import (
    MAX_WRITE_ATTEMPTS,
    FeatureRef,
    decode_current,
    feature_name,
    find_change,
    history_changes,
    new_record,
    write_expectation,
)
from ._codec import Record
from ._declarations import Registry
from ._diff import DiffLine, diff_states
from ._errors import ConflictError, FeatsError
from ._exposures import EXPOSURE_PAGE, ExposureCounter, ExposureReport, exposures_start
from ._snapshot import Evaluation, explain_values
from ._state import Change, FeatureState, unserved
from ._storage import Storage
from ._stored import Problem
from ._verbs import (
    ChangeFeed,
    Edit,
    HistoryEntry,
    Plan,
    RemoveRule,
    Replace,
    Reset,
    Rollback,
    Route,
    SetRollout,
    StartExperiment,
    StopExperiment,
    configured_changes,
    current_states,
    history_entries,
    make_plan,
    registry_for,
    resolve_values,
    version_of,
    where_of,
)

__all__ = ["Admin", "Applied", "Known"]

Applied = Callable[[str, str, Record, str], None]
"""``applied(feature, version, record, text)``: an App's hook, told of each write it made."""

Known = Callable[[str], "tuple[str | None, Record | None] | None"]
"""``known(feature)``: the version and record an App holds for ``feature`` as the store had
them ((None, None): never configured), or None when it cannot say. A write may plan on it
instead of reading first: its compare-and-set finds out if the store has moved on."""


class Admin:
    """Read and change configuration: every change is a new version with author and reason.

    Changes are validated against the App's declarations, or, for features this process
    does not declare (the CLI without --app), against the catalog other Apps published.
    """

    def __init__(
        self,
        storage: Storage,
        registry: Registry,
        *,
        applied: Applied | None = None,
        known: Known | None = None,
    ) -> None:
        """``registry``: the declarations changes are validated against first (the App's
        own); ``applied``: told of every write, so the App serves it at once; ``known``:
        what the App holds, which a change plans on to save the read before its write."""
        self._storage = storage
        self._registry = registry
        self._applied = applied
        self._known = known

    # -- reading -----------------------------------------------------------------------

    def get_state(self, feature: FeatureRef) -> FeatureState | None:
        """The current stored state, read from storage (not the snapshot)."""
        record = decode_current(self._storage.current(feature_name(feature)))[1]
        return None if record is None else record.state

    def get_version(self, feature: FeatureRef) -> str | None:
        return decode_current(self._storage.current(feature_name(feature)))[0]

    def head(self) -> str:
        """The newest version in the namespace ("0-0" before the first change): where a
        watch that must miss nothing starts, or resumes after an error."""
        return (self._storage.epoch_and_head())[1]

    def history(self, feature: FeatureRef) -> list[Change]:
        """Every stored version of ``feature``, oldest first."""
        name = feature_name(feature)
        return history_changes(self._storage.history(name))

    def history_entries(self, feature: FeatureRef) -> list[HistoryEntry]:
        """The history, oldest first, each change with its diff from the one before."""
        return history_entries(self.history(feature))

    def diff(
        self, feature: FeatureRef, before: str | None, after: str | None = None
    ) -> list[DiffLine]:
        """What changed between two versions (None or "": unconfigured; after=None: now)."""
        name = feature_name(feature)
        changes = self.history(name)
        old = version_of(name, changes, before)
        new = self.get_state(name) if after is None else version_of(name, changes, after)
        return diff_states(old, new)

    def configurations(self) -> dict[str, Change]:
        """The current change of every configured feature, read in one round trip."""
        return configured_changes(self._storage.load())

    def catalog(self) -> Catalog:
        """What every App of this namespace published about its declarations."""
        return Catalog.from_raw(self._storage.read_catalog())

    def declarations(self) -> Registry:
        """This App's declarations, plus what only the catalog knows."""
        return merge_registries(self._registry, (self.catalog()).registry())

    def publish_catalog(self) -> str:
        """Publish this App's declarations now (start does it too); returns the identity."""
        identity, document = encode_entry(self._registry)
        self._storage.publish_catalog(catalog_fields(identity, document))
        return identity

    def drift(self) -> list[Drift]:
        """Configured but undeclared, declared but unconfigured, rules no App can serve."""
        registry = self.declarations()
        configured = {name: change.state for name, change in (self.configurations()).items()}
        return find_drift(registry, configured)

    def explain(self, feature: FeatureRef, values: Mapping[str, str]) -> Evaluation:
        """Which implementation users with these segment values get, and why."""
        name = feature_name(feature)
        version, record = decode_current(self._storage.current(name))
        own = self._registry
        registry = own if name in own.features else self.declarations()
        declaration = registry.features.get(name)
        state = None if record is None else record.state
        broken, drift = unserved(name, state, registry)
        return explain_values(
            name,
            declaration.default if declaration is not None else "default",
            state,
            version,
            resolve_values(values, registry),
            broken=broken,
            drift=drift.get,
        )

    def exposures(
        self, feature: FeatureRef, *, by_value: bool = False, since: str | None = None
    ) -> ExposureReport:
        """Exposure counts of an experiment, read page by page in bounded memory."""
        counter = ExposureCounter(feature_name(feature), by_value=by_value, since=since)
        after = exposures_start(since)
        while True:
            entries = self._storage.read_exposures(after, EXPOSURE_PAGE)
            counter.add_entries(entries)
            if len(entries) < EXPOSURE_PAGE:
                return counter.report()
            after = entries[-1].id

    def watch(
        self,
        features: Iterable[Any] = (),
        *,
        after: str | None = None,
        timeout: float | None = None,
        block_ms: int = 1_000,
        on_skipped: Callable[[Problem], None] | None = None,
    ) -> Iterator[HistoryEntry]:
        """Every change as it is written, with its diff from the version before it.

        From ``after`` (default: now) on, only ``features`` if any are given, for
        ``timeout`` seconds if given (else until the caller stops iterating). Entries
        that cannot be read are passed to ``on_skipped`` instead.
        """
        storage = self._storage
        names = [feature_name(feature) for feature in features]
        if after is None:
            loaded = storage.load()
            position = loaded.head
            feed = ChangeFeed(names, current_states(loaded))
        else:
            position = after
            feed = ChangeFeed(names)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_ms = block_ms
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait_ms = max(1, min(wait_ms, int(left * 1000)))
            for entry in storage.read(position, wait_ms):
                position = entry.id
                feature = entry.text("feature")
                if feed.needs_baseline(feature):
                    changes = history_changes(storage.history(feature))
                    feed.baseline(feature, changes, entry.id)
                item = feed.feed(entry)
                if isinstance(item, Problem):
                    if on_skipped is not None:
                        on_skipped(item)
                elif item is not None:
                    yield item

    # -- changing ----------------------------------------------------------------------

    def _plan(
        self, name: str, edit: Edit, *, held: tuple[str | None, Record | None] | None = None
    ) -> Plan:
        """The plan of ``edit`` on the stored version and record, read from storage unless
        ``held`` (what the App holds) stands in for them."""
        if held is None:
            held = decode_current(self._storage.current(name), overwriting=True)
        version, previous = held
        own = self._registry
        registry: Registry | None = own
        if name not in own.features:
            registry = registry_for(name, edit, own, self.catalog(), configured=version is not None)
        state = None if previous is None else previous.state
        unreadable = version is not None and previous is None
        return make_plan(name, edit, version, state, registry, unreadable=unreadable)

    def _plan_on_held(self, name: str, edit: Edit, expected_version: str | None) -> Plan | None:
        """A plan on what the App holds, when it has something to say and the plan is one
        a compare-and-set checks: a write. None: plan on what storage holds."""
        held = None if self._known is None else self._known(name)
        if held is None:
            return None
        try:
            plan = self._plan(name, edit, held=held)
        except FeatsError:
            return None  # perhaps only because the App is behind: storage has the last word
        behind = expected_version is not None and expected_version != (plan.version or "")
        # Nothing to change, as far as the App knows: only storage can say so.
        return None if behind or not plan.changed else plan

    def preview(self, feature: FeatureRef, edit: Edit) -> Plan:
        """What ``edit`` would change, validated, without writing anything."""
        return self._plan(feature_name(feature), edit)

    def change(
        self,
        feature: FeatureRef,
        edit: Edit,
        *,
        author: str,
        reason: str,
        expected_version: str | None = None,
    ) -> str:
        """Apply ``edit`` to the current state and write the result; returns its version.

        With ``expected_version`` the write only happens if the feature is still at that
        version ("" for never configured), else ConflictError. An edit that changes nothing
        writes nothing and returns the current version ("" for never configured).
        """
        name = feature_name(feature)
        written = ""
        planned = self._plan_on_held(name, edit, expected_version)
        for _ in range(MAX_WRITE_ATTEMPTS):
            on_held = planned is not None
            plan = planned or self._plan(name, edit)
            planned = None
            if expected_version is not None and expected_version != (plan.version or ""):
                raise ConflictError(name, expected_version, plan.version)
            if not plan.changed:
                return plan.version or ""
            record, encoded = new_record(name, plan.after, author=author, reason=reason)
            ok, written = self._storage.write(name, encoded, write_expectation(plan.version))
            if ok:
                if self._applied is not None:
                    self._applied(name, written, record, encoded)
                return written
            if expected_version is not None and not on_held:
                raise ConflictError(name, expected_version, written or None)
        raise ConflictError(name, None, written or None)

    def set_state(
        self,
        feature: FeatureRef,
        state: FeatureState | None,
        *,
        author: str,
        reason: str,
        expected_version: str | None = None,
    ) -> str:
        """Write a new state (None resets to the default); returns its version.

        The same state as now writes nothing (as ``feats set`` says "Nothing to change"):
        the current version is returned.
        """
        if state is not None and not isinstance(state, FeatureState):
            raise TypeError(f"expected a FeatureState or None, got {state!r}")
        return self.change(
            feature,
            Replace(state),
            author=author,
            reason=reason,
            expected_version=expected_version,
        )

    def rollback(
        self,
        feature: FeatureRef,
        version: str,
        *,
        author: str,
        reason: str,
        expected_version: str | None = None,
    ) -> str:
        """Write a new version whose state equals the one at ``version``."""
        name = feature_name(feature)
        target = find_change(name, self.history(name), version)
        return self.change(
            name,
            Rollback(target.state, target.version),
            author=author,
            reason=reason,
            expected_version=expected_version,
        )

    def route(
        self,
        feature: FeatureRef,
        implementation: str,
        *,
        where: Mapping[Any, str] | None = None,
        author: str,
        reason: str,
        expected_version: str | None = None,
        resegment: bool = False,
    ) -> str:
        """Route users whose segments have the ``where`` values to ``implementation``."""
        edit = Route(implementation, where_of(where), resegment)
        return self.change(
            feature, edit, author=author, reason=reason, expected_version=expected_version
        )

    def set_fallthrough(
        self,
        feature: FeatureRef,
        implementation: str,
        *,
        author: str,
        reason: str,
        expected_version: str | None = None,
    ) -> str:
        """Route everyone no other rule matches to ``implementation``."""
        return self.change(
            feature,
            Route(implementation),
            author=author,
            reason=reason,
            expected_version=expected_version,
        )

    def rollout(
        self,
        feature: FeatureRef,
        segment: Any,
        weights: Mapping[str, float],
        *,
        where: Mapping[Any, str] | None = None,
        author: str,
        reason: str,
        expected_version: str | None = None,
        resegment: bool = False,
    ) -> str:
        """Start or change a rollout by ``segment``; changing weights moves the fewest users."""
        edit = SetRollout(segment, weights, where_of(where), resegment)
        return self.change(
            feature, edit, author=author, reason=reason, expected_version=expected_version
        )

    def start_experiment(
        self,
        feature: FeatureRef,
        segment: Any,
        weights: Mapping[str, float],
        *,
        where: Mapping[Any, str] | None = None,
        author: str,
        reason: str,
        expected_version: str | None = None,
        resegment: bool = False,
    ) -> str:
        """Start (or re-weight) an experiment by ``segment``; every use records an exposure."""
        edit = StartExperiment(segment, weights, where_of(where), resegment)
        return self.change(
            feature, edit, author=author, reason=reason, expected_version=expected_version
        )

    def stop_experiment(
        self,
        feature: FeatureRef,
        *,
        where: Mapping[Any, str] | None = None,
        winner: str | None = None,
        author: str,
        reason: str,
        expected_version: str | None = None,
    ) -> str:
        """End an experiment: its users get ``winner``, or its rule is removed."""
        edit = StopExperiment(where_of(where), winner)
        return self.change(
            feature, edit, author=author, reason=reason, expected_version=expected_version
        )

    def remove_rule(
        self,
        feature: FeatureRef,
        *,
        where: Mapping[Any, str] | None = None,
        author: str,
        reason: str,
        expected_version: str | None = None,
    ) -> str:
        """Remove the rule for the ``where`` values (none: the fallthrough)."""
        return self.change(
            feature,
            RemoveRule(where_of(where)),
            author=author,
            reason=reason,
            expected_version=expected_version,
        )

    def reset(
        self,
        feature: FeatureRef,
        *,
        author: str,
        reason: str,
        expected_version: str | None = None,
    ) -> str:
        """Back to the default implementation everywhere (a new version, history kept)."""
        return self.change(
            feature, Reset(), author=author, reason=reason, expected_version=expected_version
        )

    # -- backups -----------------------------------------------------------------------

    def export_backup(self, *, history: bool = True) -> dict[str, Any]:
        """Every feature's current record and version (and history): ``feats export``."""
        storage = self._storage
        loaded = storage.load()
        histories = None
        if history:
            histories = {name: storage.history(name) for name in loaded.records}
        return export_document(storage.namespace, loaded, histories)

    def import_backup(
        self, document: Mapping[str, Any] | str | bytes, *, author: str, reason: str
    ) -> ImportResult:
        """Restore a backup (``feats import``).

        An empty store gets it back exactly, versions and history included, atomically;
        a configured one gets a new attributed version of every feature whose state
        differs (ConflictError if one changes meanwhile: import again).
        """
        backup = parse_backup(document)
        loaded = self._storage.load()
        if is_empty(loaded):
            items, histories = restore_items(backup)
            written = self._storage.reseed(items, None, histories)
            if written is not None:
                return ImportResult(
                    mode="restored",
                    features=tuple(item[0] for item in items),
                    versions={item[0]: item[1] for item in items},
                )
            loaded = self._storage.load()  # an App re-seeded it first: write the differences
        writes, unchanged = write_plan(backup, loaded, author=author, reason=reason)
        versions = {name: loaded.records[name][0] for name in unchanged}
        for planned in writes:
            feature, encoded, expected = planned.feature, planned.encoded, planned.expected
            ok, version = self._storage.write(feature, encoded, write_expectation(expected))
            if not ok:
                raise ConflictError(feature, expected or None, version or None)
            if self._applied is not None:
                self._applied(feature, version, planned.record, encoded)
            versions[feature] = version
        return ImportResult(
            mode="written",
            features=tuple(planned.feature for planned in writes),
            unchanged=tuple(unchanged),
            versions=versions,
        )
