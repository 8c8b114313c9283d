"""Python and Airflow scorers: the answer's Python parses; a DAG is written for Airflow 3."""

from __future__ import annotations

import ast
import re
from typing import Literal

from ..answers import Answer, CodeBlock
from . import Context, Score, ScoreFn, scorer


def _parsed(answer: Answer) -> list[tuple[CodeBlock, ast.Module | SyntaxError]]:
    key = ("python",)
    cached = answer.cache.get(key)
    if cached is None:
        cached = []
        for block in answer.python_blocks:
            try:
                cached.append((block, ast.parse(block.code)))
            except SyntaxError as err:
                cached.append((block, err))
        answer.cache[key] = cached
    return cached


@scorer("python_parses")
def python_parses(*, min_blocks: int = 1) -> ScoreFn:
    """Every fenced Python block parses (Python 3.11 grammar).

    Passes: a ```python block `from airflow.sdk import dag, task`.
    Fails:  `def load(:` with "Python block 1 (line 5) does not parse: invalid syntax at line 1".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        parsed = _parsed(answer)
        if len(parsed) < min_blocks:
            return Score.fail(f"expected at least {min_blocks} fenced Python block(s), found "
                              f"{len(parsed)}")
        for block, tree in parsed:
            if isinstance(tree, SyntaxError):
                return Score.fail(f"Python block {block.index} (line {block.line}) does not parse:"
                                  f" {tree.msg} at line {tree.lineno}")
        return Score.ok(f"{len(parsed)} Python block(s) parse")

    return score


_REMOVED_IMPORTS = {
    "airflow.operators.python_operator": "airflow.providers.standard.operators.python",
    "airflow.operators.bash_operator": "airflow.providers.standard.operators.bash",
    "airflow.operators.dummy_operator": "airflow.providers.standard.operators.empty",
    "airflow.operators.dummy": "airflow.providers.standard.operators.empty",
    "airflow.utils.dates": "pendulum or datetime",
    "airflow.contrib": "the provider packages",
}
_MOVED_IMPORTS = {
    "airflow.operators.python": "airflow.providers.standard.operators.python",
    "airflow.operators.bash": "airflow.providers.standard.operators.bash",
    "airflow.operators.empty": "airflow.providers.standard.operators.empty",
    "airflow.sensors.external_task": "airflow.providers.standard.sensors.external_task",
    "airflow.decorators": "airflow.sdk",
    "airflow.models.dag": "airflow.sdk",
    "airflow.datasets": "airflow.sdk (Asset)",
}
_REMOVED_KWARGS = {
    "schedule_interval": "schedule=",
    "timetable": "schedule=",
    "provide_context": "nothing (context is passed automatically)",
    "execution_date": "logical_date",
}
_DATASET_CALLS = re.compile(
    r"\b(read_sql\w*|read_csv|read_parquet|read_json|DataFrame|fetchall|fetch_df|to_dict|"
    r"to_json|to_pandas|get_pandas_df|get_df|get_records|df)\b"
)


def _imports(tree: ast.Module) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
    return out


def _task_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    def is_task(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        text = ast.unparse(target)
        return text == "task" or text.startswith("task.")

    return [node for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and any(map(is_task, node.decorator_list))]


def _big_returns(function: ast.FunctionDef) -> list[str]:
    """Return values of a task that look like whole datasets (DataFrames, fetched rows)."""
    assigned: dict[str, str] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
            node.targets[0], ast.Name
        ):
            assigned[node.targets[0].id] = ast.unparse(node.value)
    found = []
    for node in ast.walk(function):
        if isinstance(node, ast.Return) and node.value is not None:
            text = ast.unparse(node.value)
            origin = assigned.get(text, text) if isinstance(node.value, ast.Name) else text
            if _DATASET_CALLS.search(origin) or _DATASET_CALLS.search(text):
                found.append(text)
    return found


@scorer("airflow3_dag")
def airflow3_dag(*, aspects: list[Literal["api", "xcom"]] | None = None) -> ScoreFn:
    """The answer's Python defines a DAG on the Airflow 3 API: `airflow.sdk` imports, `schedule=`,
    no removed imports or arguments (aspect `api`), and no task returning a whole dataset
    through XCom (aspect `xcom`). Both by default; a rubric whose DAG import is decided by
    execution (`behaves` dag-imports) keeps only `xcom`.

    Passes: `from airflow.sdk import dag, task` ... `@dag(schedule="@daily", ...)` with tasks that
            return a path or a row count.
    Fails:  `from airflow.operators.python import PythonOperator` with "line 2 imports
            airflow.operators.python, moved in Airflow 3 to
            airflow.providers.standard.operators.python"; `@dag(schedule_interval=...)`;
            a task that ends `return df` after `df = pd.read_sql(...)`.
    """

    wanted = set(aspects or ("api", "xcom"))

    def score(answer: Answer, ctx: Context) -> Score:
        parsed = _parsed(answer)
        if not parsed:
            return Score.fail("the answer has no fenced Python block with a DAG")
        found = _dag_problems(parsed)
        problems = [text for aspect, text in found if aspect in wanted]
        if problems:
            return Score.fail("; ".join(problems))
        if wanted == {"xcom"}:
            return Score.ok("no task passes a whole dataset through XCom")
        return Score.ok("a DAG on the Airflow 3 API (airflow.sdk, schedule=, small XComs)")

    return score


def _dag_problems(parsed: list[tuple[CodeBlock, ast.Module | SyntaxError]]
                  ) -> list[tuple[str, str]]:
    """(aspect, problem) for every way the DAG blocks miss the Airflow 3 API or XCom rules."""
    problems: list[tuple[str, str]] = []
    uses_sdk = defines_dag = False
    for block, tree in parsed:
        where = f"Python block {block.index}"
        if isinstance(tree, SyntaxError):
            problems.append(("api", f"{where} does not parse: {tree.msg} at line {tree.lineno}"))
            continue
        for module, line in _imports(tree):
            if module == "airflow.sdk" or module.startswith("airflow.sdk."):
                uses_sdk = True
            for old, new in {**_REMOVED_IMPORTS, **_MOVED_IMPORTS}.items():
                if module == old or module.startswith(old + "."):
                    problems.append(("api", f"{where} line {line} imports {module}, which "
                                     f"Airflow 3 replaced with {new}"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                callee = ast.unparse(node.func)
                if callee in ("dag", "DAG") or callee.endswith((".dag", ".DAG")):
                    defines_dag = True
                for keyword in node.keywords:
                    if keyword.arg in _REMOVED_KWARGS:
                        problems.append(("api", f"{where} line {node.lineno} passes "
                                         f"{keyword.arg}=, removed in Airflow 3; use "
                                         f"{_REMOVED_KWARGS[keyword.arg]}"))
                if callee.endswith("xcom_push"):
                    value = " ".join(ast.unparse(a) for a in [*node.args, *node.keywords])
                    if _DATASET_CALLS.search(value):
                        problems.append(("xcom", f"{where} line {node.lineno} pushes a "
                                         "dataset to XCom; pass a path or a key instead"))
            elif (isinstance(node, ast.FunctionDef) and any(
                ast.unparse(d).split("(")[0] in ("dag", "DAG") for d in node.decorator_list
            )) or (isinstance(node, ast.With) and any(
                ast.unparse(item.context_expr).startswith("DAG(") for item in node.items
            )):
                defines_dag = True
        for function in _task_functions(tree):
            for value in _big_returns(function):
                problems.append(("xcom", f"{where} task {function.name}() returns {value}, a "
                                     "whole dataset through XCom; write it to storage and "
                                     "return the path or key"))
    if not defines_dag:
        problems.append(("api", "no DAG is defined (no @dag function or DAG(...))"))
    if not uses_sdk:
        problems.append(("api", "nothing is imported from airflow.sdk (Airflow 3's "
                         "authoring API)"))
    return problems
