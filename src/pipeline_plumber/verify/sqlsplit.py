"""Split a PostgreSQL script into statements, the way psql does, so each runs on its own:
VACUUM and CREATE DATABASE refuse to run inside the implicit transaction of a multi-statement
query, and a script's own BEGIN/COMMIT must mean what it says."""

from __future__ import annotations

import re

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def split_sql(script: str) -> list[str]:
    """Statements of `script`, without their `;`; quotes, dollar quotes and comments respected.

    >>> split_sql("SELECT ';'; -- a; comment\\nSELECT $$ ; $$")
    ["SELECT ';'", '-- a; comment\\nSELECT $$ ; $$']
    """
    statements: list[str] = []
    start = i = 0
    n = len(script)
    while i < n:
        c = script[i]
        if c in "'\"":
            end = script.find(c, i + 1)
            while end != -1 and script[end + 1 : end + 2] == c:  # doubled quote
                end = script.find(c, end + 2)
            i = n if end == -1 else end + 1
        elif script.startswith("--", i):
            end = script.find("\n", i)
            i = n if end == -1 else end + 1
        elif script.startswith("/*", i):
            end = script.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif c == "$" and (m := _DOLLAR.match(script, i)):
            end = script.find(m.group(0), m.end())
            i = n if end == -1 else end + len(m.group(0))
        elif c == ";":
            statements.append(script[start:i])
            i += 1
            start = i
        else:
            i += 1
    statements.append(script[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    text = re.sub(r"--[^\n]*", "", statement)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return bool(text.strip())
