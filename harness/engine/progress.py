"""Progress of a study: runs done / total with an ETA, and each active run's stage and step.

On a terminal this is a live ``rich`` display; elsewhere (CI, pipes, log files) plain log lines,
throttled so a long training loop does not flood the log.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Protocol, TextIO


class StudyProgress(Protocol):
    def begin(self, study: str, total: int, done: int) -> None: ...
    def event(self, ev: dict[str, Any]) -> None: ...
    def finished(self, name: str, state: str, seconds: float) -> None: ...
    def close(self) -> None: ...


def start_word(ev: dict[str, Any]) -> str:
    """``start`` for a run's first attempt; ``resume`` (with what it resumes) for a later one."""
    attempt = ev.get("attempt")
    if not isinstance(attempt, int) or attempt <= 1:
        return "start"
    was = f", was {ev['previous']}" if ev.get("previous") else ""
    return f"resume (attempt {attempt}{was})"


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class _Counter:
    """Runs done and a mean-duration ETA over the runs computed in this invocation (after the first)."""

    def __init__(self) -> None:
        self.total = self.done = 0
        self.computed_seconds: list[float] = []
        self.workers = 1

    def eta(self) -> float | None:
        if not self.computed_seconds:
            return None
        # the first run of an invocation also builds what every run shares (a teacher, a classifier):
        # minutes that no later run pays again, so it leaves the mean as soon as another run has finished
        sample = self.computed_seconds[1:] or self.computed_seconds
        mean = sum(sample) / len(sample)
        return mean * (self.total - self.done) / max(1, self.workers)


class LogProgress:
    """Plain lines on a stream; step updates at most every ``every_s`` seconds per run."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 10.0):
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.c = _Counter()
        self.names: dict[str, str] = {}
        self.last: dict[str, tuple[float, Any]] = {}
        self.lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    def begin(self, study: str, total: int, done: int) -> None:
        self.c.total, self.c.done = total, done
        self._print(f"[{study}] {total} runs, {done} already complete, {total - done} to run")

    def event(self, ev: dict[str, Any]) -> None:
        run = ev.get("run", "?")
        if ev.get("event") == "start":
            self.names[run] = ev.get("name", run)
            word, _, detail = start_word(ev).partition(" ")
            self._print(f"[{self.c.done}/{self.c.total}] {word} {self.names[run]} ({run}){' ' + detail if detail else ''}")
            return
        if ev.get("event") == "end":
            return
        name = self.names.get(run, run)
        stage, step, total = ev.get("stage"), ev.get("step"), ev.get("total")
        now = time.time()
        last_t, last_stage = self.last.get(run, (0.0, None))
        if stage is not None and stage != last_stage:
            self.last[run] = (now, stage)
            where = f" step {step}/{total}" if step is not None else ""
            self._print(f"    {name}: {stage}{where}")
        elif step is not None and now - last_t >= self.every_s:
            self.last[run] = (now, last_stage)
            of = f"/{total}" if total else ""
            self._print(f"    {name}: {last_stage or ''} step {step}{of}")

    def finished(self, name: str, state: str, seconds: float) -> None:
        self.c.done += 1
        if state in ("complete", "failed"):
            self.c.computed_seconds.append(seconds)
        self._print(f"[{self.c.done}/{self.c.total}] {state:8s} {name} ({seconds:.1f}s), ETA {_fmt_eta(self.c.eta())}")

    def close(self) -> None:
        pass


class RichProgress:
    """A live display: one bar for the study, one line per active run."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        bar, count = _columns()
        self.progress = Progress(
            TextColumn("{task.description}"), bar, count, TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"), console=self.console, transient=False,
        )
        self.c = _Counter()
        self.study_task = None
        self.run_tasks: dict[str, Any] = {}
        self.names: dict[str, str] = {}
        self.progress.start()

    def begin(self, study: str, total: int, done: int) -> None:
        self.c.total, self.c.done = total, done
        self.study_task = self.progress.add_task(f"[bold]{study}", total=total, completed=done, eta="")

    def event(self, ev: dict[str, Any]) -> None:
        run = ev.get("run", "?")
        if ev.get("event") == "start":
            self.names[run] = ev.get("name", run)
            word = start_word(ev)
            self.run_tasks[run] = self.progress.add_task(f"  {self.names[run]}: {'starting' if word == 'start' else word}",
                                                         total=None, eta="")
            return
        task = self.run_tasks.get(run)
        if task is None:
            return
        if ev.get("event") == "end":
            self.progress.remove_task(task)
            self.run_tasks.pop(run, None)
            return
        fields: dict[str, Any] = {}
        if ev.get("stage") is not None:  # a new stage: its own count, or none (no bar) when it has no total
            fields.update(description=f"  {self.names.get(run, run)}: {ev['stage']}", total=ev.get("total"),
                          completed=ev.get("step") or 0)
        if ev.get("total") is not None:
            fields["total"] = ev["total"]
        if ev.get("step") is not None:
            fields["completed"] = ev["step"]
        self.progress.update(task, **fields)

    def finished(self, name: str, state: str, seconds: float) -> None:
        self.c.done += 1
        if state in ("complete", "failed"):
            self.c.computed_seconds.append(seconds)
        if state == "failed":
            self.console.print(f"[red]failed[/red] {name}")
        if self.study_task is not None:
            self.progress.update(self.study_task, completed=self.c.done, eta=f"ETA {_fmt_eta(self.c.eta())}")

    def close(self) -> None:
        self.progress.stop()


def _columns() -> tuple[Any, Any]:
    """A bar and an ``n/N`` count that show nothing for a stage without a known total (rich would draw
    ``0/?`` next to a full-width pulsing bar)."""
    from rich.progress import BarColumn, MofNCompleteColumn
    from rich.text import Text

    class Bar(BarColumn):
        def render(self, task):
            return Text("") if task.total is None else super().render(task)

    class Count(MofNCompleteColumn):
        def render(self, task):
            return Text("") if task.total is None else super().render(task)

    return Bar(), Count()


def make_progress(workers: int = 1, force_plain: bool = False) -> StudyProgress:
    """A live display on a terminal, log lines otherwise."""
    display: StudyProgress = RichProgress() if (sys.stderr.isatty() and not force_plain) else LogProgress()
    display.c.workers = workers  # type: ignore[attr-defined]
    return display
