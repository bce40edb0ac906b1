"""What the command line shows a person: one stderr console, error lines and progress bars.

Kept apart from ``cli`` so that every command module can use it without importing ``cli``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text

stderr = Console(stderr=True)


def print_labelled(label: str, message: object) -> None:
    """``label`` (markup) and ``message`` (as it is, never markup) as one line on stderr, left to
    the terminal to wrap, so a command or a path in it copies whole. One print: a progress bar
    redraws between two, and would wipe the label."""
    stderr.print(Text.from_markup(label) + Text(str(message)), highlight=False, soft_wrap=True)


def print_error(message: object) -> None:
    """One unwrapped line on stderr; file names are printed as they are, never as markup."""
    print_labelled("[red]error:[/] ", message)


def progress_bar(console: Console | None = None) -> Progress:
    """Bar, count, status and times. On a narrow terminal the status gives way (cut with an
    ellipsis) and the bar shrinks; the counts and the elapsed and remaining times stay whole."""
    fixed = {"no_wrap": True, "overflow": "ignore"}
    return Progress(TextColumn("[bold]{task.description}", table_column=Column(**fixed)),
                    BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=5)),
                    MofNCompleteColumn(table_column=Column(**fixed)),
                    TextColumn("{task.fields[status]}", table_column=Column(ratio=3, no_wrap=True, overflow="ellipsis")),
                    TimeElapsedColumn(table_column=Column(min_width=7, **fixed)),
                    TimeRemainingColumn(table_column=Column(min_width=7, **fixed)),
                    console=console or stderr, transient=False, expand=True)


def common_folder(paths: Sequence[str]) -> str:
    """The folder every path lies in ("" when they share none, or there is a single file at the top)."""
    folders = [os.path.dirname(path) for path in paths]
    if not folders:
        return ""
    try:
        return os.path.commonpath(folders)
    except ValueError:  # absolute and relative paths mixed
        return ""


def shorten_middle(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters: both ends of a path tell files apart."""
    if len(text) <= width:
        return text
    if width < 5:
        return text[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return f"{text[:head]}…{text[-tail:]}"
