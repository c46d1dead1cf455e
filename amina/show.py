"""What the CLI and the demo print: progress bars, one-line messages and the tables of sync runs and row counts.

Both `amina.cli` and `amina.demo` print through here, so neither imports the other. Text from outside
(asset names, server messages, config keys, exception text) is always printed verbatim: it goes into
`rich.text.Text` objects, never into markup strings, so `[sync]` or `Survey [/] 2026` stay as they are.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

__all__ = ["Table", "err", "note", "ok", "out", "plain", "print_counts", "print_reports", "progress_bar", "styled",
           "track"]

out = Console(width=None if sys.stdout.isatty() else 160, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)  # an error is one line, however long


def plain(text: object) -> Text:
    """Text shown exactly as it is (no markup, no highlighting)."""
    return Text(str(text))


def styled(label: str, text: object, style: str) -> Text:
    """'label: text' with the label in a colour and the text verbatim ('label' alone when text is empty)."""
    shown = str(text)
    return Text.assemble((f"{label}:" if shown else label, style), (f" {shown}" if shown else ""))


def ok(label: str, text: object) -> Text:
    return Text.assemble((label, "green"), f" {text}")


def note(label: str, text: object) -> Text:
    return Text.assemble((label, "yellow"), f" {text}")


def progress_bar() -> Progress:
    """On a terminal: submissions fetched of the API's count, rate and ETA. Elsewhere, log lines."""
    return Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


def track(bar: Progress, label: str) -> Callable[[int, int], None]:
    """A progress task for one sync, and the callback the engine calls after each page."""
    task = bar.add_task(escape(label), total=None, rate="")

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        speed = next((t.speed for t in bar.tasks if t.id == task), None)
        bar.update(task, rate=f"{speed:,.0f} submissions/s" if speed else "")
    return update


def print_reports(reports: Iterable[Any], console: Console = out) -> None:
    table = Table(title="sync runs", title_justify="left")
    for col in ("form", "table", "fetched", "new", "updated", "unchanged", "deleted", "bad values", "requests",
                "seconds", "sweep"):
        table.add_column(col, justify="right" if col not in ("form", "table", "sweep") else "left")
    for r in reports:
        sweep = (f"{r.sweep_mode}, {r.sweep_requests} request{'' if r.sweep_requests == 1 else 's'}"
                 if r.swept else "no")
        table.add_row(plain(r.name), plain(r.table), str(r.fetched), str(r.inserted), str(r.updated),
                      str(r.unchanged), str(r.deleted), str(r.bad_values), str(r.requests), f"{r.seconds:.2f}",
                      plain(sweep))
    console.print(table)


def print_counts(counts: list[tuple[str, str, int]], console: Console = out) -> None:
    table = Table(title="warehouse tables", title_justify="left")
    table.add_column("asset")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for uid, name, rows in counts:
        table.add_row(plain(uid), plain(name), f"{rows:,}")
    console.print(table)
