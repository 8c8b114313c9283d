"""The knowledge base: YAML files validated into typed objects (schema-on-write).

Every model forbids unknown keys and documents each field, so `plumber schema` can export the
whole contract as JSON Schema. Cross-references (a command naming a principle or example) are
checked after the schema, with file and line in every problem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
)

from .claude_code import AGENT_COLORS, shell_trigger
from .errors import InputError, Problem
from .kb_proof import ENGINE_CHECKS, PROOF_CHECKS, Proof, Slug
from .kb_proof import SLUG_PATTERN as SLUG_PATTERN  # the id rule, for lint and eval cases
from .schema_errors import field_names, schema_problems
from .schema_errors import suggest as _suggest
from .yamlsource import PathKey, SourceDoc, format_path, load_yaml

Text = Annotated[str, StringConstraints(min_length=1)]

SqlDialect = Literal["postgres", "snowflake", "bigquery", "duckdb"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Example(_Model):
    """A code example the agent shows; every `sql` and `python` one is proven by `plumber verify`.

    `text` examples (diagrams) are exempt: there is nothing to run. The proof never reaches the
    rendered agent, which shows only the caption and the code.
    """

    id: Slug = Field(description="Unique id, lowercase kebab-case; commands and evals refer to it.")
    caption: str | None = Field(
        default=None, description="Markdown paragraph shown above the code, e.g. '**❌ Bad: ...**'."
    )
    language: Literal["sql", "python", "text"] = Field(
        description="Fence language. `text` is for diagrams and plain illustrations."
    )
    dialect: SqlDialect | None = Field(
        default=None, description="SQL dialect the code is written for; required for `sql` only."
    )
    verdict: Literal["right", "wrong", "illustration"] = Field(
        description="Whether the example shows the right way, the wrong way, or only illustrates."
    )
    code: Text = Field(description="The code, without fences.")
    proof: Proof | None = Field(
        default=None,
        description="How `plumber verify` proves the example; required for sql and python, "
        "not allowed for text.",
    )


class TextBlock(_Model):
    """A Markdown paragraph."""

    text: Text = Field(description="Markdown text, rendered as a paragraph.")


class ListBlock(_Model):
    """A bullet list, optionally under a bold label."""

    label: str | None = Field(default=None, description="Shown in bold before the list.")
    items: list[Text] = Field(min_length=1, description="The bullets, Markdown each.")


class QuoteBlock(_Model):
    """Something the agent would say, shown as a block quote under an italic label."""

    label: str | None = Field(default=None, description="The situation, e.g. 'When reviewing ETL'.")
    quote: Text = Field(description="What the agent says.")


class ExampleBlock(_Model):
    """A code example placed at this point of the section."""

    example: Example


def _block_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("example", "quote", "items", "text"):
            if key in value:
                return key
        return None
    kinds: dict[type, str] = {
        TextBlock: "text",
        ListBlock: "items",
        QuoteBlock: "quote",
        ExampleBlock: "example",
    }
    return kinds.get(type(value))


Block = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ListBlock, Tag("items")]
    | Annotated[QuoteBlock, Tag("quote")]
    | Annotated[ExampleBlock, Tag("example")],
    Discriminator(
        _block_kind,
        custom_error_type="block_kind",
        custom_error_message="a block needs exactly one of the keys: text, items, quote, example",
    ),
]


class Section(_Model):
    """A titled part of the agent: a topic (H2) or a subsection of one (H3 and below)."""

    id: Slug = Field(description="Unique id of the section.")
    title: Text = Field(description="Heading text, without the #'s.")
    blocks: list[Block] = Field(default_factory=list, description="Content, in order.")
    sections: list[Section] = Field(default_factory=list, description="Subsections, in order.")


class Person(_Model):
    """Who publishes the plugin and its marketplace."""

    name: Text = Field(description="A person's or a group's name.")
    email: str | None = Field(default=None, description="Contact address.")
    url: str | None = Field(default=None, description="Web page.")


class Plugin(_Model):
    """How the pack ships as a Claude Code plugin from a one-plugin marketplace."""

    name: Slug = Field(
        description="Plugin name, also the commands' namespace: `/<name>:schema` both when "
        "installed as a plugin and by `plumber install` (`.claude/commands/<name>/`)."
    )
    marketplace: Slug = Field(description="Name of the marketplace the repository publishes.")
    description: Text = Field(description="What the plugin gives, for `claude plugin` listings.")
    author: Person = Field(description="The plugin's author; also the marketplace's owner.")
    license: str | None = Field(default=None, description="SPDX license id, e.g. MIT.")
    homepage: str | None = Field(default=None, description="Documentation web page.")
    repository: str | None = Field(default=None, description="Source repository URL.")
    keywords: list[Slug] = Field(default_factory=list, description="Search keywords.")


class AgentFile(_Model):
    """`agent.yaml`: who the agent is and when Claude Code should delegate to it."""

    name: Slug = Field(description="The subagent's name, as Claude Code lists it.")
    title: Text = Field(description="The H1 of the agent file.")
    description: Text = Field(
        description="When to delegate to the agent (about 60 words at most); sent in every session."
    )
    model: Text = Field(
        default="inherit",
        description="`inherit`, an alias (sonnet, opus, haiku) or a full model id.",
    )
    tools: list[Text] | None = Field(
        default=None, description="Tools the agent may use; omitted means all tools."
    )
    color: Literal[AGENT_COLORS] | None = Field(  # type: ignore[valid-type]
        default=None, description="Colour Claude Code shows for the agent."
    )
    intro: list[Text] = Field(min_length=1, description="Opening paragraphs, under the H1.")
    plugin: Plugin | None = Field(
        default=None,
        description="Plugin and marketplace metadata; without it the commands' namespace is the "
        "agent's name and no plugin manifest is built.",
    )

    @property
    def namespace(self) -> str:
        """The folder and prefix of the slash commands: `/<namespace>:schema`."""
        return self.plugin.name if self.plugin else self.name


class PracticeFile(_Model):
    """`practice.yaml`: how the agent works in a repository, what it never does, and what every
    answer ends with. Each part is required, and the lint checks the rendered agent keeps them."""

    how_you_work: Section = Field(
        description="The operating procedure: look at the repository first, name the dialect and "
        "assumptions, write files where the repository keeps them."
    )
    never: Section = Field(
        description="What the agent never does to a database, a warehouse or a secret."
    )
    how_to_verify: Section = Field(
        description="What every answer ends with: the query, test or check that proves it."
    )

    @property
    def sections(self) -> tuple[Section, Section, Section]:
        return (self.how_you_work, self.never, self.how_to_verify)


class Principle(_Model):
    """One of the Data Integrity Laws."""

    id: Slug = Field(description="Unique id; commands refer to it.")
    title: Text = Field(description="The law, e.g. 'Idempotency is King'.")
    body: Text = Field(description="One or two sentences under the title.")


class PrinciplesFile(_Model):
    """`principles.yaml`: the numbered laws."""

    title: Text = Field(description="Section heading.")
    principles: list[Principle] = Field(min_length=1)


class ChecklistItem(_Model):
    """One thing a complete answer to a command contains; evals grade answers by these."""

    id: Slug = Field(description="Unique within the command.")
    text: Text = Field(description="What the answer must contain, as the command states it.")


class Command(_Model):
    """A `#` shortcut of the agent, also installed as the slash command `/de:<name>`."""

    name: Slug = Field(description="Shortcut name: `#<name>` and `/de:<name>`.")
    summary: Text = Field(description="One line for the agent's shortcut list.")
    description: Text = Field(description="The slash command's description (front matter).")
    argument_hint: Text = Field(description="What to type after the command, e.g. '<table>'.")
    principles: list[Slug] = Field(
        default_factory=list, description="Ids of the laws the command leans on most."
    )
    examples: list[Slug] = Field(
        default_factory=list,
        description="Ids of proven examples (sql or python, run by `plumber verify`) that show "
        "how to answer; the command file names each by its caption and section.",
    )
    no_arguments: Text = Field(
        description="What to do when the command is typed with nothing after it, e.g. look at "
        "the repository's schema and propose, or say what is needed."
    )
    checklist: list[ChecklistItem] = Field(
        min_length=1, description="What a complete answer contains."
    )


class CommandsFile(_Model):
    """`commands.yaml`: the shortcuts and the words around them in each command file."""

    title: Text = Field(description="Heading of the shortcut list in the agent.")
    checklist_heading: Text = Field(description="Line before each command's checklist.")
    principles_heading: Text = Field(description="Line before each command's laws.")
    examples_heading: Text = Field(description="Line before each command's proven examples.")
    no_arguments_label: Text = Field(
        description="Words before each command's `no_arguments` text, e.g. 'With no arguments'."
    )
    commands: list[Command] = Field(min_length=1)


class MantrasFile(_Model):
    """`mantras.yaml`: the closing mantras."""

    title: Text = Field(description="Section heading.")
    mantras: list[Text] = Field(min_length=1)


# The files of a knowledge base, in the order the agent presents them; topics/ sorts by name.
FILE_MODELS: dict[str, type[_Model]] = {
    "agent.yaml": AgentFile,
    "practice.yaml": PracticeFile,
    "principles.yaml": PrinciplesFile,
    "persona.yaml": Section,
    "topics/*.yaml": Section,
    "commands.yaml": CommandsFile,
    "mantras.yaml": MantrasFile,
}


@dataclass(frozen=True)
class KnowledgeBase:
    """A validated knowledge base, ready to render."""

    agent: AgentFile
    practice: PracticeFile
    principles: PrinciplesFile
    persona: Section
    topics: tuple[Section, ...]
    commands: CommandsFile
    mantras: MantrasFile
    digest: str

    def sections(self) -> Iterator[Section]:
        """Every top-level section of the agent body, in the order it presents them."""
        yield from self.practice.sections
        yield self.persona
        yield from self.topics

    def examples(self) -> Iterator[Example]:
        for section in self.sections():
            yield from iter_examples(section)

    def example_places(self, ids: list[str]) -> list[ExamplePlace]:
        """Where the agent shows each example: the heading above it and its code's first line."""
        places: dict[str, ExamplePlace] = {}
        for top in self.sections():
            for _, section in _walk_sections(top, ()):
                for block in section.blocks:
                    if isinstance(block, ExampleBlock):
                        ex = block.example
                        opening = next(line for line in ex.code.splitlines() if line.strip())
                        places[ex.id] = ExamplePlace(ex.id, section.title, opening.strip())
        return [places[example_id] for example_id in ids]

    def command(self, name: str) -> Command:
        for command in self.commands.commands:
            if command.name == name:
                return command
        raise KeyError(name)


