"""`airflow`: the answer's DAG imported by Airflow 3, and the SQL its tasks run, replayed.

- dag-imports: every Python block that defines a DAG imports with Airflow 3's DagBag, in the
  sandboxed child process (`sandbox.process`: the `nobody` account, rlimits, a deadline), with
  zero import errors and at least one DAG. Providers and libraries this Airflow lacks get
  stand-ins, named in the detail; deprecation warnings are reported, not failed. Without
  Airflow the property is not scored, with the line that says how to install it;
- task-sql-idempotent: the SQL string constants the tasks execute (`hook.run(...)`,
  `cursor.execute(...)`, `SQLExecuteQueryOperator(sql=...)`, `PostgresOperator(sql=...)`, ...)
  replayed through the pipeline family's properties (re-run, duplicate row, retry in a later
  transaction) on the tables the answer's SQL, else the prompt's, creates. A string is SQL a
  task runs only when a call passes it: a constant named `MERGE_SQL` that no task runs is not
  a MERGE. Templated statements (Jinja, f-string fields, bind parameters) are not replayed;
- no-plain-insert: a task INSERT (or `insert_rows`, `to_sql(if_exists="append")`, COPY)
  without a key guard fails: no ON CONFLICT / MERGE / INSERT OR REPLACE / OVERWRITE, no
  anti-join on the target, no DELETE or TRUNCATE of the target before it. Bookkeeping tables
  (a run log, a watermark) may append.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...answers import Answer
from ..engine import open_session
from ..program import Program, build_program
from ..properties import Finding, ProbeInput, family
from ..run import setup
from .pipeline import _BOOKKEEPING, pipeline_family

PROPERTIES = ("dag-imports", "task-sql-idempotent", "no-plain-insert")
IMPORT_DEADLINE_S = 120.0
_IDEMPOTENCY = ("idempotent-rerun", "no-duplicate-keys", "retry-separate-transactions")
_SQL_START = re.compile(r"^\s*(?:--[^\n]*\n\s*)*(SELECT|INSERT|UPDATE|DELETE|MERGE|WITH|CREATE|"
                        r"TRUNCATE|COPY|ALTER|DROP|CALL|UPSERT|REPLACE|BEGIN)\b", re.I)
_EXECUTES = {"run", "execute", "executemany", "get_records", "get_first", "get_pandas_df",
             "get_df", "read_sql", "read_sql_query", "sql"}
_SQL_KWARGS = {"sql", "query"}
_FIELD = "__field__"  # an f-string or .format() field, for parsing only
_TEMPLATED = re.compile(r"\{\{|\{%|__field__|%\(\w+\)s|%s\b|(?<![:\w]):\w+\b|\?")


@dataclass(frozen=True)
class TaskSql:
    """One SQL statement text (or call) a task runs."""

    task: str  # "task load()" or "operator 'load_orders'"
    where: str  # "Python block 1, line 48"
    sql: str  # the text, fields replaced by __field__
    call: str  # "run", "execute", "SQLExecuteQueryOperator", "insert_rows", "to_sql"
    guarded: bool | None = None  # insert_rows(replace=True) / to_sql(if_exists="replace")
    table: str | None = None  # insert_rows / to_sql target

    @property
    def templated(self) -> bool:
        return bool(_TEMPLATED.search(self.sql))


@family("airflow", properties=PROPERTIES, needs_sql=False)
def airflow_family(probe: ProbeInput) -> list[Finding]:
    executed = task_sql(probe.answer)
    return [dag_imports(probe.answer), task_sql_idempotent(probe, executed),
            no_plain_insert(executed)]


# --- dag-imports ----------------------------------------------------------------------------------


def dag_blocks(answer: Answer) -> list[tuple[int, str]]:
    """(block index, code) of the Python blocks that define a DAG."""
    return [(b.index, b.code) for b in answer.python_blocks
            if re.search(r"@dag\b|\bDAG\s*\(|\bdag\s*\(", b.code)]


def dag_imports(answer: Answer) -> Finding:
    prop = "dag-imports"
    blocks = dag_blocks(answer)
    if not blocks:
        return Finding.not_applicable(prop, "no Python block defines a DAG")
    from ....errors import EnvironmentProblem

    try:
        report = import_dags([code for _, code in blocks])
    except EnvironmentProblem as err:
        return Finding.not_applicable(prop, f"not run: {err}")
    version = report.get("airflow_version", "3")
    problems: list[str] = []
    dags: list[str] = []
    notes: list[str] = []
    for (index, _), found in zip(blocks, report.get("files", []), strict=False):
        for error in found.get("import_errors", []):
            problems.append(f"Python block {index} does not import: {error['message']}")
        if not found.get("import_errors") and not found.get("dag_ids"):
            problems.append(f"Python block {index} imports but defines no DAG")
        dags += found.get("dag_ids", [])
        notes += [f"line {w.get('lineno')}: {w.get('message')}" for w in found.get(
            "warnings", []) if "deprecat" in f"{w.get('category')} {w.get('message')}".lower()]
    if problems:
        return Finding.failed(prop, f"on Airflow {version}: " + "; ".join(problems))
    stand_ins = sorted({m.split(".")[2] if m.startswith("airflow.providers.") else m
                        for m in report.get("stand_ins", []) if m.count(".") <= 2})
    detail = f"imports on Airflow {version} with no import error: {', '.join(dags)}"
    if stand_ins:
        detail += f" (stand-ins for what this Airflow lacks: {', '.join(stand_ins)})"
    if notes:
        detail += f"; {len(notes)} deprecation warning(s), e.g. {notes[0]}"
    return Finding.passed(prop, detail)


def sandbox_airflow() -> tuple[list[str], dict[str, str]]:
    """The command and environment that run the Airflow python as the sandbox account.

    The Airflow python is found the way `plumber verify` finds it (`find_airflow_python`). As
    root the sandbox runs as `nobody`; `plumber setup airflow` made that virtualenv where it can
    read and run it (see `engines.cache`), and a `$PLUMBER_AIRFLOW_PYTHON` it cannot reach is an
    EnvironmentProblem that says so.
    """
    import subprocess

    from ....engines.airflow_env import AIRFLOW_PYTHON_ENV, find_airflow_python
    from ....engines.cache import everyone_can_reach
    from ....errors import EnvironmentProblem
    from ....sandbox.process import python_command

    python = find_airflow_python()
    try:
        command, env = python_command(python)
    except (OSError, ValueError, subprocess.SubprocessError) as err:
        raise EnvironmentProblem(f"Airflow at {python}: {err}") from err
    if not everyone_can_reach(Path(env.get("PYTHONPATH") or python.parent.parent)):
        raise EnvironmentProblem(
            f"Airflow at {python} is not readable by the sandbox account: run `plumber setup "
            f"airflow` (as root it makes one that is) or set {AIRFLOW_PYTHON_ENV} to the python "
            "of an Airflow 3 virtualenv outside /root")
    return command, env


def import_dags(codes: list[str]) -> dict[str, Any]:
    """Import each code as a DAG file in Airflow 3, in the sandbox; the importer's report.
    EnvironmentProblem when Airflow is missing or the importer could not do its job."""
    from ....errors import EnvironmentProblem
    from ....sandbox.process import Limits
    from ....sandbox.zygote import ZygoteFailed, shared_zygote

    command, env = sandbox_airflow()
    here = Path(__file__).resolve().parents[1]
    importer = {"airflow_venv_probe.py": (here.parents[1] / "verify" / "airflow_venv_probe.py")
                .read_text("utf-8"),
                "dag_import.py": (here / "dag_import.py").read_text("utf-8")}
    names = [f"dags/answer_dag_{i + 1}.py" for i in range(len(codes))]
    path = ":".join(p for p in (env.get("PYTHONPATH"), "{folder}") if p)
    zygote = shared_zygote(command, "dag_import", files=importer,
                           env={**env, "PYTHONPATH": path})
    try:
        result = zygote.run(["home", *names], files=dict(zip(names, codes, strict=True)),
                            limits=Limits(wall_s=IMPORT_DEADLINE_S, cpu_s=int(IMPORT_DEADLINE_S),
                                          memory_bytes=4 << 30))
    except ZygoteFailed as err:
        if "No module named 'airflow'" in str(err):
            raise EnvironmentProblem(f"Airflow 3 is not importable in the sandbox: {err}") from err
        raise EnvironmentProblem(f"the DAG importer could not start: {err}") from err
    if result.timed_out:
        return {"files": [{"import_errors": [{"message": f"the import did not finish within "
                                              f"{IMPORT_DEADLINE_S:g} s"}]}] * len(codes)}
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as err:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named 'airflow'" in result.stderr:
            raise EnvironmentProblem(f"Airflow 3 is not importable in the sandbox: {tail}") from err
        raise EnvironmentProblem(f"the DAG importer gave no report: {tail[:200]}") from err
    if not isinstance(report, dict):
        raise EnvironmentProblem("the DAG importer gave no report")
    return report


# --- the SQL the tasks run ------------------------------------------------------------------------


def task_sql(answer: Answer) -> list[TaskSql]:
    """Every SQL text a task runs, in the order written, from the answer's DAG blocks."""
    out: list[TaskSql] = []
    files = sql_files(answer)
    for block in answer.python_blocks:
        try:
            tree = ast.parse(block.code)
        except SyntaxError:
            continue
        out += _Finder(block.index, _strings(tree), files).run(tree)
    return out


