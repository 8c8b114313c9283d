"""The answer as a program: every SQL statement of its fenced blocks, in order, classified.

Kinds, and what the execution model does with each:

- `ddl`: CREATE / ALTER / COMMENT / DROP-before-CREATE: the setup, run in order by `run.setup`.
- `seed`: INSERT of literal rows into a table the answer creates: run with the setup, where the
  answer put it (a lookup table's rows before the facts that reference them). Literal rows
  placed after the answer's first load, or stamping the run into a bookkeeping table
  (`INSERT INTO etl_watermark VALUES (now())`), are part of the load sequence instead.
- `load`: the answer's INSERT..SELECT / upsert / UPDATE / DELETE / MERGE / TRUNCATE / overwrite
  that moves data: never part of the setup; replayed by the probes that test loads.
- `maintenance`: SCD2 closing, retention (DELETE by age, DROP/DETACH of a partition), backfill:
  replayed by the probes that test them.
- `query`: SELECT / EXPLAIN / SHOW.
- `example`: a statement the answer marks as an example of a later operation, one that acts
  on an object the answer never creates, or one it quotes from the prompt before giving its
  own version (the user's broken DDL, the query to rewrite), or a write that checks the
  answer (under its "How to verify" heading, or literal rows its comment says are refused):
  reported, never failed.
- `skip`: what a sandbox does not run (GRANT, roles, transaction control, COPY from files, psql
  meta-commands, extensions, orchestration objects such as Snowflake tasks).

Snowflake and BigQuery answers are translated to DuckDB with sqlglot when the translation is
faithful for the statements used; storage-only clauses (clustering, partitioning, table options,
comments) are dropped with a note. Otherwise the Program says `not_executed`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..answers import Answer
from ..scorers.sql import without_jinja
from .catalog import DEFAULT_SCHEMAS
from .engine import Engine

StepKind = Literal["ddl", "seed", "load", "maintenance", "query", "example", "skip"]
SETUP_KINDS: tuple[StepKind, ...] = ("ddl", "seed")
WAREHOUSES = {"snowflake", "bigquery"}


@dataclass(frozen=True)
class Step:
    """One statement of the answer. `sql` is what runs on the engine (translated for a
    warehouse answer); `original` is what the answer wrote."""

    index: int
    kind: StepKind
    sql: str
    original: str
    where: str  # "SQL block 2 (line 14), statement 3"
    statement: str  # "CREATE TABLE", "INSERT", "MERGE", ...
    target: str | None  # the table (or object) it creates or writes, lower case, named as
    # the catalog names it: bare, or `schema.table` where the answer creates that name in two
    # schemas and this one is outside the default schema
    note: str = ""  # why it is an example, skipped or maintenance
    tree: Any = field(default=None, compare=False, repr=False)  # sqlglot tree, answer's dialect


@dataclass(frozen=True)
class Program:
    """The answer's SQL, ready to run on `engine` (None when it cannot run anywhere)."""

    dialect: str
    engine: Engine | None
    steps: tuple[Step, ...]
    not_executed: str | None = None  # "<feature> has no DuckDB equivalent"
    error: str | None = None  # the SQL could not be split into statements
    notes: tuple[str, ...] = ()
    shared: frozenset[str] = frozenset()  # table names the answer creates in two schemas
    # the catalog each setup outcome leaves, read once (run.setup): every fresh database a
    # family opens gets the same setup, so the same tables
    catalogs: dict[object, Any] = field(default_factory=dict, init=False, compare=False,
                                        hash=False, repr=False)

    @property
    def runnable(self) -> bool:
        return self.engine is not None and self.not_executed is None and self.error is None

    def of_kind(self, *kinds: StepKind) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.kind in kinds)

    @property
    def setup(self) -> tuple[Step, ...]:
        return self.of_kind(*SETUP_KINDS)

    @property
    def created(self) -> frozenset[str]:
        """Names of the objects the answer's own setup creates."""
        return frozenset(s.target for s in self.steps
                         if s.kind == "ddl" and s.statement.startswith("CREATE") and s.target)

    def writes(self, table: str | None = None,
               kinds: Iterable[StepKind] = ("load", "maintenance")) -> tuple[Step, ...]:
        """The statements of `kinds` (in the answer's order) that write into `table` (any table
        when None); `table` is matched case-insensitively, bare or schema-qualified."""
        wanted = set(kinds)
        name = self.name(table) if table else None
        return tuple(s for s in self.steps
                     if s.kind in wanted and (name is None or s.target == name))

    def name(self, table: str) -> str:
        """`table` (bare or `schema.table`) named as steps and the catalog name it."""
        schema, _, bare = table.lower().replace('"', "").rpartition(".")
        schema = schema.split(".")[-1]
        if schema and schema not in DEFAULT_SCHEMAS and bare in self.shared:
            return f"{schema}.{bare}"
        return bare

    def tables_in(self, step: Step) -> frozenset[str]:
        """The tables `step` reads or writes (CTE names excluded), named as the catalog names
        them: `staging.crm_contacts` and `crm_contacts` stay two tables."""
        from sqlglot import exp

        if step.tree is None:
            return frozenset()
        ctes = {str(c.alias).lower() for c in step.tree.find_all(exp.CTE)}
        return frozenset(_key(t, self.shared) for t in step.tree.find_all(exp.Table)
                         if t.name and (t.db or str(t.name).lower() not in ctes))