@dataclass(frozen=True)
class ExamplePlace:
    """An example as the agent's reader finds it: under `section`, the block opening `opening`."""

    id: str
    section: str
    opening: str


def iter_examples(section: Section) -> Iterator[Example]:
    for block in section.blocks:
        if isinstance(block, ExampleBlock):
            yield block.example
    for sub in section.sections:
        yield from iter_examples(sub)


def kb_files(root: Path) -> list[Path]:
    """Every YAML file the knowledge base is made of, in a stable order."""
    return sorted([*root.glob("*.yaml"), *root.glob("topics/*.yaml")])


def kb_digest(root: Path) -> str:
    """sha256 over the knowledge base's file names and bytes: changes whenever the input does."""
    h = hashlib.sha256()
    for path in kb_files(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def load_kb(root: Path) -> KnowledgeBase:
    """Load and validate a knowledge base; every problem found is raised at once as InputError."""
    if not root.is_dir():
        raise InputError([Problem("knowledge-base folder not found", file=str(root))])
    problems: list[Problem] = []
    docs: dict[str, SourceDoc] = {}
    models: dict[str, Any] = {}

    expected = {name for name in FILE_MODELS if "*" not in name}
    for path in kb_files(root):
        rel = path.relative_to(root).as_posix()
        if rel not in expected and not rel.startswith("topics/"):
            problems.append(
                Problem(
                    f"unknown knowledge-base file; expected {', '.join(FILE_MODELS)}",
                    file=_display(root, rel),
                )
            )
            continue
        model = FILE_MODELS["topics/*.yaml" if rel.startswith("topics/") else rel]
        try:
            doc = load_yaml(path, _display(root, rel))
        except InputError as err:
            problems.extend(err.problems)
            continue
        docs[rel] = doc
        try:
            models[rel] = model.model_validate(doc.data if doc.data is not None else {})
        except ValidationError as err:
            problems.extend(_schema_problems(err, doc))
    for name in sorted(expected - set(docs) - {p.file or "" for p in problems}):
        if not (root / name).exists():
            problems.append(Problem("required file is missing", file=_display(root, name)))
    if not any(rel.startswith("topics/") for rel in docs) and not (root / "topics").is_dir():
        problems.append(Problem("topics folder is missing", file=_display(root, "topics/")))
    problems.extend(_text_problems(docs))
    if problems:
        raise InputError(problems)

    kb = KnowledgeBase(
        agent=models["agent.yaml"],
        practice=models["practice.yaml"],
        principles=models["principles.yaml"],
        persona=models["persona.yaml"],
        topics=tuple(models[rel] for rel in sorted(models) if rel.startswith("topics/")),
        commands=models["commands.yaml"],
        mantras=models["mantras.yaml"],
        digest=kb_digest(root),
    )
    problems = cross_reference_problems(kb, docs)
    if problems:
        raise InputError(problems)
    return kb


def _display(root: Path, rel: str) -> str:
    return (root / rel).as_posix()


# --- cross-references ---------------------------------------------------------------------------


def cross_reference_problems(kb: KnowledgeBase, docs: dict[str, SourceDoc]) -> list[Problem]:
    """Unique ids, references that resolve, and dialects that match languages."""
    report = _Reporter(docs)
    principle_ids = _check_principle_ids(kb, report)
    example_at = _check_sections(_section_files(kb, docs), report)
    examples = {ex.id: ex for ex in kb.examples()}
    _check_requires(examples, example_at, report)
    _check_commands(kb, principle_ids, example_at, examples, report)
    return report.problems


class _Reporter:
    """Collects problems, each placed at the line of its field in the file it came from."""

    def __init__(self, docs: dict[str, SourceDoc]) -> None:
        self.docs = docs
        self.problems: list[Problem] = []

    def __call__(self, rel: str, path: PathKey, message: str) -> None:
        doc = self.docs[rel]
        self.problems.append(
            Problem(message, file=doc.file, line=doc.line_of(path), field=format_path(path))
        )


def _check_principle_ids(kb: KnowledgeBase, report: _Reporter) -> dict[str, PathKey]:
    """Each principle id once; returns where each is first defined."""
    principle_ids: dict[str, PathKey] = {}
    for i, principle in enumerate(kb.principles.principles):
        path: PathKey = ("principles", i, "id")
        if principle.id in principle_ids:
            report("principles.yaml", path, f"duplicate principle id '{principle.id}'")
        principle_ids.setdefault(principle.id, path)
    return principle_ids


def _section_files(
    kb: KnowledgeBase, docs: dict[str, SourceDoc]
) -> list[tuple[str, PathKey, Section]]:
    """Every top-level section with its file and path there: practice, persona, then topics."""
    section_files: list[tuple[str, PathKey, Section]] = [
        ("practice.yaml", (key,), getattr(kb.practice, key)) for key in PracticeFile.model_fields
    ]
    section_files.append(("persona.yaml", (), kb.persona))
    section_files += [
        (rel, (), models_section)
        for rel, models_section in zip(
            sorted(r for r in docs if r.startswith("topics/")), kb.topics, strict=True
        )
    ]
    return section_files


def _check_sections(
    section_files: list[tuple[str, PathKey, Section]], report: _Reporter
) -> dict[str, tuple[str, PathKey]]:
    """Section and example ids unique across files, and each example well formed; returns
    where each example id is first defined (file, path)."""
    section_ids: dict[str, str] = {}
    example_at: dict[str, tuple[str, PathKey]] = {}
    for rel, root, section in section_files:
        for path, sec in _walk_sections(section, root):
            if sec.id in section_ids:
                report(rel, (*path, "id"),
                    f"duplicate section id '{sec.id}' (also in {section_ids[sec.id]})")
            section_ids.setdefault(sec.id, rel)
            for b, block in enumerate(sec.blocks):
                if not isinstance(block, ExampleBlock):
                    continue
                ex_path: PathKey = (*path, "blocks", b, "example")
                ex = block.example
                if ex.id in example_at:
                    report(rel, (*ex_path, "id"),
                        f"duplicate example id '{ex.id}' (also in {example_at[ex.id][0]})")
                _check_example(rel, ex_path, ex, report)
                example_at.setdefault(ex.id, (rel, ex_path))
    return example_at


def _check_example(rel: str, ex_path: PathKey, ex: Example, report: _Reporter) -> None:
    """A dialect exactly when the example is SQL, and a proof that can run."""
    if ex.language == "sql" and ex.dialect is None:
        report(rel, (*ex_path, "dialect"), "a sql example needs a dialect")
    if ex.language != "sql" and ex.dialect is not None:
        report(rel, (*ex_path, "dialect"),
            f"only sql examples have a dialect, not {ex.language}")
    for field, message in proof_problems(ex):
        report(rel, (*ex_path, *field), message)


def _check_requires(
    examples: dict[str, Example], example_at: dict[str, tuple[str, PathKey]], report: _Reporter
) -> None:
    """Each example a proof requires exists, has a proof itself, and does not require back."""
    for ex_id, (rel, ex_path) in example_at.items():
        proof = examples[ex_id].proof
        for r, ref in enumerate(proof.requires if proof else ()):
            target = examples.get(ref)
            where: PathKey = (*ex_path, "proof", "requires", r)
            if target is None:
                report(rel, where, f"no example has id '{ref}'{_suggest(ref, examples)}")
            elif target.proof is None:
                report(rel, where, f"example '{ref}' has no proof, so it cannot run")
            elif ref == ex_id or ex_id in required_ids(examples, ref):
                report(rel, where, f"'{ref}' requires '{ex_id}' in turn: a cycle")


def _check_commands(
    kb: KnowledgeBase,
    principle_ids: dict[str, PathKey],
    example_at: dict[str, tuple[str, PathKey]],
    examples: dict[str, Example],
    report: _Reporter,
) -> None:
    """Command names unique, their principles and proven examples known, checklist ids unique
    within each command."""
    names: dict[str, int] = {}
    for c, command in enumerate(kb.commands.commands):
        base: PathKey = ("commands", c)
        if command.name in names:
            report("commands.yaml", (*base, "name"),
                f"duplicate command name '{command.name}' (also commands[{names[command.name]}])")
        names.setdefault(command.name, c)
        for p, ref in enumerate(command.principles):
            if ref not in principle_ids:
                report("commands.yaml", (*base, "principles", p),
                    f"no principle has id '{ref}'{_suggest(ref, principle_ids)}")
        for e, ref in enumerate(command.examples):
            if ref not in example_at:
                report("commands.yaml", (*base, "examples", e),
                    f"no example has id '{ref}'{_suggest(ref, example_at)}")
            elif examples[ref].proof is None:
                report("commands.yaml", (*base, "examples", e),
                    f"example '{ref}' is not proven by `plumber verify` (a {examples[ref].language}"
                    " example); a command names proven examples only")
        _check_checklist_ids(command, base, report)


def _check_checklist_ids(command: Command, base: PathKey, report: _Reporter) -> None:
    seen_items: set[str] = set()
    for k, item in enumerate(command.checklist):
        if item.id in seen_items:
            report("commands.yaml", (*base, "checklist", k, "id"),
                f"duplicate checklist id '{item.id}'")
        seen_items.add(item.id)


# Engines each kind of example can be proven on.
_ENGINES_FOR = {
    ("sql", "postgres"): ("postgres",),
    ("sql", "duckdb"): ("duckdb",),
    ("sql", "snowflake"): ("sqlglot",),
    ("sql", "bigquery"): ("sqlglot",),
    ("python", None): ("postgres", "duckdb", "python", "airflow"),
}


def proof_problems(ex: Example) -> list[tuple[PathKey, str]]:
    """What is wrong with one example's proof on its own (engine, check kinds)."""
    if ex.language == "text":
        if ex.proof is not None:
            return [(("proof",), "text examples are not run; remove the proof")]
        return []
    if ex.proof is None:
        return [((), f"a {ex.language} example needs a proof (see docs/examples.md)")]
    engines = _ENGINES_FOR.get((ex.language, ex.dialect), ())
    problems: list[tuple[PathKey, str]] = []
    if ex.proof.engine not in engines:
        what = f"{ex.language} ({ex.dialect})" if ex.dialect else ex.language
        message = f"a {what} example is proven on {' or '.join(engines)}, not {ex.proof.engine}"
        problems.append((("proof", "engine"), message))
    allowed = ENGINE_CHECKS[ex.proof.engine]
    for i, check in enumerate(ex.proof.checks):
        if not isinstance(check, allowed):
            kind = next(iter(type(check).model_fields))
            problems.append((("proof", "checks", i),
                f"the {ex.proof.engine} engine has no '{kind}' check"))
    return problems


def required_ids(examples: dict[str, Example], start: str) -> list[str]:
    """Every example `start` depends on, dependencies first, each once; a cycle stops the walk."""
    order: list[str] = []

    def visit(example_id: str, trail: tuple[str, ...]) -> None:
        ex = examples.get(example_id)
        if ex is None or ex.proof is None:
            return
        for ref in ex.proof.requires:
            if ref in trail or ref in order:
                continue
            visit(ref, (*trail, ref))
            order.append(ref)

    visit(start, (start,))
    return order


def _walk_sections(section: Section, path: PathKey) -> Iterator[tuple[PathKey, Section]]:
    yield path, section
    for i, sub in enumerate(section.sections):
        yield from _walk_sections(sub, (*path, "sections", i))


def _text_problems(docs: dict[str, SourceDoc]) -> list[Problem]:
    problems: list[Problem] = []
    for doc in docs.values():
        for path, value in _walk_strings(doc.data, ()):
            trigger = shell_trigger(value)
            if trigger:
                problems.append(
                    Problem(
                        f"contains {trigger!r}, which Claude Code would execute as shell; "
                        "reword it",
                        file=doc.file,
                        line=doc.line_of(path),
                        field=format_path(path),
                    )
                )
    return problems


def _walk_strings(data: Any, path: PathKey) -> Iterator[tuple[PathKey, str]]:
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _walk_strings(value, (*path, str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _walk_strings(value, (*path, i))


# --- schema errors ------------------------------------------------------------------------------


def _schema_problems(err: ValidationError, doc: SourceDoc) -> list[Problem]:
    # Every knowledge-base model subclasses _Model, so a new one is suggested from unasked.
    known = field_names([*_Model.__subclasses__(), Proof, *PROOF_CHECKS])
    return schema_problems(err, doc, known)


# --- JSON Schema --------------------------------------------------------------------------------


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each knowledge-base file, keyed by its file name (or pattern)."""
    schemas = {}
    for name, model in FILE_MODELS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"pipeline-plumber knowledge base: {name}"
        schemas[name] = schema
    return schemas