_WRITES = re.compile(r"\b(INSERT|MERGE|UPDATE|DELETE)\b", re.I)
_SQL_FILE = re.compile(r"[\w./-]*?([\w-]+\.sql)\b", re.I)


def sql_files(answer: Answer) -> dict[str, str]:
    """File name -> the fenced SQL block that holds it: the file is named in the block's first
    comment lines, else in the prose just above the fence (`sql/load_sales.sql`, the file the
    task runs; of two blocks so named, the one that writes)."""
    lines = answer.text.splitlines()
    named: dict[str, str] = {}
    above: dict[str, list[str]] = {}
    for block in answer.sql_blocks:
        head = [ln for ln in block.code.splitlines()[:3] if ln.strip().startswith(("--", "/*"))]
        for name in _SQL_FILE.findall("\n".join(head)):
            named.setdefault(name.lower(), block.code)
        prose = [ln for ln in lines[max(0, block.line - 4):block.line - 1] if ln.strip()][-2:]
        for name in _SQL_FILE.findall("\n".join(prose)):
            above.setdefault(name.lower(), []).append(block.code)
    for name, codes in above.items():
        writes = [c for c in codes if _WRITES.search(c)]
        named.setdefault(name, (writes or codes)[0])
    return named


def _strings(tree: ast.Module) -> dict[str, ast.expr]:
    """Name -> the expression last assigned to it (module constants and task locals)."""
    names: dict[str, ast.expr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name):
            names[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and (
                node.value is not None):
            names[node.target.id] = node.value
    return names


class _Finder:
    def __init__(self, block: int, names: dict[str, ast.expr], files: dict[str, str]) -> None:
        self.block, self.names, self.files = block, names, files
        self.found: list[TaskSql] = []

    def run(self, tree: ast.Module) -> list[TaskSql]:
        self._visit(tree, "the DAG file")
        return self.found

    def _visit(self, node: ast.AST, task: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            task = f"task {node.name}()"
        if isinstance(node, ast.Call):
            self._call(node, task)
        for child in ast.iter_child_nodes(node):
            self._visit(child, task)

    def _add(self, node: ast.Call, task: str, call: str, value: ast.expr | None, **kw: object
             ) -> None:
        where = f"Python block {self.block}, line {node.lineno}"
        if value is None:
            self.found.append(TaskSql(task, where, "", call, **kw))  # type: ignore[arg-type]
            return
        for text in self._resolve(value, 0):
            file = re.fullmatch(r"\s*[\w./-]*?([\w-]+\.sql)\s*", text, re.I)
            if file and file.group(1).lower() in self.files:
                where += f" ({file.group(1)})"
                text = self.files[file.group(1).lower()]
            if _SQL_START.match(text):
                self.found.append(TaskSql(task, where, text, call))

    def _call(self, node: ast.Call, task: str) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else (
            func.id if isinstance(func, ast.Name) else "")
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if name.endswith(("Operator", "Sensor")) or name in ("task",):
            task_id = keywords.get("task_id")
            label = (f"operator '{task_id.value!s}'" if isinstance(task_id, ast.Constant)
                     else f"operator {name}")
            for key in _SQL_KWARGS & set(keywords):
                self._add(node, label, name, keywords[key])
            return
        if name in _EXECUTES:
            value = node.args[0] if node.args else next(
                (keywords[k] for k in _SQL_KWARGS if k in keywords), None)
            if value is not None:
                self._add(node, task, name, value)
        elif name == "insert_rows":
            table = self._first_text(node.args[0] if node.args else keywords.get("table"))
            replace_kw = keywords.get("replace")
            guarded = isinstance(replace_kw, ast.Constant) and bool(replace_kw.value)
            self._add(node, task, name, None, guarded=guarded, table=table)
        elif name == "to_sql":
            table = self._first_text(node.args[0] if node.args else keywords.get("name"))
            mode = keywords.get("if_exists")
            text = mode.value if isinstance(mode, ast.Constant) else "fail"
            if text == "append":
                self._add(node, task, name, None, guarded=False, table=table)
            elif text == "replace":
                self._add(node, task, name, None, guarded=True, table=table)

    def _first_text(self, node: ast.expr | None) -> str | None:
        texts = self._resolve(node, 0) if node is not None else []
        return texts[0].split(".")[-1].strip('"').lower() if texts else None

    def _resolve(self, node: ast.expr, depth: int) -> list[str]:
        """The string(s) an expression evaluates to, fields replaced by __field__."""
        if depth > 8:
            return []
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else _FIELD for v in node.values]
            return ["".join(str(p) for p in parts)]
        if isinstance(node, ast.Name) and node.id in self.names:
            return self._resolve(self.names[node.id], depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self._resolve(node.left, depth + 1), self._resolve(node.right, depth + 1)
            return [left[0] + right[0]] if len(left) == 1 and len(right) == 1 else []
        if isinstance(node, ast.List | ast.Tuple):
            return [t for e in node.elts for t in self._resolve(e, depth + 1)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # Path / "x.sql"
            return [t for t in self._resolve(node.right, depth + 1) if _SQL_FILE.fullmatch(t)]
        if isinstance(node, ast.Call) and _opens_file(node) and node.args:
            return [t for t in self._resolve(node.args[-1], depth + 1) if _SQL_FILE.fullmatch(t)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            inner = self._resolve(node.func.value, depth + 1)
            if node.func.attr in ("read_text", "read"):  # the file's text: its fenced block
                return inner
            if node.func.attr == "format":
                return [re.sub(r"\{[^{}]*\}", _FIELD, t) for t in inner]
            if node.func.attr in ("strip", "rstrip", "lstrip", "dedent"):
                return inner
        if isinstance(node, ast.Call) and node.args and (
                ast.unparse(node.func).endswith("dedent")):
            return self._resolve(node.args[0], depth + 1)
        return []


def _opens_file(node: ast.Call) -> bool:
    """`open("x.sql")`, `Path("x.sql")`, `Path(__file__).with_name("x.sql")`,
    `.joinpath("sql", "x.sql")`: the call names the file a task reads its SQL from."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else (
        func.id if isinstance(func, ast.Name) else "")
    return name in ("open", "Path", "PurePath", "with_name", "joinpath")


# --- no-plain-insert ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statement:
    origin: TaskSql
    kind: str  # INSERT, COPY, DELETE, TRUNCATE, CREATE, MERGE, UPDATE, OTHER
    table: str | None
    guarded: bool


def statements(executed: list[TaskSql]) -> list[_Statement]:
    """Each executed SQL text split into statements, with the table each one writes."""
    from ...scorers.sql import parse_sql

    out: list[_Statement] = []
    for item in executed:
        if not item.sql:
            out.append(_Statement(item, "INSERT", item.table, bool(item.guarded)))
            continue
        trees, _ = parse_sql(item.sql.replace(_FIELD, "field_value"), "postgres")
        texts = [t.sql() for t in trees if t is not None] if trees else [item.sql]
        for text, tree in zip(texts, trees or [None] * len(texts), strict=False):
            out.append(_statement(item, text, tree))
    return out


def _statement(item: TaskSql, text: str, tree: object) -> _Statement:
    from sqlglot import exp

    upper = " ".join(text.upper().split())
    first = upper.split(" ", 1)[0] if upper else ""
    table = _written_table(tree, text)
    if isinstance(tree, exp.Insert) or first in ("INSERT", "UPSERT", "REPLACE"):
        guarded = bool(re.search(r"\bON\s+CONFLICT\b|\bOR\s+REPLACE\b|\bOVERWRITE\b|"
                                 r"\bON\s+DUPLICATE\s+KEY\b", upper)) or first != "INSERT"
        source = tree.expression if isinstance(tree, exp.Insert) else None
        if source is not None and table and any(
                str(t.name).lower() == table for t in source.find_all(exp.Table)):
            guarded = True  # an anti-join on the target: NOT EXISTS, EXCEPT, LEFT JOIN IS NULL
        return _Statement(item, "INSERT", table, guarded)
    if first == "COPY" and " FROM " in f" {upper} ":
        return _Statement(item, "COPY", table, False)
    kind = first if first in ("DELETE", "TRUNCATE", "CREATE", "MERGE", "UPDATE", "DROP") else (
        "OTHER")
    return _Statement(item, kind, table, False)


def _written_table(tree: object, text: str) -> str | None:
    from sqlglot import exp

    node = tree.this if isinstance(tree, exp.Insert | exp.Delete | exp.Create | exp.Copy |
                                   exp.Merge | exp.Update | exp.Drop) else None
    if isinstance(tree, exp.TruncateTable) and tree.expressions:
        node = tree.expressions[0]
    if node is not None:
        table = node if isinstance(node, exp.Table) else node.find(exp.Table)
        if table is not None and table.name:
            return str(table.name).lower()
    match = re.search(r"\b(?:INTO|TABLE|FROM|COPY|UPDATE)\s+(?:ONLY\s+)?([\w\".]+)", text, re.I)
    return match.group(1).replace('"', "").split(".")[-1].lower() if match else None


def no_plain_insert(executed: list[TaskSql]) -> Finding:
    prop = "no-plain-insert"
    found = statements(executed)
    inserts = [s for s in found if s.kind in ("INSERT", "COPY")]
    if not inserts:
        return Finding.not_applicable(prop, "no task INSERTs")
    cleared: set[str] = set()
    for statement in found:
        if statement.kind in ("DELETE", "TRUNCATE", "CREATE", "DROP") and statement.table:
            cleared.add(statement.table)
            continue
        if statement.kind not in ("INSERT", "COPY") or statement.guarded:
            continue
        table = statement.table or "?"
        if table in cleared or _BOOKKEEPING.search(table):
            continue
        origin = statement.origin
        how = f"{origin.call}()" if not origin.sql else statement.kind
        return Finding.failed(prop, f"{origin.task} ({origin.where}) appends to {table} with "
                              f"a plain {how}: no ON CONFLICT, MERGE or overwrite, and nothing "
                              "deletes the slice first, so a retry or re-run stores the rows "
                              "twice")
    return Finding.passed(prop, f"{len(inserts)} task INSERT(s) guard their key (upsert, "
                          "overwrite, anti-join, or the slice deleted first)")


# --- task-sql-idempotent --------------------------------------------------------------------------


def task_sql_idempotent(probe: ProbeInput, executed: list[TaskSql]) -> Finding:
    prop = "task-sql-idempotent"
    replayable = [t for t in executed if t.sql and not t.templated]
    writes = [s for s in statements(replayable) if s.kind in ("INSERT", "MERGE", "UPDATE")]
    if not writes:
        templated = sum(1 for t in executed if t.templated)
        return Finding.not_applicable(prop, "no task runs a fixed (untemplated) SQL load" + (
            f"; {templated} templated statement(s) not replayed" if templated else ""))
    targets = {s.table for s in writes if s.table}
    combined = _combined_program(probe, replayable, targets)
    if isinstance(combined, str):
        return Finding.not_applicable(prop, combined)
    engine = combined.engine
    if engine is None or not combined.runnable:
        return Finding.not_applicable(prop, f"not executed: {combined.not_executed or 'no engine'}")
    with open_session(probe.context.resources, engine) as session:
        execution = setup(session, combined)
        if not execution.ok:
            return Finding.not_applicable(prop, "the tables the tasks write cannot be created: "
                                          + execution.failures[0])
        inner = ProbeInput(probe.answer, combined, probe.prompt, "pipeline", probe.context,
                           execution)
        found = {f.property: f for f in pipeline_family(inner)}
    verdicts = [found[p] for p in _IDEMPOTENCY if p in found and found[p].status != "n/a"]
    failed = [f for f in verdicts if f.status == "fail"]
    if failed:
        return Finding.failed(prop, "the tasks' SQL, replayed: " + "; ".join(
            f"{f.property}: {f.detail}" for f in failed))
    if not verdicts:
        reasons = {f.detail for f in found.values()}
        return Finding.not_applicable(prop, "the tasks' SQL could not be replayed: "
                                      + "; ".join(sorted(reasons))[:300])
    return Finding.passed(prop, "the tasks' SQL, replayed: " + "; ".join(
        f"{f.property}: {f.detail}" for f in verdicts))


def _combined_program(probe: ProbeInput, executed: list[TaskSql], targets: set[str]
                      ) -> Program | str:
    """The answer's SQL (else the prompt's, when the answer creates none of `targets`), then
    the tasks' SQL in the order written, as one Program."""
    own = probe.program
    ddl_from = own if targets & own.created else probe.prompt_program
    if not targets & ddl_from.created:
        return (f"the tasks write {', '.join(sorted(targets))}, which neither the answer nor the "
                "prompt creates")
    blocks = [f"```sql\n{s.original.rstrip().rstrip(';')};\n```" for s in ddl_from.steps
              if s.kind in ("ddl", "seed") and s.where != "(the sandbox)"]
    blocks += [f"```sql\n{t.sql.rstrip().rstrip(';')};\n```" for t in executed]
    text = "\n\n".join(blocks)
    program = build_program(Answer(text, "file"), own.dialect)
    where = [f"{t.task}, {t.where}" for t in executed]
    first_task_block = len(blocks) - len(executed) + 1
    steps = tuple(replace(s, where=_task_where(s.where, first_task_block, where))
                  for s in program.steps)
    return replace(program, steps=steps)


def _task_where(where: str, first: int, task_where: list[str]) -> str:
    match = re.match(r"SQL block (\d+)", where)
    if not match or int(match.group(1)) < first:
        return where
    index = int(match.group(1)) - first
    return task_where[index] if index < len(task_where) else where

