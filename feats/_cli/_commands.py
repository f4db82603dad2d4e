"""The ``feats`` command: list, show, change, explain, watch and demo features from a shell."""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import redis
from rich.text import Text

from .. import __version__
from .._backup import parse_backup
from .._catalog import Drift
from .._changes import history_changes
from .._diff import diff_states
from .._errors import (
    CodecError,
    ConfigurationError,
    ConflictError,
    FeatsError,
    NotFoundError,
    StorageError,
)
from .._stored import Problem
from .._verbs import (
    Edit,
    Plan,
    RemoveRule,
    Reset,
    Rollback,
    Route,
    SetRollout,
    StartExperiment,
    StopExperiment,
    history_entries,
    unreadable_history,
    version_of,
    where_of,
)
from . import _render as render
from ._context import (
    CliError,
    Exit,
    Session,
    Settings,
    console,
    storage_error,
)
from ._parsing import parse_pairs, parse_weights
from ._redact import redact, scrub

__all__ = ["INTERNAL_ERROR", "REPOSITORY", "cli", "main"]

INTERNAL_ERROR = 70
"""What feats exits with on a bug of its own (EX_SOFTWARE): not one of the Exit codes."""
REPOSITORY = "https://github.com/feats-dev/feats"
"""Where the source lives (a placeholder until the project is published)."""

F = TypeVar("F", bound=Callable[..., Any])


# -- options shared by every command ---------------------------------------------------


