"""Result types and the driver of `plumber verify`: each example runs on its engine, and passes
when every check of its proof observes what the example claims.

An engine module exposes `prove(example, deps, env) -> list[str]`: one line per claim that did
not hold ("claimed ...; observed ..."), empty when the example is proven. Engines raise our
errors only for what stops the whole run (no PostgreSQL, no Airflow): those leave `verify` as
they are (exit 2), never as a failed example.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EnvironmentProblem, InputError, Problem
from ..kb import Example, KnowledgeBase, required_ids
from ..schema_errors import suggest

AIRFLOW_PYTHON_ENV = "PLUMBER_AIRFLOW_PYTHON"
JSON_VERSION = 1


@dataclass(frozen=True)
class Outcome:
    """What happened to one example."""

    example: str
    engine: str
    verdict: str
    passed: bool
    seconds: float
    checks: int
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """Every outcome of one `verify` run, in knowledge-base order."""

    outcomes: tuple[Outcome, ...]
    seconds: float
    postgres: str

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "passed": not self.failed,
            "seconds": round(self.seconds, 3),
            "postgres": self.postgres,
            "outcomes": [asdict(o) for o in self.outcomes],
        }


@dataclass
class Env:
    """What the engines share during one run: a server, an interpreter, lazily started."""

    postgres_dsn: str | None = None
    airflow_python: Path | None = None
    _start_postgres: Callable[[], str] | None = None
    postgres_label: str = "not used"
    notes: list[str] = field(default_factory=list)

    def postgres(self) -> str:
        """The DSN of the server examples run on (each in its own fresh database)."""
        if self.postgres_dsn is None:
            if self._start_postgres is None:  # pragma: no cover - verify() always sets one
                raise InputError("no PostgreSQL server")
            self.postgres_dsn = self._start_postgres()
        return self.postgres_dsn


Prover = Callable[[Example, Sequence[Example], Env], list[str]]


def _provers() -> dict[str, Prover]:
    from . import airflow, duckdb, postgres, python, sqlglot_check

    return {
        "postgres": postgres.prove,
        "duckdb": duckdb.prove,
        "python": python.prove,
        "airflow": airflow.prove,
        "sqlglot": sqlglot_check.prove,
    }


def select(kb: KnowledgeBase, only: Sequence[str] = ()) -> list[Example]:
    """The examples to verify: all with a proof, or those named by `only` (an unknown id or one
    without a proof is bad input)."""
    examples = provable(kb)
    if not only:
        return examples
    known = {ex.id: ex for ex in kb.examples()}
    problems = []
    for name in only:
        if name not in known:
            hint = suggest(name, [ex.id for ex in examples])
            problems.append(Problem(f"no example has id '{name}'{hint}; `plumber verify --list` "
                                    "prints every id", field="--only"))
        elif known[name].proof is None:
            problems.append(Problem(f"example '{name}' is a {known[name].language} example "
                                    "with no proof: nothing to run", field="--only"))
    if problems:
        raise InputError(problems)
    return [ex for ex in examples if ex.id in only]


def provable(kb: KnowledgeBase) -> list[Example]:
    """Every example with a proof, in knowledge-base order: what `verify` runs."""
    return [ex for ex in kb.examples() if ex.proof is not None]


def claim(example: Example) -> str:
    """What the example claims, in a line: its verdict and its caption."""
    caption = " ".join((example.caption or "").replace("*", "").split())
    return f"{example.verdict}: {caption}" if caption else example.verdict


def verify(
    kb: KnowledgeBase,
    *,
    postgres_dsn: str | None = None,
    only: Sequence[str] = (),
    airflow_python: Path | None = None,
    progress: Callable[[Outcome], None] | None = None,
    starting: Callable[[Example], None] | None = None,
) -> Report:
    """Prove the selected examples. Without `postgres_dsn`, a throwaway cluster is started on
    first need and removed at the end. `starting` is called as each example starts, `progress`
    as it ends."""
    started = time.perf_counter()
    chosen = select(kb, only)
    by_id = {ex.id: ex for ex in kb.examples()}
    provers = _provers()
    with contextlib.ExitStack() as stack:
        env = Env(postgres_dsn=postgres_dsn, airflow_python=airflow_python)
        if postgres_dsn is not None:
            if any(_needs_postgres(ex, by_id) for ex in chosen):
                _check_server(postgres_dsn)
            env.postgres_label = "given DSN"
        else:
            env._start_postgres = lambda: _throwaway(stack, env)
        outcomes = []
        for ex in chosen:
            if starting:
                starting(ex)
            outcome = prove_one(ex, [by_id[r] for r in required_ids(by_id, ex.id)], env, provers)
            outcomes.append(outcome)
            if progress:
                progress(outcome)
        return Report(tuple(outcomes), time.perf_counter() - started, env.postgres_label)


def _needs_postgres(example: Example, by_id: dict[str, Example]) -> bool:
    ids = [example.id, *required_ids(by_id, example.id)]
    proofs = [by_id[i].proof for i in ids]
    return any(proof is not None and proof.engine == "postgres" for proof in proofs)


def _check_server(dsn: str) -> None:
    """One clear line when the given server cannot be reached, rather than a failure per
    example."""
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=10, autocommit=True).close()
    except psycopg.Error as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EnvironmentProblem(
            f"cannot connect to the PostgreSQL server given by --postgres: {reason}") from err


def _throwaway(stack: contextlib.ExitStack, env: Env) -> str:
    from ..engines.postgres_binaries import describe
    from ..pgcluster import throwaway_cluster

    dsn = stack.enter_context(throwaway_cluster())
    env.postgres_label = f"throwaway cluster, {describe()[0]}"
    return dsn


def prove_one(
    ex: Example, deps: Sequence[Example], env: Env, provers: dict[str, Prover]
) -> Outcome:
    """Run one example's proof; an unexpected exception is a failure with its first line.
    Bad input and a missing engine stop the run instead (they are not the example's fault);
    with PLUMBER_DEBUG set, so does any exception, for its traceback."""
    assert ex.proof is not None
    started = time.perf_counter()
    try:
        failures = provers[ex.proof.engine](ex, deps, env)
    except (InputError, EnvironmentProblem):
        raise
    except Exception as err:  # the harness broke: report it against the example
        if os.environ.get("PLUMBER_DEBUG"):
            raise
        failures = [f"could not run: {error_line(err)}"]
    return Outcome(
        example=ex.id,
        engine=ex.proof.engine,
        verdict=ex.verdict,
        passed=not failures,
        seconds=time.perf_counter() - started,
        checks=len(ex.proof.checks),
        failures=tuple(failures),
    )


def error_line(err: BaseException) -> str:
    """`Type: first line of the message`, the way a person would quote an error."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def matches(err: BaseException | None, expected: str) -> bool:
    return err is not None and expected.lower() in f"{type(err).__name__}: {err}".lower()


def short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