def build_program(answer: Answer, dialect: str, prompt: str = "",
                  given: tuple[str, ...] = ()) -> Program:
    """The answer's SQL as a Program for `dialect` (cached on the answer); statements quoted
    from `prompt` and superseded by the answer's own are examples. `given` are a case's own
    statements (the tables the prompt says exist), run first as part of the setup."""
    key = ("program", dialect, hash(prompt), given)
    cached = answer.cache.get(key)
    if cached is None:
        cached = _build(answer, dialect, prompt, given)
        answer.cache[key] = cached
    assert isinstance(cached, Program)
    return cached


# --- splitting ------------------------------------------------------------------------------------

_META = re.compile(r"^[ \t]*\\.*$", re.MULTILINE)  # psql meta-commands: \c, \set, \i ...


@dataclass(frozen=True)
class _Raw:
    sql: str
    lead: str  # text between the previous statement and this one (its comments)
    where: str
    block_intro: str  # the prose just before the block's fence
    tail: str = ""  # a comment after the statement's semicolon, on the same line
    block_prose: str = ""  # the prose just before the block, for every statement of it
    section: str = ""  # the heading the block sits under ("How to verify")


# An Airflow task's SQL is a Jinja template of the run: it is executed as the daily run of
# 2024-06-01 (data interval 2024-06-01 00:00 to 2024-06-02 00:00 UTC), so a date a template
# puts in a literal is a date, not a placeholder the engine refuses.
_SAMPLE_RUN = {
    "ds": "2024-06-01", "ds_nodash": "20240601",
    "data_interval_start": "2024-06-01T00:00:00+00:00",
    "data_interval_end": "2024-06-02T00:00:00+00:00",
    "logical_date": "2024-06-01T00:00:00+00:00", "ts": "2024-06-01T00:00:00+00:00",
    "ts_nodash": "20240601T000000", "prev_ds": "2024-05-31", "next_ds": "2024-06-02",
    "prev_data_interval_start_success": "2024-05-31T00:00:00+00:00",
    "prev_data_interval_end_success": "2024-06-01T00:00:00+00:00",
    "macros.ds_add(ds, -1)": "2024-05-31", "macros.ds_add(ds, 1)": "2024-06-02",
}
_RUN_MACRO = re.compile(
    r"\{\{\s*(" + "|".join(re.escape(k) for k in sorted(_SAMPLE_RUN, key=len, reverse=True))
    + r")\s*(?:\|\s*(ds|ts)\s*)?\}\}")


def _with_sample_run(code: str) -> str:
    """`code` with Airflow's run macros (`{{ ds }}`, `{{ data_interval_start }}`, ...) rendered
    for the sample run; `| ds` keeps the date part."""
    def render(match: re.Match[str]) -> str:
        value = _SAMPLE_RUN[re.sub(r"\s+", " ", match.group(1))]
        return value[:10] if match.group(2) == "ds" else value

    return _RUN_MACRO.sub(render, code) if "{{" in code else code


def _split(code: str, dialect: str) -> list[tuple[str, str, str, _Tokens]]:
    """(statement, the comments and blanks before it, the comment after its semicolon on the
    same line, its tokens) for each statement of `code`."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokenizer_core import TokenType

    text = _META.sub(lambda m: " " * len(m.group(0)), without_jinja(_with_sample_run(code)))
    tokens = Dialect.get_or_raise(dialect).tokenize(text)
    out: list[tuple[str, str, str, _Tokens]] = []
    current: list[Any] = []
    previous_end = 0
    for token in [*tokens, None]:
        if token is None or token.token_type == TokenType.SEMICOLON:
            if current:
                start, end = current[0].start, current[-1].end + 1
                after = token.end + 1 if token is not None else end
                line_end = text.find("\n", after)
                tail = text[after:line_end if line_end >= 0 else len(text)]
                tail = tail if re.match(r"\s*(--|/\*|#)", tail) else ""
                # a comment right before the first token belongs to the statement's lead
                out.append((text[start:end], text[previous_end:start] + " ".join(
                    c for t in current[:1] for c in (t.comments or [])), tail,
                    _Tokens(current, text)))
                current[0].comments = []  # they are the lead's, not the statement's
                previous_end = after + len(tail)
            elif token is not None:
                previous_end = token.end + 1
            current = []
        else:
            current.append(token)
    return out


@dataclass(frozen=True)
class _Tokens:
    """A statement's tokens, their positions in the block's `text`."""

    tokens: list[Any]
    text: str


_HEADING = re.compile(r"^[ \t]{0,3}(#{1,6}[ \t]+\S.*|\*\*[^*\n]+\*\*.*)$")


def section_heading(answer: Answer, line: int) -> str:
    """The heading (or bold label) of the prose above `line` of the answer: the section a code
    block stands in."""
    prose = answer.prose.splitlines()
    return next((text.strip() for text in reversed(prose[:line - 1]) if _HEADING.match(text)),
                "")


def verifies(heading: str) -> bool:
    """Whether a section heading is How to verify (or the like): its code spot-checks the
    answer, it is not part of the work the answer proposes."""
    return bool(_VERIFY.match(heading))


def _split_once(answer: Answer, code: str, dialect: str) -> list[tuple[str, str, str]]:
    """`_split`, once per block of the answer and dialect (cached on the answer); each
    statement's tokens are kept for `_parsed`, which then need not tokenize it again."""
    key = ("split", dialect, code)
    cached = answer.cache.get(key)
    if not isinstance(cached, tuple):
        split = _split(code, dialect)
        tokens: dict[str, _Tokens] = answer.cache.setdefault(("tokens", dialect), {})
        for sql, _, _, statement_tokens in split:
            tokens.setdefault(sql, statement_tokens)
        cached = answer.cache[key] = tuple((sql, lead, tail) for sql, lead, tail, _ in split)
    return list(cached)


