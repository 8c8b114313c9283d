"""Snowflake and BigQuery answers, translated to DuckDB where the translation is faithful.

Storage-only clauses change how a warehouse lays data out, not what a statement does to the
rows: clustering, partitioning, table options and comments, retention settings. They are dropped
with a note. Identity and AUTOINCREMENT defaults are dropped too (probes supply key values).
Anything else sqlglot cannot express in DuckDB makes the whole Program `not_executed`, naming
the feature: half a translated program would prove nothing.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from .program import Program, Step

_RUN_KINDS = ("ddl", "seed", "load", "maintenance", "query")
_STORAGE_PROPERTIES = ("PartitionedByProperty", "ClusteredByProperty", "Cluster",
                       "ClusterProperty", "SchemaCommentProperty", "DataRetentionProperty",
                       "TransientProperty", "CopyGrantsProperty", "Property", "OptionsProperty",
                       "WithDataProperty", "PartitionedOfProperty", "VolatileProperty",
                       "SecureProperty", "MaterializedProperty")
_IDENTITY = ("AutoIncrementColumnConstraint", "GeneratedAsIdentityColumnConstraint",
             "CommentColumnConstraint")


def _strip(tree: Any) -> tuple[Any, list[str]]:
    """A copy of `tree` without storage-only clauses, and what was dropped."""
    from sqlglot import exp

    tree = tree.copy()
    dropped: list[str] = []
    properties = tree.args.get("properties") if isinstance(tree, exp.Create) else None
    if properties is not None:
        for prop in list(properties.expressions):
            if type(prop).__name__ in _STORAGE_PROPERTIES:
                dropped.append(_describe(prop))
                prop.pop()
        if not properties.expressions:
            properties.pop()
    for constraint in list(tree.find_all(exp.ColumnConstraint)):
        if type(constraint.kind).__name__ in _IDENTITY:
            dropped.append(_describe(constraint.kind))
            constraint.pop()
    for datatype in list(tree.find_all(exp.DataType)):
        name = datatype.this.name if hasattr(datatype.this, "name") else str(datatype.this)
        if name in _AS_JSON:
            datatype.replace(exp.DataType.build("JSON"))
            dropped.append(f"{name.lower()} as json")
        elif name in _NO_EQUIVALENT:
            raise _Untranslatable(f"{name} type")
    for node in list(tree.find_all(exp.PrimaryKey, exp.Reference)):
        options = node.args.get("options") or []
        kept = [o for o in options if "ENFORCED" not in str(o).upper()]
        if len(kept) != len(options):  # BigQuery's informational keys: DuckDB enforces them
            node.set("options", kept or None)
            dropped.append("not enforced")
    for table in tree.find_all(exp.Table):
        if table.args.get("catalog") is not None:
            table.set("catalog", None)  # project.dataset.table / db.schema.table: one database
    return tree, dropped


_AS_JSON = {"VARIANT", "OBJECT"}
_NO_EQUIVALENT = {"GEOGRAPHY", "GEOMETRY"}


class _Untranslatable(Exception):
    """A feature of the statement that DuckDB cannot express."""


def _describe(node: Any) -> str:
    if type(node).__name__ == "Property":
        return str(node.name).lower().replace("_", " ") or "option"
    name = re.sub(r"(ColumnConstraint|Property)$", "", type(node).__name__)
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower() or "clause"


def _feature(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "a clause"
    match = re.match(r"Unsupported (?:property|syntax)?\s*(\w+)", first, re.I)
    if match:
        return re.sub(r"property$", "", match.group(1).lower()) + " property"
    return re.sub(r"\s+is not supported by DuckDB\.?$", "", first).replace(
        "The ", "", 1).strip()


def to_duckdb(program: Program) -> Program:
    """`program` with every statement that runs translated to DuckDB, or `not_executed`."""
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, UnsupportedError

    steps: list[Step] = []
    dropped: list[str] = []
    for step in program.steps:
        if step.kind not in _RUN_KINDS:
            steps.append(step)
            continue
        if step.tree is None or isinstance(step.tree, exp.Command):
            if step.kind == "query":
                steps.append(replace(step, kind="skip", note="no DuckDB translation"))
                continue
            words = " ".join(step.original.split()[:3])
            return replace(program, steps=tuple(steps),
                           not_executed=f"{words} has no DuckDB equivalent")
        try:
            tree, gone = _strip(step.tree)
            sql = tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
        except (UnsupportedError, _Untranslatable) as err:
            if step.kind == "query":
                steps.append(replace(step, kind="skip", note=f"no DuckDB translation: {err}"))
                continue
            return replace(program, steps=tuple(steps),
                           not_executed=f"{_feature(str(err))} has no DuckDB equivalent "
                           f"({step.where})")
        dropped += gone
        steps.append(replace(step, sql=sql))
    notes = program.notes
    if dropped:
        kinds = sorted(set(dropped))
        notes += (f"translated to DuckDB; dropped storage-only clauses: {', '.join(kinds)}",)
    else:
        notes += ("translated to DuckDB",)
    return replace(program, steps=tuple(steps), notes=notes)
