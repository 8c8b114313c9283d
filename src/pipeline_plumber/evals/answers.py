"""Answers to grade: their text, where they came from, and the code blocks inside them.

An answer is text plus provenance. The hand-written ones live under `evals/answers/<case-id>/`
and must say so in front matter on their first lines; the loader refuses a file without it::

    ---
    provenance: hand-written reference
    ---

    ---
    provenance: hand-written flawed
    reason: The load is a plain INSERT, so a re-run duplicates every order.
    fails: [upsert, rerun-keeps-one-row]
    ---

`fails` names the checks (case check ids, or `<checklist-item>/<scorer>` for rubric checks) the
flaw must trip; every other check is expected to pass. A `correct-*.md` answer
(`provenance: hand-written correct`, with an optional `reason` saying what is unusual about it)
is right in other words than the reference: like the reference, it must pass every check and
its case. `plumber eval calibrate` holds the scorers
to these labels.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from markdown_it import MarkdownIt
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .. import frontmatter
from ..errors import InputError, Problem
from ..schema_errors import field_names, schema_problems
from ..yamlsource import parse_yaml, read_limited

Provenance = Literal["reference", "correct", "flawed", "recorded", "live", "file"]
"""reference/correct/flawed: hand-written files; recorded: replayed from evals/recordings;
live: a model call made during this run; file: any text given to `plumber eval score`."""

SQL_FENCES = {"sql", "postgresql", "postgres", "psql", "plpgsql", "snowflake", "bigquery",
              "duckdb", "googlesql", "pgsql"}
PYTHON_FENCES = {"python", "py", "python3"}
MAX_ANSWER_BYTES = 1 << 20  # a model's longest reply is a few dozen KiB

_markdown = MarkdownIt("commonmark")


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block: its language (first word of the info string), code and first line."""

    index: int  # 1-based position among blocks of the same kind, for explanations
    language: str
    code: str
    line: int  # line of the opening fence in the answer text (1-based)
    end: int = 0  # line after the closing fence (1-based, exclusive)


@dataclass(frozen=True)
class Answer:
    """Text to grade and where it came from. `label` holds a hand-written answer's front matter."""

    text: str
    provenance: Provenance
    source: str = ""
    label: AnswerLabel | None = None
    meta: dict[str, str] = field(default_factory=dict, compare=False)
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def code_blocks(self) -> tuple[CodeBlock, ...]:
        return fenced_blocks(self.text)

    @cached_property
    def sql_blocks(self) -> tuple[CodeBlock, ...]:
        return _numbered(b for b in self.code_blocks if b.language in SQL_FENCES)

    @cached_property
    def python_blocks(self) -> tuple[CodeBlock, ...]:
        return _numbered(b for b in self.code_blocks if b.language in PYTHON_FENCES)

    @cached_property
    def prose(self) -> str:
        """The text outside code blocks."""
        lines = self.text.splitlines()
        for block in self.code_blocks:
            for i in range(block.line - 1, min(block.end - 1, len(lines))):
                lines[i] = ""
        return "\n".join(lines)


def _numbered(blocks: Iterable[CodeBlock]) -> tuple[CodeBlock, ...]:
    out = []
    for i, block in enumerate(blocks, start=1):
        out.append(CodeBlock(i, block.language, block.code, block.line, block.end))
    return tuple(out)


def fenced_blocks(text: str) -> tuple[CodeBlock, ...]:
    """Every fenced code block of a Markdown text, in order (markdown-it-py, CommonMark)."""
    blocks: list[CodeBlock] = []
    for token in _markdown.parse(text):
        if token.type == "fence" and token.map is not None:
            language = token.info.strip().split(maxsplit=1)[0].lower() if token.info.strip() else ""
            first, after = token.map
            blocks.append(CodeBlock(len(blocks) + 1, language, token.content, first + 1, after + 1))
    return tuple(blocks)


# --- labelled answer files ----------------------------------------------------------------------

CheckId = Annotated[str, StringConstraints(min_length=1)]