def block_trees(answer: Answer, code: str, dialect: str) -> tuple[Any, ...] | None:
    """The trees of a block's statements as every Program of the answer parses them (shared,
    parsed once), or None where they could differ from parsing the block whole: text the
    Program rewrites first (psql meta-commands, Jinja, run macros), a statement that does not
    parse, or one sqlglot keeps as an opaque command."""
    from sqlglot import exp

    if _META.search(code) or "{" in code:
        return None
    parse = _parsed(answer, dialect)
    trees = []
    for sql, _, _ in _split_once(answer, code, dialect):
        tree = parse(sql) if _plain_view(sql) == sql else None  # else it may be the plain one's
        if tree is None or isinstance(tree, exp.Command):
            return None
        trees.append(tree)
    return tuple(trees)


def _raw_statements(answer: Answer, dialect: str) -> list[_Raw]:
    lines = answer.text.splitlines()
    raws: list[_Raw] = []
    for block in answer.sql_blocks:
        intro = "\n".join(lines[max(0, block.line - 4): block.line - 1])
        section = section_heading(answer, block.line)
        for i, (sql, lead, tail) in enumerate(_split_once(answer, block.code, dialect),
                                              start=1):
            where = f"SQL block {block.index} (line {block.line}), statement {i}"
            raws.append(_Raw(sql, lead, where, intro if i == 1 else "", tail, intro, section))
    return raws


def _answer_statements(answer: Answer, dialect: str) -> list[_Raw]:
    """`_raw_statements`, split once per answer and dialect (cached on the answer: a case's
    `setup:` builds the Program again, around the same statements)."""
    key = ("statements", dialect)
    cached = answer.cache.get(key)
    if not isinstance(cached, tuple):
        cached = answer.cache[key] = tuple(_raw_statements(answer, dialect))
    return list(cached)


def _parsed(answer: Answer, dialect: str) -> Callable[[str], Any]:
    """Parse a statement of `answer` once per dialect: the trees are kept on the answer, so
    every Program built from it shares them. Trees are read, never changed (a translation
    copies before it edits)."""
    trees: dict[str, Any] = answer.cache.setdefault(("trees", dialect), {})
    tokens: dict[str, _Tokens] = answer.cache.setdefault(("tokens", dialect), {})

    def parse(sql: str) -> Any:
        if sql not in trees:
            trees[sql] = _parse(sql, dialect, tokens.get(sql))
        return trees[sql]

    return parse


# --- classifying ----------------------------------------------------------------------------------

_EXAMPLE = re.compile(
    r"\b(e\.g\.|for example|example|illustrat\w*|for instance|later|in the future|some ?day|"
    r"when (you|we) need|to evolve|evolution|migration|hypothetical)\b", re.I)
# keys added by ALTER after the CREATE (pg_dump's style, a migration tool's) are the design itself
_KEY_AFTER_THE_FACT = re.compile(r"\bADD\s+(CONSTRAINT\s+\S+\s+)?(PRIMARY\s+KEY|FOREIGN\s+KEY|"
                                 r"UNIQUE)\b", re.I)
_VERIFY = re.compile(r"^(#{1,6}[ \t]+|\*\*)[^\n]*\b(how to (verify|test|check)|"
                     r"verif(y|ying|ication)|sanity[- ]check|try it)\b", re.I)
_MUST_FAIL = re.compile(
    r"\b(must|should|will|would|is expected to|ought to)\s+(not\s+(be\s+accepted|succeed|load|"
    r"work|go\s+in)|(be\s+)?(fail|refused|rejected|raise|error|violate|blocked|denied)\w*)|"
    r"\bexpect(s|ed|ing)?\s*:?\s*(an?\s+)?(error|failure|exception|violation|refusal)\b|"
    r"(--|/\*|#)\s*(rejected|refused|fails?|error|violat\w*|raises?)\b|"
    r"\bfails\s+(with|because|on)\b", re.I)
_BACKFILL = re.compile(r"\b(backfill\w*|re-?process\w*|recompute\w*|rebuild\w*)\b", re.I)
_PARAMS = re.compile(r"(\$\d+|%\(\w+\)s|%s|(?<![:\w]):[a-z_]\w*\b|\?(?!\w))", re.I)
_AGE = re.compile(r"\b(now\s*\(|current_date|current_timestamp|getdate|sysdate|interval\b|"
                  r"date_sub|dateadd|timestamp_sub|date_trunc)", re.I)
_SCD2_CLOSE = re.compile(r"^(is_)?(current|active|latest)(_flag|_row|_version)?$|"
                         r"^(valid|effective|eff|row)_(to|until|end)(_\w+)?$|^end_(date|ts|at)$|"
                         r"^(expired|superseded)_(at|on|ts)$|^(to|until)_(date|ts)$")
