"""How the command line counts things: one rule for plurals, so "1 file" and "2 files" agree."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`1 file`, `2 files`; `plural_form` for nouns without an s (`1 match`, `2 matches`)."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"