class AnswerLabel(BaseModel):
    """Front matter of a hand-written answer file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provenance: Literal["hand-written reference", "hand-written correct",
                        "hand-written flawed"] = Field(
        description="Says the answer was written by hand, and whether it is the reference, "
        "another correct answer (in other words), or a deliberately flawed answer."
    )
    reason: str | None = Field(
        default=None, min_length=1,
        description="Flawed answers: what is wrong, as a reviewer would say it; correct answers "
        "(optional): what is unusual about the wording or the design.",
    )
    fails: list[CheckId] = Field(
        default_factory=list,
        description="Flawed answers only: ids of the checks the flaw must fail.",
    )


_LABEL_HINT = ("an answer file starts with front matter: '---', "
               "'provenance: hand-written reference' (or 'hand-written correct', or 'hand-written "
               "flawed' with 'reason' and 'fails'), '---'")


def load_answer_file(path: Path, display: str | None = None) -> Answer:
    """Read a hand-written answer; refuse it unless it is labelled as hand-written."""
    name = display or path.as_posix()
    text = read_limited(path, name, MAX_ANSWER_BYTES)
    if not text.startswith("---\n") or "\n---\n" not in text[3:]:
        raise InputError([Problem(f"missing label; {_LABEL_HINT}", file=name, line=1,
                                  field="provenance")])
    _, body, body_line = frontmatter.split(text)
    raw = text[4 : text.index("\n---\n", 3) + 1]
    doc = parse_yaml("\n" + raw, name)  # the leading newline keeps line numbers true to the file
    if not isinstance(doc.data, dict):
        raise InputError([Problem(f"front matter must be a mapping; {_LABEL_HINT}", file=name,
                                  line=2, field="provenance")])
    try:
        label = AnswerLabel.model_validate(doc.data)
    except ValidationError as err:
        raise InputError(schema_problems(err, doc, field_names([AnswerLabel]))) from err
    flawed = label.provenance == "hand-written flawed"
    problems = []
    if flawed and (not label.reason or not label.fails):
        problems.append(Problem("a flawed answer states its 'reason' and the checks it 'fails'",
                                file=name, line=doc.line_of(("provenance",)), field="reason"))
    correct = label.provenance == "hand-written correct"
    if not flawed and (label.fails or (label.reason and not correct)):
        problems.append(Problem("only a flawed answer has 'fails', and only a flawed or correct "
                                "answer a 'reason'", file=name,
                                line=doc.line_of(("fails",)) or doc.line_of(("reason",)),
                                field="fails" if label.fails else "reason"))
    if problems:
        raise InputError(problems)
    # Keep line numbers of the body true to the file: pad with the front matter's lines.
    padded = "\n" * (body_line - 1) + body
    kind: Provenance = "flawed" if flawed else (
        "correct" if label.provenance == "hand-written correct" else "reference")
    return Answer(padded, kind, name, label)


_DIALECT_WORDS = {
    "postgres": re.compile(r"\b(postgres(ql)?|psql|pg_\w+)\b", re.I),
    "snowflake": re.compile(r"\bsnowflake\b", re.I),
    "bigquery": re.compile(r"\bbig\s?query\b", re.I),
    "duckdb": re.compile(r"\bduckdb\b", re.I),
}


def guess_dialect(text: str) -> str | None:
    """The SQL dialect a text names most often (fence languages count too), or None."""
    counts = {name: len(pattern.findall(text)) for name, pattern in _DIALECT_WORDS.items()}
    best = max(counts, key=lambda name: counts[name])
    return best if counts[best] else None


# --- code quoted from the prompt -----------------------------------------------------------------

_SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_MIN_QUOTE = 15  # characters: shorter statements (`SELECT 1`) are not evidence of quoting


def normal_code(code: str) -> str:
    """Code compared for quoting: comments dropped, spacing collapsed, lower case."""
    return re.sub(r"\s+", " ", _SQL_COMMENT.sub(" ", code)).strip().strip(";").strip().lower()


def is_quoted(code: str, normal_prompt: str) -> bool:
    """`code` appears in the prompt (given as `normal_code(prompt)`) and is long enough for
    that to mean it was quoted."""
    piece = normal_code(code)
    return len(piece) >= _MIN_QUOTE and piece in normal_prompt


def _statement_spans(code: str) -> list[tuple[int, int]]:
    """(start, end) of each statement of `code` (PostgreSQL's tokenizer: quotes, dollar quotes
    and comments handled); the whole block when it cannot be tokenized."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import TokenError
    from sqlglot.tokenizer_core import TokenType

    try:
        tokens = Dialect.get_or_raise("postgres").tokenize(code)
    except TokenError:
        return [(0, len(code))]
    spans: list[tuple[int, int]] = []
    first: Any = None
    last: Any = None
    for token in [*tokens, None]:
        if token is None or token.token_type == TokenType.SEMICOLON:
            if first is not None:
                spans.append((first.start, (token.end if token else last.end) + 1))
            first = None
        else:
            first = first or token
            last = token
    return spans


def without_quoted_code(answer: Answer, prompt: str) -> Answer:
    """The answer with the code it quotes from `prompt` blanked (lines kept, so every `where`
    still points at the right line): a SQL statement, or a whole non-SQL block, whose text
    (comments and spacing aside) appears in the prompt. The same answer when nothing is quoted.
    Cached on the answer."""
    if not prompt.strip() or not answer.code_blocks:
        return answer
    key = ("without-quotes", hashlib.sha256(prompt.encode()).hexdigest())
    cached = answer.cache.get(key)
    if isinstance(cached, Answer):
        return cached
    quoted = normal_code(prompt)
    lines = answer.text.splitlines(keepends=True)
    changed = False
    for block in answer.code_blocks:
        code = block.code
        spans = _statement_spans(code) if block.language in SQL_FENCES else [(0, len(code))]
        kept = list(code)
        for start, end in spans:
            if is_quoted(code[start:end], quoted):
                kept[start:end] = [c if c == "\n" else " " for c in code[start:end]]
                changed = True
        new_lines = "".join(kept).splitlines(keepends=True)
        first = block.line  # the code starts on the line after the opening fence
        if "".join(lines[first:first + len(new_lines)]) == code:
            lines[first:first + len(new_lines)] = new_lines
    result = Answer("".join(lines), answer.provenance, answer.source, answer.label,
                    answer.meta) if changed else answer
    answer.cache[key] = result
    return result