_SKIP_FIRST = {
    "BEGIN": "transaction control", "COMMIT": "transaction control",
    "ROLLBACK": "transaction control", "START": "transaction control",
    "END": "transaction control", "SAVEPOINT": "transaction control",
    "RELEASE": "transaction control", "SET": "session setting", "RESET": "session setting",
    "USE": "session setting", "VACUUM": "maintenance the sandbox does not run",
    "ANALYZE": "statistics (the probes that need them run ANALYZE)",
    "GRANT": "privileges for roles outside the sandbox", "REVOKE": "privileges for roles "
    "outside the sandbox", "COPY": "reads or writes files", "PUT": "reads or writes files",
    "GET": "reads or writes files", "REMOVE": "reads or writes files",
    "LIST": "reads or writes files", "CALL": "calls a procedure", "EXECUTE": "runs a task",
    "CHECKPOINT": "server maintenance", "LISTEN": "notification", "NOTIFY": "notification",
    "REFRESH": "refreshes a view", "LOAD": "loads an extension", "INSTALL": "installs an "
    "extension", "PRAGMA": "engine setting", "ATTACH": "opens another database",
    "DETACH": "closes another database", "EXPORT": "writes files", "IMPORT": "reads files",
}
_SKIP_CREATE = {
    "ROLE": "roles live outside the sandbox", "USER": "roles live outside the sandbox",
    "DATABASE": "databases live outside the sandbox", "EXTENSION": "extensions are "
    "pre-installed or unavailable in the sandbox", "WAREHOUSE": "compute outside the engine",
    "TASK": "orchestration (its body is replayed as a load)", "STREAM": "change capture "
    "outside the engine", "PIPE": "ingestion outside the engine", "STAGE": "files outside the "
    "engine", "FILE": "files outside the engine", "INTEGRATION": "outside the engine",
    "NOTIFICATION": "outside the engine", "MASKING": "masking policies outside the engine",
    "ROW": "row access policies outside the engine", "TAG": "object tags outside the engine",
    "SECRET": "credentials", "SERVER": "foreign servers", "PUBLICATION": "replication",
    "SUBSCRIPTION": "replication", "TABLESPACE": "server storage", "SHARE": "data sharing",
    "EVENT": "event triggers need a superuser",
}
_QUERY_FIRST = {"SELECT", "EXPLAIN", "SHOW", "DESCRIBE", "DESC", "VALUES", "TABLE", "FROM",
                "SUMMARIZE"}
