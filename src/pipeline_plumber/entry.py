"""The `plumber` command's entry point.

Importing the CLI takes a moment; Ctrl-C in that moment ends like any later interrupt, with
one line and exit 130, instead of a traceback from the import.
"""

from __future__ import annotations

import sys

from .errors import EXIT_INTERRUPTED


def main() -> None:
    try:
        from .cli import main as run_cli
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
    run_cli()
