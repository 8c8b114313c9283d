"""Prove a Snowflake or BigQuery example with sqlglot, since no engine here runs them.

A clean parse proves little (sqlglot reads much PostgreSQL-only syntax under any dialect, and
quietly rewrites some: BigQuery has no UUID type, so `UUID` comes back as `STRING`). So each
statement must also be written back in its dialect, with unsupported syntax as an error, into
the same tokens it was read from; and the proof names the constructs that must (or must not)
be there: `node: Merge`, `node: ClusterProperty`, `{node: OnConflict, present: false}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..kb import Example
from ..kb_proof import NodeCheck, RaisesCheck
from .core import Env, matches


def prove(ex: Example, deps: Sequence[Example], env: Env) -> list[str]:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel

    assert ex.proof is not None and ex.dialect is not None
    dialect = ex.dialect
    trees: list[Any] = []
    error: BaseException | None = None
    rewritten: str | None = None
    try:
        trees = [t for t in sqlglot.parse(ex.code, read=dialect, error_level=ErrorLevel.RAISE) if t]
        written = [t.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE) for t in trees]
        rewritten = _rewrite(ex.code, ";\n".join(written), dialect)
    except Exception as err:
        error = err
    failures: list[str] = []
    must_fail = [c for c in ex.proof.checks if isinstance(c, RaisesCheck)]
    for expected in must_fail:
        if not matches(error, expected.raises):
            observed = f"{type(error).__name__}: {error}" if error else f"it parses as {dialect}"
            failures.append(
                f"claimed {dialect} rejects it with '{expected.raises}'; observed {observed}"
            )
    if error is not None and not must_fail:
        first = str(error).strip().splitlines()[0]
        return [f"claimed valid {dialect}; observed {type(error).__name__}: {first}"]
    if rewritten:
        failures.append(f"claimed valid {dialect}; observed sqlglot rewrites it: {rewritten}")
    found = {type(node).__name__ for tree in trees for node in tree.walk()}
    for check in ex.proof.checks:
        if not isinstance(check, NodeCheck):
            continue
        if not hasattr(exp, check.node):
            failures.append(f"node '{check.node}' is not a sqlglot expression class")
        elif check.present and check.node not in found:
            failures.append(f"claimed a {check.node} under {dialect}; observed only "
                            f"{', '.join(sorted(found))}")
        elif not check.present and check.node in found:
            failures.append(f"claimed no {check.node} under {dialect}; observed one")
    return failures


def _rewrite(source: str, written: str, dialect: str) -> str | None:
    """The first token sqlglot changed when writing the statements back, or None."""
    from sqlglot.dialects.dialect import Dialect

    tokenizer = Dialect.get_or_raise(dialect).tokenizer()

    def tokens(text: str) -> list[str]:
        return [t.text.upper() for t in tokenizer.tokenize(text) if t.text != ";"]

    before, after = tokens(source), tokens(written)
    for i, (a, b) in enumerate(zip(before, after, strict=False)):
        if a != b:
            was, now = before[max(0, i - 2) : i + 2], after[max(0, i - 2) : i + 2]
            return f"'{' '.join(was)}' -> '{' '.join(now)}'"
    if len(before) != len(after):
        return f"{len(before)} tokens -> {len(after)}"
    return None