_DML_FIRST = {"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "UPSERT", "REPLACE"}


def _words(sql: str) -> list[str]:
    return re.findall(r"[A-Za-z_][A-Za-z_0-9]*", sql.upper())[:8]


def _parse(sql: str, dialect: str, tokens: _Tokens | None = None) -> Any:
    """The tree of one statement (from its `tokens` when the split kept them), or of the
    statement with its view options left out (`_plain_view`) when sqlglot does not know them;
    None when neither parses."""
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    for text in dict.fromkeys((sql, _plain_view(sql))):
        try:
            tree = (_parse_tokens(tokens, sql, dialect) if tokens is not None and text == sql
                    else sqlglot.parse_one(text, read=dialect))
        except (ParseError, TokenError, ValueError):
            continue
        if not isinstance(tree, sqlglot.exp.Command) or text == _plain_view(text):
            return tree
    return None


def _parse_tokens(tokens: _Tokens, sql: str, dialect: str) -> Any:
    """`sqlglot.parse_one(sql)` from the statement's tokens (an opaque command's text is cut
    from the block's text at their positions)."""
    from sqlglot import exp
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import ParseError

    trees = Dialect.get_or_raise(dialect).parser().parse(tokens.tokens, tokens.text)
    if not trees or trees[0] is None:
        raise ParseError(f"No expression was parsed from '{sql}'")
    return exp.Block(expressions=trees) if len(trees) > 1 else trees[0]


_VIEW_HEAD = re.compile(
    r"^(\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:TEMP|TEMPORARY|SECURE|MATERIALIZED)\s+)*)"
    r"(?:RECURSIVE\s+)?(VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?[\w\".]+\s*(?:\([^()]*\)\s*)?)"
    r"(?:WITH\s*\((?:[^()]|\([^()]*\))*\)\s*)?(?=AS\b)", re.I)
_VIEW_TAIL = re.compile(r"\s+WITH\s+(?:CASCADED\s+|LOCAL\s+)?CHECK\s+OPTION\s*$", re.I)


def _plain_view(sql: str) -> str:
    """`sql` without the view options sqlglot does not read (`WITH (security_barrier)`,
    `RECURSIVE`, `WITH CHECK OPTION`), so the tables a view reads are still found; the engine
    runs the answer's own text."""
    if not _VIEW_HEAD.match(sql):
        return sql
    return _VIEW_TAIL.sub("", _VIEW_HEAD.sub(r"\1\2", sql, count=1))


def _created_in_schema(tree: Any) -> str | None:
    """`schema.table` a CREATE TABLE makes, the default schema written as none: the case's
    `staging.payments` is not the answer's `payments`."""
    from sqlglot import exp

    name = _created_name(tree)
    table = tree.find(exp.Table) if isinstance(tree, exp.Create) else None
    if name is None or table is None:
        return None
    schema = str(table.db).lower() if table.db else ""
    return f"{'' if schema in DEFAULT_SCHEMAS else schema}.{name}"


def _table_name(node: Any) -> str | None:
    from sqlglot import exp

    if node is None:
        return None
    table = node if isinstance(node, exp.Table) else node.find(exp.Table)
    if table is not None and not table.name and table.db:  # CREATE SCHEMA crm
        return str(table.db).lower()
    if table is None or not table.name:
        return None
    return str(table.name).lower()


def _target(tree: Any) -> str | None:
    """The table a statement creates, alters or writes (unqualified, lower case)."""
    return _table_name(_target_node(tree))


def _target_node(tree: Any) -> Any:
    """The node naming the table a statement creates, alters or writes."""
    from sqlglot import exp

    if not isinstance(tree, exp.Create | exp.Insert | exp.Update | exp.Delete | exp.Merge |
                      exp.Alter | exp.Comment | exp.Drop | exp.TruncateTable):
        return None
    this = tree.this
    if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() == "INDEX":
        return tree.this.args.get("table") if tree.this is not None else None
    if isinstance(tree, exp.TruncateTable):
        return tree.expressions[0] if tree.expressions else None
    if isinstance(tree, exp.Drop) and this is None:
        tables = tree.args.get("tables") or []
        return tables[0] if tables else None
    return this.this if isinstance(this, exp.Schema) else this


def _key(table: Any, shared: frozenset[str]) -> str:
    """A table reference named as the catalog names it (see `Step.target`)."""
    name = str(table.name).lower()
    schema = str(table.db).lower() if table.db else ""
    return f"{schema}.{name}" if name in shared and schema and \
        schema not in DEFAULT_SCHEMAS else name


def _shared_names(trees: list[Any]) -> frozenset[str]:
    """Names of the tables and views the answer creates in more than one schema."""
    from sqlglot import exp

    schemas: dict[str, set[str]] = {}
    for tree in trees:
        if not isinstance(tree, exp.Create) or str(tree.args.get("kind") or "").upper() not in (
                "TABLE", "VIEW"):
            continue
        table = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if isinstance(table, exp.Table) and table.name:
            schema = str(table.db).lower() if table.db else ""
            schemas.setdefault(str(table.name).lower(), set()).add(
                "" if schema in DEFAULT_SCHEMAS else schema)
    return frozenset(name for name, found in schemas.items() if len(found) > 1)


def _qualified_target(step: Step, shared: frozenset[str]) -> Step:
    """`step` with its target named as the catalog names it, where the name is shared."""
    from dataclasses import replace

    from sqlglot import exp

    if step.target not in shared:
        return step
    node = _target_node(step.tree)
    table = node if isinstance(node, exp.Table) else node.find(exp.Table) if node else None
    return replace(step, target=_key(table, shared)) if table is not None else step


def _created_name(tree: Any) -> str | None:
    """What a CREATE statement creates (an index: its own name)."""
    from sqlglot import exp

    if not isinstance(tree, exp.Create):
        return None
    this = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    if isinstance(this, exp.Index):
        return str(this.name).lower() if this.name else None
    return _table_name(this) if this is not None else None


def _sources(query: Any) -> set[str]:
    """The tables a query reads (CTE names excluded), unqualified, lower case."""
    from sqlglot import exp

    ctes = {str(c.alias).lower() for c in query.find_all(exp.CTE)}
    return {str(t.name).lower() for t in query.find_all(exp.Table) if t.name} - ctes


# A DO block that only reads and RAISEs EXCEPTION is a quality gate: it runs on data, and an
# empty table at setup time is a batch it is right to refuse.
_GATE = re.compile(r"\bRAISE\s+EXCEPTION\b", re.I)
_DDL_INSIDE = re.compile(r"\b(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE|TRUNCATE|EXECUTE|GRANT|"
                         r"PERFORM)\b", re.I)


def _reads_namesake(tree: Any) -> bool:
    """A view that reads a table of its own name in another schema (`reporting.companies` over
    `crm.companies`): that table is not the view."""
    from sqlglot import exp

    view = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    if not isinstance(view, exp.Table):
        return False
    return any(t.name.lower() == view.name.lower() and t.db.lower() != view.db.lower()
               for t in tree.expression.find_all(exp.Table))


def _regex_target(words: list[str], sql: str) -> str | None:
    """The object a statement sqlglot could not parse acts on, from its words."""
    match = re.search(r"\b(?:TABLE|INTO|UPDATE|FROM|ON)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
                      r"([\w\".]+)", sql, re.I)
    if not match:
        return None
    return match.group(1).replace('"', "").split(".")[-1].lower()


_Kind = tuple[StepKind, str, str | None, str, Any]  # (kind, statement, target, note, tree)
_CREATE_MODIFIERS = {"OR", "REPLACE", "TEMP", "TEMPORARY", "TRANSIENT", "UNLOGGED", "GLOBAL",
                     "LOCAL", "SECURE", "IF", "NOT", "EXISTS"}
_OUTSIDE_ALTER = {"TASK", "PIPE", "STREAM", "WAREHOUSE", "ROLE", "USER", "DATABASE", "SYSTEM",
                  "DEFAULT"}


@dataclass(frozen=True)
class _Seen:
    """What the classifier knows besides the statement: the names the answer creates anywhere,
    and those its setup has created before this statement."""

    anywhere: set[str]
    so_far: set[str]


def _classify(raw: _Raw, tree: Any, created_anywhere: set[str], created_so_far: set[str]
              ) -> _Kind:
    """(kind, statement, target, note, tree) of one statement, `tree` its parse (or None)."""
    from sqlglot import exp

    words = _words(raw.sql)
    first = words[0] if words else ""
    if first in _SKIP_FIRST:
        return "skip", first, None, _SKIP_FIRST[first], tree
    created = [w for w in words[1:] if w not in _CREATE_MODIFIERS][:1] if first == "CREATE" \
        else []
    if created and created[0] in _SKIP_CREATE:
        return "skip", f"CREATE {created[0]}", None, _SKIP_CREATE[created[0]], tree
    writes = isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge)
    if first in _QUERY_FIRST or (first == "WITH" and not set(words) & _DML_FIRST and not writes):
        return "query", first, None, "", tree
    opaque = tree is None or isinstance(tree, exp.Command)
    target = _target(tree) if not opaque else _regex_target(words, raw.sql)
    seen = _Seen(created_anywhere, created_so_far)
    if first in _DML_FIRST or first == "WITH" or writes:
        lead = raw.lead + "\n" + raw.block_intro
        return _classify_dml(raw, tree, first, target, lead, created_anywhere)
    if first == "DROP":
        return _classify_drop(words, target, seen, tree)
    if first == "ALTER":
        return _classify_alter(raw, words, target, seen, tree)
    if first == "COMMENT":
        if target is not None and target not in created_anywhere:
            return "example", "COMMENT", target, (
                f"acts on {target}, which the answer never creates"), tree
        return "ddl", "COMMENT", target, "", tree
    if first == "CREATE":
        return _classify_create(words, tree, target, opaque, seen)
    if first == "DO":
        if _GATE.search(raw.sql) and not _DDL_INSIDE.search(raw.sql):
            return "query", "DO", None, "a check that raises on bad data, run on data", tree
        return "ddl", "DO", None, "", tree
    return "skip", first or "?", None, "not a statement the sandbox runs", tree


