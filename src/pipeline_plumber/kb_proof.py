"""How a knowledge-base example is proven: the `proof:` mapping of an example (schema-on-write).

An example passes `plumber verify` when what it claims is observed, not merely when it runs. A
proof names the engine, what the example depends on, and a list of typed checks::

    proof:
      engine: postgres
      requires: [oltp-3nf]                 # run these examples' code first, same database
      setup: INSERT INTO users ...         # fixture rows (SQL; Python for the python engine)
      checks:
        - query: SELECT count(*) = 3 FROM orders          # must return true (or `expect`)
        - plan: SELECT ... WHERE user_id = '...'
          contains: Index Only Scan                       # EXPLAIN must show it
        - raises: duplicate key                           # the example itself must fail so
        - idempotent: SELECT count(*) FROM orders         # unchanged when the example runs twice

The knowledge base owns this schema (`kb.py` validates every example's proof with it on each
`build` and `validate`); `verify/` reads it and runs the checks. It imports only pydantic.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
"""Every id and name in the knowledge base: lowercase kebab-case, 1 to 64 characters."""
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]

Engine = Literal["postgres", "duckdb", "airflow", "python", "sqlglot"]
Code = Annotated[str, StringConstraints(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueryCheck(_Model):
    """A query run after the example; its first column of its first row must equal `expect`.

    On the python and airflow engines it is a Python expression evaluated after the run instead
    (names: the example's globals and `conn`; on airflow, `report`, the probe's JSON, and `sql`).
    """

    query: Code = Field(
        description="SQL (postgres, duckdb) or a Python expression (python, airflow)."
    )
    expect: Any = Field(default=True, description="The value the query must return; default true.")


class ReturnsCheck(_Model):
    """The rows the example's last statement returns, in any order (SQL engines)."""

    returns: list[list[Any]] = Field(
        description="Expected rows; numbers compare as numbers, dates as ISO strings."
    )


class PlanCheck(_Model):
    """The plan of a query after the example: what it must, or must not, show."""

    plan: Code = Field(
        description="The query to EXPLAIN (without EXPLAIN), or `example`: the example's own "
        "last statement, so that breaking the example breaks the check."
    )
    contains: str | None = Field(
        default=None, description="Text the plan must contain, e.g. 'Index Only Scan'."
    )
    excludes: str | None = Field(
        default=None, description="Text the plan must not contain, e.g. 'orders_2024_02'."
    )
    analyze: bool = Field(
        default=False, description="EXPLAIN ANALYZE (runs the query; shows 'Heap Fetches')."
    )


class RaisesCheck(_Model):
    """An error that must be raised: by the example itself, or by `statement` run after it."""

    raises: Code = Field(description="A substring of the error message, case-insensitive.")
    statement: str | None = Field(
        default=None,
        description="Run after the example, this must fail (SQL, or Python on the python "
        "engine). Without it, the example itself must fail.",
    )


class IdempotentCheck(_Model):
    """Run the example a second time; the query's result must (or, for ❌, must not) stay equal."""

    idempotent: Code = Field(description="Query (or Python expression) compared before and after.")
    expect: bool = Field(
        default=True,
        description="true: the result must not change. false: it must change (a ❌ example "
        "shown to misbehave on rerun).",
    )


class ConcurrentCheck(_Model):
    """While the example's transaction is open, `concurrently` runs on a second connection."""

    concurrently: Code = Field(description="SQL run from another session, lock_timeout 2 s.")
    raises: str | None = Field(
        default=None,
        description="If given, the statement must fail with this text (e.g. 'lock timeout'); "
        "otherwise it must succeed.",
    )


class NodeCheck(_Model):
    """sqlglot: the parsed statements must contain (or not) an expression of this class."""

    node: Code = Field(description="sqlglot expression class name, e.g. 'Merge', 'Cluster'.")
    present: bool = Field(default=True, description="false: no such node may appear.")


def _check_kind(value: Any) -> str | None:
    keys = ("concurrently", "idempotent", "plan", "node", "returns", "raises", "query")
    if isinstance(value, dict):
        return next((key for key in keys if key in value), None)
    kinds: dict[type, str] = {
        QueryCheck: "query",
        ReturnsCheck: "returns",
        PlanCheck: "plan",
        RaisesCheck: "raises",
        IdempotentCheck: "idempotent",
        ConcurrentCheck: "concurrently",
        NodeCheck: "node",
    }
    return kinds.get(type(value))


Check = Annotated[
    Annotated[QueryCheck, Tag("query")]
    | Annotated[ReturnsCheck, Tag("returns")]
    | Annotated[PlanCheck, Tag("plan")]
    | Annotated[RaisesCheck, Tag("raises")]
    | Annotated[IdempotentCheck, Tag("idempotent")]
    | Annotated[ConcurrentCheck, Tag("concurrently")]
    | Annotated[NodeCheck, Tag("node")],
    Discriminator(
        _check_kind,
        custom_error_type="check_kind",
        custom_error_message="a check needs one of the keys: query, returns, plan, raises, "
        "idempotent, concurrently, node",
    ),
]

# Which check kinds each engine understands (the rest are reported by `kb.load_kb`).
ENGINE_CHECKS: dict[str, tuple[type[BaseModel], ...]] = {
    "postgres": (QueryCheck, ReturnsCheck, PlanCheck, RaisesCheck, IdempotentCheck,
                 ConcurrentCheck),
    "duckdb": (QueryCheck, ReturnsCheck, PlanCheck, RaisesCheck, IdempotentCheck),
    "python": (QueryCheck, RaisesCheck, IdempotentCheck),
    "airflow": (QueryCheck, IdempotentCheck),
    "sqlglot": (NodeCheck, RaisesCheck),
}


class Proof(_Model):
    """How `plumber verify` proves an example: engine, dependencies, fixtures, checks."""

    engine: Engine = Field(
        description="Where the example runs: a real PostgreSQL server, DuckDB, Airflow 3 "
        "(import + dag.test()), Python with pandas, or sqlglot parsing (Snowflake, BigQuery)."
    )
    requires: list[Slug] = Field(
        default_factory=list,
        description="Examples whose code runs first, in order, in the same database "
        "(their own requirements and setup first).",
    )
    setup: str | None = Field(
        default=None,
        description="Fixture run before the example: SQL for postgres and duckdb; Python for "
        "python; on airflow, the source of the module the DAG imports (see `module`).",
    )
    module: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$")] | None = Field(
        default=None,
        description="airflow: the module name `setup` is saved under, on PYTHONPATH, for the "
        "DAG to import (its stand-in for the team's own code). Default `harness`.",
    )
    run: str | None = Field(
        default=None,
        description="Python run after a Python example's code, e.g. calling the function it "
        "defines; `idempotent` checks run it twice. Airflow: the logical date to test with.",
    )
    checks: list[Check] = Field(
        min_length=1, description="What must be observed; the example passes when all hold."
    )

PROOF_CHECKS: tuple[type[BaseModel], ...] = (
    QueryCheck, ReturnsCheck, PlanCheck, RaisesCheck, IdempotentCheck, ConcurrentCheck, NodeCheck,
)
