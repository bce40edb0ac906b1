"""What the command line shows a person: one stderr console, error lines and progress bars.

Kept apart from ``cli`` so that every command module can use it without importing ``cli``.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

stderr = Console(stderr=True)


def print_error(message: object) -> None:
    """One unwrapped line on stderr; file names are printed as they are, never as markup."""
    stderr.print("[red]error:[/] ", end="")
    stderr.print(str(message), markup=False, highlight=False, soft_wrap=True)


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=stderr, transient=False)
