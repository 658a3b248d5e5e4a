"""The two consoles every command prints through: tables and results on stdout, notes and failures on stderr."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape

console = Console(width=None if sys.stdout.isatty() else 150)  # piped tables keep their columns
err_console = Console(stderr=True)


def escape_markup(text: str) -> str:
    """``text`` with rich markup escaped: messages quote names read from files, printed, never styled."""
    return escape(text)
