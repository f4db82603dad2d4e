"""The progress display: one bar per section, on stderr, off when not wanted."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["Section", "Steps"]


class Section:
    """One section's bar: ``advance(what)`` after each step, ``note(what)`` before a long one."""

    def __init__(self, progress: Progress | None, task: TaskID | None, title: str) -> None:
        self._progress = progress
        self._task = task
        self.title = title

    def note(self, what: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"{self.title}: {what}")

    def advance(self, what: str = "", steps: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            description = f"{self.title}: {what}" if what else self.title
            self._progress.update(self._task, advance=steps, description=description)

    def done(self) -> None:
        if self._progress is not None and self._task is not None:
            task = self._progress.tasks[self._task]
            self._progress.update(
                self._task, completed=task.total or task.completed, description=self.title
            )


class Steps:
    """Context manager around a rich Progress; ``enabled=False`` shows nothing."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("[progress.description]{task.description:<58}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console or Console(stderr=True),
                transient=False,
            )

    def section(self, title: str, total: int) -> Section:
        if self._progress is None:
            return Section(None, None, title)
        return Section(self._progress, self._progress.add_task(title, total=total), title)

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message)

    def __enter__(self) -> Steps:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