def _setting(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value is not False:
            setattr(ctx.ensure_object(Settings), name, value)
        return value

    return store


def common(function: F) -> F:
    """--redis, --namespace, --app and --json, on the group and on every command."""
    options = [
        click.option(
            "--redis",
            "redis_url",
            metavar="URL",
            expose_value=False,
            callback=_setting("redis_url"),
            help="Redis URL (default: $FEATS_REDIS_URL, else redis://localhost:6379/0).",
        ),
        click.option(
            "--namespace",
            "-n",
            metavar="NAME",
            expose_value=False,
            callback=_setting("namespace"),
            help="Namespace, one per environment (default: $FEATS_NAMESPACE, else 'default').",
        ),
        click.option(
            "--app",
            "app_path",
            metavar="MODULE:ATTR",
            expose_value=False,
            callback=_setting("app_path"),
            help="Import this App's declarations instead of using the published catalog.",
        ),
        click.option(
            "--json",
            "json_output",
            is_flag=True,
            expose_value=False,
            callback=_setting("json"),
            help="Print JSON for scripts instead of tables.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def changing(function: F) -> F:
    """--author, --reason, --yes and --expect-version, on every command that writes."""
    options = [
        click.option("--author", metavar="NAME", help="Who changes it (default: your OS user)."),
        click.option("--reason", metavar="TEXT", help="Why, for the history."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
        click.option(
            "--expect-version",
            metavar="VERSION",
            help="Only write if the feature is still at this version ('' = never configured).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def settings() -> Settings:
    return click.get_current_context().ensure_object(Settings)


def _fail(error: CliError, *, code: int | None = None) -> None:
    current = settings()
    # Whatever the message quotes (a URL, a redis-py error), no password is shown.
    message = scrub(str(error), current.url)
    hints = [scrub(hint, current.url) for hint in error.hints]
    err = console(stderr=True)
    err.print(Text("error: ", style="bold red") + Text(message))
    for hint in hints:
        err.print(Text("  " + hint, style="dim"))
    if current.json:
        render.emit_json({"error": error.kind, "message": message, "hints": hints})
    raise SystemExit(int(error.code) if code is None else code)


def handled(function: F) -> F:
    """Turn every expected failure into one clear message and a meaningful exit code."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except CliError as error:
            _fail(error)
        except click.Abort:
            _fail(CliError("cancelled: nothing was changed", Exit.DECLINED, kind="declined"))
        except NotFoundError as error:
            _fail(CliError(str(error), Exit.NOT_FOUND))
        except ConflictError as error:
            _fail(CliError(str(error), Exit.CONFLICT))
        except CodecError as error:
            _fail(CliError(f"unreadable data in Redis: {error}", Exit.ERROR, kind="codec"))
        except ConfigurationError as error:
            _fail(CliError(str(error), Exit.INVALID))
        except (StorageError, redis.RedisError) as error:
            _fail(storage_error(error, settings().url))
        except FeatsError as error:
            _fail(CliError(str(error), Exit.ERROR))
        except Exception as error:
            # A bug, not bad input: one line instead of a traceback, and an exit code
            # outside Exit so that scripts and tests can tell it from an expected failure.
            if os.environ.get("FEATS_DEBUG"):
                raise
            _fail(
                CliError(
                    f"internal error: {type(error).__name__}: {error}",
                    Exit.ERROR,
                    "this is a bug in feats: please report it (FEATS_DEBUG=1 shows where)",
                    kind="internal",
                ),
                code=INTERNAL_ERROR,
            )
        return None

    return cast(F, wrapper)


def render_json(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


@contextmanager
def session() -> Iterator[Session]:
    opened = Session(settings())
    try:
        yield opened
    finally:
        opened.close()


def out() -> Any:
    return console()


# -- the group -------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="feats")
@common
def cli() -> None:
    """Operate feats features: list, show, change, explain, watch, and the live demo.

    Works with only the Redis URL: declarations come from the catalog every App publishes
    when it starts (or from --app module:attr). Every change is a new version with an
    author and a reason; `feats history` shows who, when, why and the diff.

    \b
    Exit codes: 0 ok, 1 error, 2 usage, 3 unknown name or version, 4 invalid change,
    5 conflict with a concurrent change, 6 Redis unreachable, 7 cancelled, 8 drift found
    (70: a bug in feats, please report it).
    """


# -- reading ---------------------------------------------------------------------------


@cli.command("list")
@common
@handled
def list_features() -> None:
    """Every feature: declared (by any App) or configured, with its current configuration."""
    with session() as current:
        registry, configured = current.declarations, current.configurations
        unreadable = current.unreadable
        versions = {name: version for name, (version, _) in current.loaded.records.items()}
        if not registry.features and not configured and not unreadable:
            current.note_if_empty()
        if settings().json:
            render.emit_json(render.features_data(registry, configured, unreadable, versions))
            return
        if not registry.features and not configured and not unreadable:
            out().print(
                f"No features in namespace {current.namespace!r}: no App has published its "
                "catalog here and nothing is configured."
            )
            return
        out().print(
            render.features_table(registry, configured, current.namespace, unreadable, versions)
        )
        _warn_unreadable(current)


@cli.command()
@click.argument("feature")
@common
@handled
def show(feature: str) -> None:
    """A feature's declaration (implementations, docs, segments) and current rules."""
    with session() as current:
        name = current.feature(feature)
        registry = current.declarations
        declaration = registry.features.get(name)
        change = current.configurations.get(name)
        problem = current.unreadable.get(name)
        if settings().json:
            info = current.catalog.features.get(name)
            data = render.show_data(name, declaration, info, registry, change)
            if problem is not None:
                data["unreadable"] = {
                    "version": current.version_of(name),
                    "error": problem.message,
                }
            render.emit_json(data)
            return
        console_ = out()
        if declaration is None:
            console_.print(Text(f"{name} is configured but no App declares it.", style="red"))
        else:
            console_.print(render.declaration_table(name, declaration, registry))
        console_.print(
            render.rules_table(
                name,
                None if change is None else change.state,
                None if declaration is None else declaration.default,
            )
        )
        if problem is not None:
            console_.print(
                Text(
                    f"Version {current.version_of(name)} cannot be read: {problem.message}.",
                    style="red",
                )
            )
            console_.print(_UNREADABLE_EFFECT.format(feature=name))
        elif change is None:
            console_.print("Never configured: the default answers everywhere.")
        else:
            console_.print(
                f"Version {change.version} by {change.author}, "
                f"{render.format_time(change.time)}: {change.reason}"
            )


@cli.command()
@click.argument("feature")
@click.option("--limit", type=int, default=None, help="Only the last N changes.")
@common
@handled
def history(feature: str, limit: int | None) -> None:
    """Every change of FEATURE, oldest first: version, when, who, why and the diff."""
    with session() as current:
        name = current.feature(feature)
        stored = current.storage.history(name)
        entries = history_entries(history_changes(stored))
        for problem in unreadable_history(name, stored):
            console(stderr=True).print(
                Text(f"skipped {problem.where}: {problem.message}", style="yellow")
            )
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        if settings().json:
            render.emit_json([render.change_data(e.change, e.diff) for e in entries])
            return
        if not entries:
            out().print(f"{name} has no history: it was never configured.")
            return
        out().print(render.history_table(name, entries))


@cli.command()
@click.argument("feature")
@click.argument("before")
@click.argument("after", required=False)
@common
@handled
def diff(feature: str, before: str, after: str | None) -> None:
    """What changed in FEATURE from version BEFORE to AFTER (default: now).

    Use '' as BEFORE for "never configured".
    """
    with session() as current:
        name = current.feature(feature)
        lines = current.admin.diff(name, before or None, after)
        if settings().json:
            render.emit_json([line.as_dict() for line in lines])
            return
        out().print(f"{name}: {before or '(unconfigured)'} → {after or 'now'}")
        out().print(render.diff_text(lines))


@cli.command()
@click.argument("feature")
@click.argument("values", nargs=-1, metavar="SEGMENT=VALUE...")
@common
@handled
def explain(feature: str, values: tuple[str, ...]) -> None:
    """Which implementation users with these segment values get, and why.

    \b
    Example: feats explain PaymentProcessor Country=US UserId=42
    """
    with session() as current:
        name = current.feature(feature)
        try:
            evaluation = current.admin.explain(name, parse_pairs(values))
        except CodecError as error:
            raise CliError(
                f"{name}'s stored configuration (version {current.version_of(name)}) cannot "
                f"be read: {error}",
                Exit.ERROR,
                _UNREADABLE_EFFECT.format(feature=name),
                kind="codec",
            ) from error
        if settings().json:
            render.emit_json(render.evaluation_data(evaluation))
            return
        out().print(render.evaluation_text(evaluation))


@cli.command()
@click.argument("feature")
@click.option("--by-value", is_flag=True, help="Also count per value of the experiment segment.")
@click.option("--since", metavar="VERSION", help="Only exposures under this version or later.")
@common
@handled
def exposures(feature: str, by_value: bool, since: str | None) -> None:
    """Experiment exposures of FEATURE per implementation (and per segment value)."""
    with session() as current:
        name = current.feature(feature)
        report = current.admin.exposures(name, by_value=by_value, since=since)
        if settings().json:
            render.emit_json(report.as_dict())
            return
        if not report.total:
            out().print(f"No exposures of {name} recorded yet.")
            return
        for table in render.exposures_table(report):
            out().print(table)


@cli.command()
@common
@handled
def drift() -> None:
    """Features configured but declared by no App, declared but never configured, and rules
    naming implementations, segments or options no App declares (exit 8 if any)."""
    with session() as current:
        unreadable = current.unreadable
        items = [
            item
            for item in current.admin.drift()
            if not (item.kind == "unconfigured" and item.feature in unreadable)
        ]
        items += [
            Drift(
                name,
                "unreadable",
                f"version {current.version_of(name)} cannot be read: {problem.message}",
            )
            for name, problem in sorted(unreadable.items())
        ]
        if not items and current.catalog.empty and not current.app.registry.features:
            current.note_if_empty()
        problems = [item for item in items if item.kind != "unconfigured"]
        if settings().json:
            render.emit_json([item.as_dict() for item in items])
        elif not items:
            out().print(f"No drift in namespace {current.namespace!r}.")
        else:
            out().print(render.drift_table(items, current.namespace))
        if current.catalog.empty and not current.app.registry.features:
            console(stderr=True).print(
                "note: no App has published a catalog in this namespace; start one, or pass --app"
            )
        if problems:
            raise SystemExit(int(Exit.DRIFT))


@cli.command()
@common
@handled
def catalog() -> None:
    """The declarations each deploy published (identity, last seen, features, segments)."""
    with session() as current:
        published = current.catalog
        if not published.entries and not published.problems:
            current.note_if_empty()
        if settings().json:
            render.emit_json(render.catalog_data(published))
            return
        if not published.entries:
            out().print(f"No App has published a catalog in namespace {current.namespace!r}.")
        else:
            out().print(render.catalog_table(published))
        for problem in published.problems:
            console(stderr=True).print(Text(f"skipped: {problem}", style="yellow"))


# -- backups ---------------------------------------------------------------------------


@cli.command("export")
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    default="-",
    show_default=True,
    help="Where to write the backup (- for standard output).",
)
@click.option("--no-history", is_flag=True, help="Only current states, not each history.")
@common
@handled
def export(output: str, no_history: bool) -> None:
    """Back up the namespace: every feature's current state and version, and its history,
    as one JSON document that `feats import` restores."""
    with session() as current:
        document = current.admin.export_backup(history=not no_history)
        text = render_json(document)
        err = console(stderr=True)
        if not document["features"] and not document["skipped"]:
            current.note_if_empty()
        if output == "-":
            click.echo(text)
        else:
            with open(output, "w", encoding="utf-8") as file:
                file.write(text + "\n")
            err.print(
                f"Exported {len(document['features'])} feature(s) of namespace "
                f"{current.namespace!r} to {output}."
            )
        for skipped in document["skipped"]:
            err.print(
                Text(
                    f"skipped {skipped['feature']} at {skipped['version']}: {skipped['error']}",
                    style="yellow",
                )
            )


@cli.command("import")
@click.argument("backup", type=click.File("r", encoding="utf-8"))
@click.option("--author", metavar="NAME", help="Who restores it (default: your OS user).")
@click.option("--reason", metavar="TEXT", help="Why, for the history.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common
@handled
def import_(backup: Any, author: str | None, reason: str | None, yes: bool) -> None:
    """Restore a `feats export` BACKUP (a file, or - for standard input).

    Into an empty namespace (Redis restarted without persistence) it comes back exactly,
    versions and history included, in one atomic step. Into a configured one, every
    feature whose state differs gets a new version with --author and --reason.
    """
    if settings().json and not yes:
        raise _needs_yes()
    source = getattr(backup, "name", "the backup")
    try:
        document = backup.read()
        parsed = parse_backup(document)
    except (CodecError, UnicodeDecodeError) as error:
        raise CliError(
            f"{source} is not a feats backup: {error}",
            Exit.INVALID,
            "feats import reads what feats export wrote (a JSON document with "
            '"format": "feats-backup")',
            kind="invalid_backup",
        ) from error
    with session() as current:
        if not yes:
            click.confirm(
                f"Restore {len(parsed.features)} feature(s) into namespace {current.namespace!r}?",
                default=False,
                abort=True,
                err=True,
            )
        result = current.admin.import_backup(
            document, author=current.author(author), reason=reason or "feats import"
        )
        if settings().json:
            render.emit_json(
                {
                    "mode": result.mode,
                    "features": list(result.features),
                    "unchanged": list(result.unchanged),
                    "versions": dict(result.versions),
                }
            )
            return
        verb = "Restored" if result.mode == "restored" else "Wrote"
        out().print(
            Text(
                f"✓ {verb} {len(result.features)} feature(s) into namespace "
                f"{current.namespace!r}; {len(result.unchanged)} already matched.",
                style="green",
            )
        )


# -- changing --------------------------------------------------------------------------


def _show_plan(plan: Plan, action: str) -> None:
    console_ = out()
    base = plan.version or "never configured"
    if plan.unreadable:
        base += ", which cannot be read"
    console_.print(Text(f"{plan.feature}: {action}", style="bold") + Text(f"  (from {base})"))
    if plan.unreadable and not plan.diff:
        console_.print(Text("~ configuration: (unreadable) → (no configuration)", style="yellow"))
    else:
        console_.print(render.diff_text(plan.diff))


def _needs_yes() -> CliError:
    return CliError(
        "--json cannot ask for confirmation: add --yes to write without asking",
        Exit.USAGE,
        "or leave out --json to see the change and answer the prompt",
        kind="usage",
    )


_UNREADABLE_EFFECT = (
    "Apps that held a good state of {feature} keep it; Apps that start now answer its "
    "default. feats set, rollback or reset on {feature} writes a new version over it."
)


def _warn_unreadable(current: Session) -> None:
    for name, problem in sorted(current.unreadable.items()):
        console(stderr=True).print(
            Text(
                f"warning: {name}'s current configuration (version {current.version_of(name)}) "
                f"cannot be read: {problem.message}",
                style="yellow",
            )
        )


def _conflict(current: Session, plan: Plan, error: ConflictError) -> CliError:
    """Show both sides: the version the change was based on and the one that won."""
    changes = current.admin.history(plan.feature)
    theirs = next((c for c in changes if c.version == error.current), None)
    base = plan.version or ""
    lines = [
        f"your change was based on version {base or '(never configured)'}, "
        f"but {plan.feature} is now at {error.current or '(never configured)'}"
    ]
    hints: list[str] = []
    if theirs is not None:
        hints.append(
            f"theirs ({theirs.version}, {theirs.author}, {render.format_time(theirs.time)}: "
            f"{theirs.reason or 'no reason given'}):"
        )
        try:
            before = version_of(plan.feature, changes, base)
        except NotFoundError:
            before = plan.before
        theirs_diff = [str(line) for line in diff_states(before, theirs.state)]
        hints.extend(f"  {line}" for line in theirs_diff or ["(no change)"])
    hints.append("yours (not written):")
    hints.extend(f"  {line}" for line in plan.diff)
    hints.append("nothing was written; run the command again to apply yours on top of theirs")
    return CliError(lines[0], Exit.CONFLICT, *hints, kind="conflict")


def apply_change(
    feature: str,
    edit: Edit | Callable[[Session, str], Edit],
    *,
    author: str | None,
    reason: str | None,
    yes: bool,
    expect_version: str | None,
) -> None:
    """Preview, show the diff, confirm, write with compare-and-set, report."""
    json_output = settings().json
    if json_output and not yes:
        raise _needs_yes()
    with session() as current:
        name = current.feature(feature)
        if callable(edit):
            edit = edit(current, name)
        plan = current.admin.preview(name, edit)
        if expect_version is not None and expect_version != (plan.version or ""):
            raise _conflict(
                current,
                Plan(name, expect_version or None, plan.before, plan.after, plan.diff),
                ConflictError(name, expect_version, plan.version),
            )
        if not json_output:
            _show_plan(plan, edit.describe())
        if not plan.changed:
            if json_output:
                render.emit_json(
                    {"feature": name, "changed": False, "version": plan.version, "diff": []}
                )
            else:
                out().print("Nothing to change.")
            return
        if not yes:
            click.confirm(
                f"Apply to {name} in namespace {current.namespace!r}?",
                default=False,
                abort=True,
                err=True,
            )
        try:
            version = current.admin.set_state(
                name,
                plan.after,
                author=current.author(author),
                reason=reason or edit.describe(),
                expected_version=plan.version or "",
            )
        except ConflictError as error:
            raise _conflict(current, plan, error) from error
        if json_output:
            render.emit_json(
                {
                    "feature": name,
                    "changed": True,
                    "version": version,
                    "previous_version": plan.version,
                    "diff": [line.as_dict() for line in plan.diff],
                }
            )
        else:
            out().print(Text(f"✓ {name} is now at version {version}", style="green"))


where_option = click.option(
    "--where",
    "-w",
    "where",
    multiple=True,
    metavar="SEGMENT=VALUE",
    help="Which users: one per segment of the rule (none: everyone no rule matches).",
)
resegment_option = click.option(
    "--resegment",
    is_flag=True,
    help="Key the rules by the --where segments instead, dropping the current keyed rules.",
)


@cli.command("set")
@click.argument("feature")
@click.argument("implementation")
@where_option
@resegment_option
@common
@changing
@handled
def set_(
    feature: str,
    implementation: str,
    where: tuple[str, ...],
    resegment: bool,
    author: str | None,
    reason: str | None,
    yes: bool,
    expect_version: str | None,
) -> None:
    """Route users (--where SEGMENT=VALUE ...) or everyone else to IMPLEMENTATION.

    \b
    Example: feats set PaymentProcessor premium --where Country=CA
    """
    apply_change(
        feature,
        Route(implementation, where_of(parse_pairs(where)), resegment),
        author=author,
        reason=reason,
        yes=yes,
        expect_version=expect_version,
    )


@cli.command()
@click.argument("feature")
@click.argument("weights", nargs=-1, required=True, metavar="IMPL=WEIGHT...")
@click.option(
    "--by", "segment", required=True, metavar="SEGMENT", help="Who is split: e.g. UserId."
)
@where_option
@resegment_option
@common
@changing
@handled
def rollout(
    feature: str,
    weights: tuple[str, ...],
    segment: str,
    where: tuple[str, ...],
    resegment: bool,
    author: str | None,
    reason: str | None,
    yes: bool,
    expect_version: str | None,
) -> None:
    """Start or change a rollout: percentages of a segment's values per implementation.

    Changing the weights of the same rule moves the fewest users: raising 5% to 25%
    keeps everyone who had it.

    \b
    Example: feats rollout PaymentProcessor --by UserId aperture=5 acme=95 --where Country=US
    """
    apply_change(
        feature,
        SetRollout(segment, parse_weights(weights), where_of(parse_pairs(where)), resegment),
        author=author,
        reason=reason,
        yes=yes,
        expect_version=expect_version,
    )


@cli.command()
@click.argument("feature")
@click.argument("weights", nargs=-1, metavar="IMPL=WEIGHT...")
@click.option("--by", "segment", metavar="SEGMENT", help="The unit of randomisation: e.g. UserId.")
@click.option("--stop", is_flag=True, help="End the experiment instead of starting it.")
@click.option("--winner", metavar="IMPL", help="With --stop: who gets this implementation.")
@where_option
@resegment_option
@common
@changing
@handled
def experiment(
    feature: str,
    weights: tuple[str, ...],
    segment: str | None,
    stop: bool,
    winner: str | None,
    where: tuple[str, ...],
    resegment: bool,
    author: str | None,
    reason: str | None,
    yes: bool,
    expect_version: str | None,
) -> None:
    """Start an experiment (every use records an exposure), or --stop it.

    \b
    Examples:
      feats experiment AllowedPriorities --by UserId no_priority=34 two_priorities=33 \\
          three_priorities=33
      feats experiment AllowedPriorities --stop --winner three_priorities
    """
    edit: Edit
    if stop:
        if weights or segment:
            raise CliError("--stop takes no weights and no --by", Exit.USAGE)
        edit = StopExperiment(where_of(parse_pairs(where)), winner)
    else:
        if winner:
            raise CliError("--winner goes with --stop", Exit.USAGE)
        if not segment:
            raise CliError("an experiment needs --by SEGMENT (e.g. --by UserId)", Exit.USAGE)
        if not weights:
            raise CliError("an experiment needs IMPL=WEIGHT for each arm", Exit.USAGE)
        edit = StartExperiment(
            segment, parse_weights(weights), where_of(parse_pairs(where)), resegment
        )
    apply_change(
        feature, edit, author=author, reason=reason, yes=yes, expect_version=expect_version
    )


@cli.command()
@click.argument("feature")
@where_option
@common
@changing
@handled
def remove(
    feature: str,
    where: tuple[str, ...],
    author: str | None,
    reason: str | None,
    yes: bool,
    expect_version: str | None,
) -> None:
    """Remove the rule for --where SEGMENT=VALUE ... (none: the fallthrough)."""
    apply_change(
        feature,
        RemoveRule(where_of(parse_pairs(where))),
        author=author,
        reason=reason,
        yes=yes,
        expect_version=expect_version,
    )


@cli.command()
@click.argument("feature")
@common
@changing
@handled
def reset(
    feature: str, author: str | None, reason: str | None, yes: bool, expect_version: str | None
) -> None:
    """Back to the default implementation everywhere (history is kept)."""
    apply_change(
        feature, Reset(), author=author, reason=reason, yes=yes, expect_version=expect_version
    )


@cli.command()
@click.argument("feature")
@click.argument("version", required=False)
@common
@changing
@handled
def rollback(
    feature: str,
    version: str | None,
    author: str | None,
    reason: str | None,
    yes: bool,
    expect_version: str | None,
) -> None:
    """Make FEATURE's configuration what it was at VERSION (default: the one before now).

    A rollback is a new version; it restores the exact assignments of that version.
    """

    def target(current: Session, name: str) -> Edit:
        changes = current.admin.history(name)
        if version is None:
            if not changes:
                raise CliError(f"{name} was never configured: nothing to roll back", Exit.NOT_FOUND)
            if len(changes) < 2:
                return Rollback(None, "")
            return Rollback(changes[-2].state, changes[-2].version)
        return Rollback(version_of(name, changes, version), version)

    apply_change(
        feature,
        target,
        author=author,
        reason=reason,
        yes=yes,
        expect_version=expect_version,
    )


# -- live ------------------------------------------------------------------------------


@cli.command()
@click.argument("features", nargs=-1, metavar="[FEATURE]...")
@click.option("--count", type=int, default=None, help="Stop after N changes.")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds.")
@click.option("--after", metavar="VERSION", help="Start after this version (default: now).")
@common
@handled
def watch(
    features: tuple[str, ...], count: int | None, timeout: float | None, after: str | None
) -> None:
    """Tail changes live as they happen: who changed what, why, and the diff.

    Prints one line per change (one JSON object per line with --json).
    """
    json_output = settings().json
    with session() as current:
        names = [current.feature(feature) for feature in features]
        # The starting point is fixed before the line that says we are watching, so a
        # change made right after it is not missed.
        position = after or current.storage.load().head
        err = console(stderr=True)
        err.print(
            f"watching namespace {current.namespace!r} at {redact(settings().url)} "
            f"from version {position} (Ctrl-C to stop)",
        )
        sys.stderr.flush()

        def skipped(problem: Problem) -> None:
            err.print(f"skipped {problem.where}: {problem.message}")

        seen = 0
        try:
            for entry in current.admin.watch(
                names, after=position, timeout=timeout, on_skipped=skipped
            ):
                if json_output:
                    render.emit_json_line(render.change_data(entry.change, entry.diff))
                else:
                    _print_change(entry.change, entry.diff)
                sys.stdout.flush()
                seen += 1
                if count is not None and seen >= count:
                    break
        except KeyboardInterrupt:
            pass


def _print_change(change: Any, lines: Any) -> None:
    header = Text(f"{change.time.astimezone():%H:%M:%S} ", style="dim")
    header.append(change.feature, style="bold")
    header.append(f" {change.version} by {change.author}: {change.reason or '-'}")
    out().print(header)
    for line in lines or []:
        out().print(Text(f"    {line}", style={"+": "green", "-": "red"}.get(line.op, "yellow")))


@cli.command()
@click.option("--speed", type=float, default=1.0, show_default=True, help="Run faster (2 = twice).")
@click.option(
    "--steps",
    default=None,
    metavar="STEPS",
    help="N: the first N steps; or a comma list of step numbers, ranges and names, "
    "e.g. 1-3 or canada,rollback (see --list-steps).",
)
@click.option("--list-steps", is_flag=True, help="Show the steps and exit.")
@click.option("--users", type=int, default=5000, show_default=True, help="Simulated users.")
@click.option("--plain", is_flag=True, help="Print snapshots instead of a live table.")
@common
@handled
def demo(speed: float, steps: str | None, list_steps: bool, users: int, plain: bool) -> None:
    """The payments story live: Canada to premium, roll back, aperture to 5%, 25% and 100%
    of US users, then the priorities experiment, with per-country shares and each change's
    propagation time. In memory unless --redis is given; ends by itself in under a minute."""
    from . import _demo

    if list_steps:
        for number, step in enumerate(_demo.STEPS, 1):
            click.echo(f"{number}  {step.name:12} {step.title}")
        return
    if speed <= 0:
        raise CliError("--speed must be more than 0", Exit.USAGE)
    if users < 10:
        raise CliError("--users: at least 10", Exit.USAGE)
    current = settings()
    try:
        chosen = _demo.choose_steps(steps)
    except ValueError as error:
        raise CliError(str(error), Exit.USAGE) from error
    url = current.redis_url
    if url is not None:
        from ._context import connect

        connect(url).close()
    result = _demo.run(
        redis_url=url,
        namespace=current.namespace,
        speed=speed,
        steps=chosen,
        users=users,
        plain=plain,
        json_output=current.json,
    )
    if current.json:
        render.emit_json(result)


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Run the benchmark suite of a source checkout: feats bench [ARGS]... (--help for its own)."""
    root = benchmarks_checkout()
    if root is None:
        console(stderr=True).print(
            "error: feats bench runs the benchmark suite of a source checkout, which an "
            f"installed package does not include: git clone {REPOSITORY}, then "
            "pip install -e '.[bench]' and run feats bench (or python -m benchmarks) there"
        )
        raise SystemExit(int(Exit.USAGE))
    # Its own process, from the checkout: python -m finds the benchmarks package there.
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks", *args], cwd=root, check=False
        )
    except KeyboardInterrupt:  # the suite got the Ctrl-C too, and stopped
        raise SystemExit(130) from None
    raise SystemExit(completed.returncode)


def benchmarks_checkout() -> Path | None:
    """The source checkout to benchmark: the working directory if it is one, else the one
    this feats was installed from in development mode (pip install -e)."""
    package = Path(__file__).resolve().parents[1]
    for root in (Path.cwd(), package.parent):
        if all(
            (root / part).is_file()
            for part in ("pyproject.toml", "feats/__init__.py", "benchmarks/__main__.py")
        ):
            return root
    return None


cli.add_command(importlib.import_module("feats.web._cli").web)  # the web admin (extra: web)


def main(argv: list[str] | None = None) -> None:
    """The console script: ``feats``."""
    cli.main(args=argv, prog_name="feats")