def _classify_drop(words: list[str], target: str | None, seen: _Seen, tree: Any) -> _Kind:
    """DROP before the CREATE that remakes the object is setup; after it, retention."""
    if target in seen.anywhere and target not in seen.so_far:
        return "ddl", "DROP", target, "clears the way for the CREATE that follows", tree
    if target in seen.so_far:
        return "maintenance", "DROP", target, "drops what the setup created (retention)", tree
    if "IF" in words[:4]:
        return "skip", "DROP", target, "drops an object the answer never creates", tree
    return "example", "DROP", target, f"acts on {target}, which the answer never creates", tree


def _classify_alter(raw: _Raw, words: list[str], target: str | None, seen: _Seen, tree: Any
                    ) -> _Kind:
    """ALTER of what the setup created is setup, unless it detaches or drops a partition
    (retention) or the answer shows it as a later change."""
    statement = "ALTER " + (words[1] if len(words) > 1 else "")
    if words[1:2] and words[1] in _OUTSIDE_ALTER:
        return "skip", statement, target, "outside the engine", tree
    if target is not None and target not in seen.anywhere:
        return "example", statement, target, (
            f"acts on {target}, which the answer never creates"), tree
    if target is not None and target not in seen.so_far:
        return "example", statement, target, (
            f"acts on {target}, which only a data load creates"), tree
    if re.search(r"\b(DETACH|DROP)\s+PARTITION\b", raw.sql, re.I):
        return "maintenance", statement, target, "partition retention", tree
    if _EXAMPLE.search(raw.lead + "\n" + raw.block_intro) and not _KEY_AFTER_THE_FACT.search(
            raw.sql):
        return "example", statement, target, "the answer shows it as a later change", tree
    return "ddl", statement, target, "", tree


def _classify_create(words: list[str], tree: Any, target: str | None, opaque: bool,
                     seen: _Seen) -> _Kind:
    """CREATE is setup, except a table made from data it reads (a load), an index on a table
    the answer never creates, or a view over one (examples). `opaque`: sqlglot could not parse
    it, and `target` is the name read from its words."""
    from sqlglot import exp

    create = tree if isinstance(tree, exp.Create) else None
    kind = str(create.args.get("kind") or "").upper() if create is not None else ""
    statement = f"CREATE {kind}" if kind else "CREATE " + (words[1] if len(words) > 1 else "")
    if kind == "INDEX":
        if target is not None and target not in seen.anywhere:
            return "example", statement, target, (
                f"acts on {target}, which the answer never creates"), tree
        return "ddl", statement, target, "", tree
    name = target if opaque else _created_name(tree)
    if create is not None and create.expression is not None and kind == "TABLE":
        if name in seen.so_far:
            return "load", statement, name, "overwrites the table", tree
        if _sources(create.expression) - seen.so_far:
            return "load", statement, name, "creates a table from data it reads", tree
    if create is not None and create.expression is not None and kind == "VIEW":
        unknown = _sources(create.expression) - seen.so_far - (
            set() if _reads_namesake(create) else {name})
        if unknown:
            return "example", statement, name, (
                f"reads {', '.join(sorted(unknown))}, which the answer never creates"), tree
    return "ddl", statement, name, "", tree


def _classify_dml(raw: _Raw, tree: Any, first: str, target: str | None, lead: str,
                  created_anywhere: set[str]) -> _Kind:
    from sqlglot import exp

    statement = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE",
                 exp.Merge: "MERGE"}.get(type(tree), first)
    if statement == "WITH":
        statement = next((w for w in _words(raw.sql) if w in _DML_FIRST), "WITH")
    if target is not None and created_anywhere and target not in created_anywhere:
        return "example", statement, target, (
            f"writes {target}, which the answer never creates"), tree
    if _MUST_FAIL.search(raw.lead + "\n" + raw.tail + "\n" + raw.block_prose) and not (
            _reads_other_tables(tree, target)):
        return "example", statement, target, "a check the answer says must be refused", tree
    if verifies(raw.section):
        return "example", statement, target, "a check in the answer's How to verify", tree
    if _PARAMS.search(_without_strings(raw.sql)):
        return "example", statement, target, "uses bind parameters", tree
    if isinstance(tree, exp.Insert):
        values = isinstance(tree.expression, exp.Values)
        upsert = tree.args.get("conflict") is not None
        if values and not upsert and not tree.args.get("overwrite"):
            return "seed", statement, target, "", tree
    if _BACKFILL.search(raw.lead):
        return "maintenance", statement, target, "backfill", tree
    if isinstance(tree, exp.Delete) and _AGE.search(raw.sql):
        return "maintenance", statement, target, "retention", tree
    if isinstance(tree, exp.Update) and any(
            _SCD2_CLOSE.match(str(eq.this.name).lower())
            for eq in tree.expressions if isinstance(eq, exp.EQ)
            and isinstance(eq.this, exp.Column)):
        return "maintenance", statement, target, "closes SCD2 versions", tree
    return "load", statement, target, "", tree


