"""Prove a Python example in this interpreter (pandas available): its code runs unchanged, with
the names the proof's `setup` defines (stub APIs returning fixture rows), then `run` calls it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..kb import Example
from .checks import evaluate
from .core import Env


def exec_example(
    ex: Example, namespace: dict[str, Any], *, run: bool, define: bool = True
) -> tuple[dict[str, Any], BaseException | None]:
    """Execute the example's code (when `define`) and its proof's `run` (when `run`) in
    `namespace`; return the namespace and the exception raised, if any."""
    assert ex.proof is not None
    namespace.setdefault("__name__", f"example_{ex.id.replace('-', '_')}")
    parts = [(ex.code, ex.id)] if define else []
    if run and ex.proof.run:
        parts.append((ex.proof.run, f"{ex.id} run"))
    for source, name in parts:
        try:
            exec(compile(source, f"<{name}>", "exec"), namespace)
        except Exception as err:
            return namespace, err
    return namespace, None


class _Session:
    def __init__(self, ex: Example, namespace: dict[str, Any]) -> None:
        self.ex, self.namespace, self.defined = ex, namespace, False

    def run_example(self) -> BaseException | None:
        _, err = exec_example(self.ex, self.namespace, run=True, define=not self.defined)
        self.defined = True
        return err

    def value(self, query: str) -> Any:
        return eval(compile(query, f"<{self.ex.id} check>", "eval"), self.namespace)

    def result(self, query: str) -> Any:
        return repr(self.value(query))  # a snapshot: the object itself may be mutated later

    def returned(self) -> list[tuple[Any, ...]] | None:  # pragma: no cover - rejected by kb.py
        return None

    def plan(self, query: str, analyze: bool) -> str:  # pragma: no cover - rejected by kb.py
        raise NotImplementedError("the python engine has no plans")

    def statement(self, statement: str) -> BaseException | None:
        try:
            exec(compile(statement, f"<{self.ex.id} statement>", "exec"), self.namespace)
        except Exception as err:
            return err
        return None


def prove(ex: Example, deps: Sequence[Example], env: Env) -> list[str]:
    assert ex.proof is not None
    namespace: dict[str, Any] = {}
    for dep in deps:
        _, err = exec_example(dep, namespace, run=False)
        if err is not None:
            return [f"required example '{dep.id}' failed: {type(err).__name__}: {err}"]
    if ex.proof.setup:
        exec(compile(ex.proof.setup, f"<{ex.id} setup>", "exec"), namespace)
    session = _Session(ex, namespace)
    return evaluate(ex.proof, session, session.run_example())