def _reads_other_tables(tree: Any, target: str | None) -> bool:
    """Whether a write reads tables besides its target: a load moves data, while a check
    writes literal rows to see the constraints refuse them."""
    from sqlglot import exp

    if tree is None:
        return True
    return any(t.name and str(t.name).lower() != target for t in tree.find_all(exp.Table))


_BOOKKEEPING = re.compile(r"(watermark|checkpoint|bookmark|high_?water|_state$|^etl_|_runs?$|"
                          r"run_?log|_log$|audit|control|cursor|offsets?$|_meta(data)?$|"
                          r"^load_|_loads$)", re.I)
_RUN_VALUE = re.compile(r"\b(now\s*\(|current_timestamp|current_date|localtimestamp|"
                        r"clock_timestamp|statement_timestamp|transaction_timestamp|getdate|"
                        r"sysdate|get_current_timestamp|gen_random_uuid|uuid\s*\()|"
                        r"\(\s*SELECT\b", re.I)


def _renamed_to(sql: str) -> str | None:
    """The new name of `ALTER TABLE x RENAME TO name`."""
    match = re.search(r"\bALTER\s+TABLE\b.*?\bRENAME\s+TO\s+\"?([\w.]+)\"?", sql, re.I | re.S)
    return match.group(1).split(".")[-1].lower() if match else None


def _seed_or_load(sql: str, target: str | None, after_load: bool) -> tuple[StepKind, str]:
    """A literal-row INSERT seeds the setup, unless it is part of the load sequence: placed
    after the answer's first load, or stamping the run (the clock, a subquery) into a
    bookkeeping table such as a watermark, run log or audit table."""
    if after_load:
        return "load", "literal rows written after the load, as part of each run"
    if target and _BOOKKEEPING.search(target.split(".")[-1]) and _RUN_VALUE.search(
            _without_strings(sql)):
        return "load", "records the run in a bookkeeping table"
    return "seed", ""


def _without_strings(sql: str) -> str:
    return re.sub(r"'(?:[^']|'')*'|\$\$.*?\$\$|--[^\n]*|::\w+", "''", sql, flags=re.S)


# --- building -------------------------------------------------------------------------------------


def _build(answer: Answer, dialect: str, prompt: str = "", given: tuple[str, ...] = ()
           ) -> Program:
    from sqlglot.errors import TokenError

    engine: Engine | None = (
        "postgres" if dialect == "postgres" else "duckdb"
        if dialect == "duckdb" or dialect in WAREHOUSES else None)
    try:
        raws = [_Raw(sql, "", f"the case's setup, statement {i}", "")
                for i, sql in enumerate(given, start=1)] + _answer_statements(answer, dialect)
    except TokenError as err:
        return Program(dialect, engine, (), error=f"the SQL cannot be split into statements: "
                       f"{str(err).splitlines()[0]}")
    parsed = _parsed(answer, dialect)
    trees = [parsed(r.sql) for r in raws]
    created_anywhere = _created_anywhere(raws, trees)
    remade = [(i, name) for i, (raw, tree) in enumerate(zip(raws, trees, strict=True))
               for name in (_created_name(tree), _renamed_to(raw.sql)) if name]
    given_tables = {_created_in_schema(tree) for tree in trees[:len(given)]} - {None}
    scratch = _scratch_tables(raws, trees)
    steps: list[Step] = []
    created_so_far: set[str] = set()
    for position, (raw, parsed_tree) in enumerate(zip(raws, trees, strict=True)):
        kind, statement, target, note, tree = _classify(raw, parsed_tree, created_anywhere,
                                                        created_so_far)
        if kind == "seed":
            kind, note = _seed_or_load(raw.sql, target, any(s.kind == "load" for s in steps))
        if statement == "DROP" and kind == "maintenance" and any(
                i > position and name == target for i, name in remade):
            kind, note = "ddl", "swaps in the table that replaces it"
        if target in scratch and position >= len(given) and statement in (
                "CREATE TABLE", "DROP"):
            kind, note = "load", "a scratch table each run of the load fills and drops"
        if position < len(given) and kind in ("load", "maintenance"):
            kind, note = "seed", "the case's setup"
        elif position >= len(given) and statement == "CREATE TABLE" and _created_in_schema(
                parsed_tree) in given_tables:
            kind, note = "example", "restates a table the case gives"
        steps.append(Step(len(steps), kind, _in_transaction(raw.sql), raw.sql, raw.where,
                          statement, target, note, tree))
        if kind == "ddl" and statement.startswith("CREATE") and target:
            created_so_far.add(target)
        if statement == "CREATE TASK":
            body = _task_body(raw.sql)
            if body:
                inner = _Raw(body, raw.lead, raw.where + " (the task's body)", "")
                kind, statement, target, note, tree = _classify(
                    inner, parsed(body), created_anywhere, created_so_far)
                steps.append(Step(len(steps), kind, body, body, inner.where, statement, target,
                                  note, tree))
    shared = _shared_names(trees)
    steps = [_qualified_target(step, shared) for step in steps]
    program = Program(dialect, engine, _without_quotes(steps, raws, prompt), shared=shared)
    if dialect in WAREHOUSES:
        from .transpile import to_duckdb

        program = to_duckdb(program)
    return _with_schemas(program)


_CONCURRENTLY = re.compile(
    r"^((?:\s*--[^\n]*\n)*\s*(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\s+\w+)\s+)"
    r"CONCURRENTLY\b"
    r"|(\bDETACH\s+PARTITION\s+[\w.\"]+\s+)CONCURRENTLY\b", re.I)


def _in_transaction(sql: str) -> str:
    """`sql` as it can run inside the transaction every answer runs in: CONCURRENTLY (which
    PostgreSQL refuses in a transaction block) dropped from index builds and partition
    detaches; on an idle sandbox database it changes locking, not the result."""
    return _CONCURRENTLY.sub(lambda m: m.group(1) or m.group(2), sql)


_FILLED_FROM_QUERY = re.compile(r"\bAS\s*\(?\s*(?:SELECT|WITH|FROM)\b", re.I)


def _scratch_tables(raws: list[_Raw], trees: list[Any]) -> set[str]:
    """Tables the load makes for itself: a temporary table filled by a query, or one filled by
    a query that the answer drops again later (`CREATE TEMP TABLE batch AS SELECT .. FROM stg`
    before the merge). They hold each run's rows, so they belong to the load, not the setup."""
    from sqlglot import exp

    filled: dict[str, int] = {}
    temporary: set[str] = set()
    for position, (raw, tree) in enumerate(zip(raws, trees, strict=True)):
        words = _words(raw.sql)
        if words[:1] != ["CREATE"] or "TABLE" not in words[:6]:
            continue
        if isinstance(tree, exp.Create):
            name, query = _created_name(tree), tree.expression is not None
            temp = tree.find(exp.TemporaryProperty) is not None
        else:
            name = _regex_target(words, raw.sql)
            query = bool(_FILLED_FROM_QUERY.search(raw.sql))
            temp = bool({"TEMP", "TEMPORARY"} & set(words[:words.index("TABLE")]))
        if name and query:
            filled.setdefault(name, position)
            if temp:
                temporary.add(name)
    dropped_later = {
        _regex_target(_words(raw.sql), raw.sql) for position, raw in enumerate(raws)
        if _words(raw.sql)[:2] == ["DROP", "TABLE"]
        and any(p < position for n, p in filled.items()
                if n == _regex_target(_words(raw.sql), raw.sql))}
    return temporary | (set(filled) & dropped_later)


def _created_anywhere(raws: list[_Raw], trees: list[Any]) -> set[str]:
    """The names the answer's CREATE statements create, wherever they stand. A view named like
    the table it reads in another schema does not create that table's name; a statement sqlglot
    could not parse is read by its words (`CREATE INDEX .. ON t` names t, which it does not
    create)."""
    from sqlglot import exp

    names: set[str] = set()
    for raw, tree in zip(raws, trees, strict=True):
        words = _words(raw.sql)
        if isinstance(tree, exp.Create):
            name = _created_name(tree)
            if name and not (tree.expression is not None and str(
                    tree.args.get("kind") or "").upper() == "VIEW" and _reads_namesake(tree)):
                names.add(name)
        elif words[:1] == ["CREATE"] and "INDEX" not in words[:4]:
            names.add(_regex_target(words, raw.sql) or "")
    return names - {""}


def _without_quotes(steps: list[Step], raws: list[_Raw], prompt: str) -> tuple[Step, ...]:
    """Steps quoted from the prompt become examples when the answer gives its own version
    after them (a CREATE of the same object, a write into the same table) or when they are
    queries (the query to rewrite): the user's code never counts against the answer."""
    if not prompt.strip():
        return tuple(steps)
    from ..answers import is_quoted, normal_code

    quoted_text = normal_code(prompt)
    originals = {raw.where: raw.sql for raw in raws}
    quoted = {s.index for s in steps if is_quoted(originals.get(s.where, s.original),
                                                  quoted_text)}
    out: list[Step] = []
    for step in steps:
        later = [s for s in steps[step.index + 1:] if s.index not in quoted and s.target and
                 s.target == step.target]
        creates = step.statement.startswith("CREATE")
        kinds = ("ddl", "load") if creates else ("load", "maintenance")
        superseded = any(s.statement.startswith("CREATE") == creates and s.kind in kinds
                         for s in later)
        if step.index in quoted and (step.kind == "query" or superseded):
            step = Step(step.index, "example", step.sql, step.original, step.where,
                        step.statement, step.target, "quoted from the prompt; the answer "
                        "gives its own version", step.tree)
        out.append(step)
    return tuple(out)


def _task_body(sql: str) -> str | None:
    match = re.search(r"\bAS\s+((?:MERGE|INSERT|UPDATE|DELETE|CALL|BEGIN)\b.*)$", sql,
                      re.I | re.S)
    return match.group(1).strip() if match else None


def _with_schemas(program: Program) -> Program:
    """Create the schemas the answer's tables live in when it does not itself (a sandbox
    database is empty; an answer may assume `analytics` exists)."""
    from sqlglot import exp

    if not program.runnable:
        return program
    made = {s.target for s in program.steps if s.statement == "CREATE SCHEMA" and s.target}
    needed: list[str] = []
    for step in program.setup:
        if step.statement.startswith("CREATE") and isinstance(step.tree, exp.Create):
            table = step.tree.find(exp.Table)
            schema = str(table.db).lower() if table is not None and table.db else ""
            if schema and schema not in made and schema not in needed and schema not in (
                    "public", "main"):
                needed.append(schema)
    if not needed:
        return program
    extra = tuple(Step(0, "ddl", f"CREATE SCHEMA IF NOT EXISTS {name}", "", "(the sandbox)",
                       "CREATE SCHEMA", name, "the answer assumes the schema exists")
                  for name in needed)
    steps = tuple(Step(i, s.kind, s.sql, s.original, s.where, s.statement, s.target, s.note,
                       s.tree) for i, s in enumerate(extra + program.steps))
    notes = program.notes + tuple(f"created schema {name}, which the answer assumes exists"
                                  for name in needed)
    return Program(program.dialect, program.engine, steps, program.not_executed, program.error,
                   notes, program.shared)
