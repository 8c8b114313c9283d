"""Golden cases, per-command rubrics and hand-written answers: loaded, validated, cross-checked.

An eval folder (default `./evals`) holds::

    cases/*.yaml             cases: [{id, command, dialect, prompt, tags, checks, threshold}]
    rubrics/<command>.yaml   every checklist item of the command -> checks and/or a judge criterion
    answers/<case-id>/       reference.md, correct-*.md and flawed-*.md, hand-written and
                             labelled so
    recordings/              answers and judge verdicts recorded by live runs

Every file is validated against a schema that forbids unknown keys; every problem names file,
line and field. Cross-references are checked too: a case's command exists in the knowledge base,
each scorer exists and takes the arguments given, every checklist item of every command has a
rubric entry (and no entry names an item that does not exist), every case has a reference and a
flawed answer, and a flawed answer's `fails` names checks the case really runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ..errors import InputError, Problem
from ..kb import SLUG_PATTERN, Command, CommandsFile, kb_digest
from ..schema_errors import field_names, schema_problems, suggest
from ..yamlsource import PathKey, SourceDoc, format_path, load_yaml
from .answers import Answer, load_answer_file
from .scorers import REGISTRY, ArgsError, ScoreFn, arg_names, build_check, load_all

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
CheckName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Text = Annotated[str, StringConstraints(min_length=1)]
SqlDialect = Literal["postgres", "snowflake", "bigquery", "duckdb"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckSpec(_Model):
    """One check: a registered scorer, its arguments and its weight in the case's score."""

    scorer: Text = Field(description="Name of a registered scorer (`plumber eval scorers`).")
    id: CheckName | None = Field(
        default=None,
        description="Id of the check within the case (default: the scorer's name); flawed "
        "answers name it in `fails`.",
    )
    args: dict[str, Any] = Field(default_factory=dict, description="The scorer's arguments.")
    weight: float = Field(default=1.0, gt=0, description="Weight in the case's weighted score.")


class CaseSpec(_Model):
    """A golden case: what a user asks, and how an answer is judged."""

    id: Slug = Field(description="Unique id across all case files; names the answers folder.")
    command: Slug | None = Field(
        default=None, description="The command exercised (`schema`, ...); omit for a free prompt."
    )
    dialect: SqlDialect | None = Field(
        default=None, description="SQL dialect of the answer; SQL checks parse in it."
    )
    prompt: Text = Field(description="The user's text, as typed after the command.")
    tags: list[Slug] = Field(default_factory=list, description="Free labels for selecting cases.")
    checks: list[CheckSpec] = Field(
        default_factory=list,
        description="The case's own checks, run on top of the command's rubric.",
    )
    threshold: float = Field(
        default=0.8, ge=0, le=1,
        description="Pass when the weighted mean of the scored checks reaches this value.",
    )


class CasesFile(_Model):
    """`evals/cases/*.yaml`."""

    cases: list[CaseSpec] = Field(min_length=1)


class RubricItem(_Model):
    """How one checklist item of a command is judged."""

    checks: list[CheckSpec] = Field(
        default_factory=list, description="Deterministic checks for the item."
    )
    judge: Text | None = Field(
        default=None,
        description="Criterion for the LLM judge; offline without a recorded verdict it is "
        "'not scored'.",
    )


class RubricFile(_Model):
    """`evals/rubrics/<command>.yaml`: the command's checklist, made checkable."""

    command: Slug = Field(description="The command; must match the file name.")
    items: dict[Slug, RubricItem] = Field(
        min_length=1, description="Checklist item id (from kb/commands.yaml) -> how it is judged."
    )


_FIELDS = field_names([CheckSpec, CaseSpec, CasesFile, RubricItem, RubricFile])


# --- loaded objects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """A check ready to run. `origin` is `case` or `rubric:<checklist item>`."""

    id: str
    scorer: str
    args: Mapping[str, Any]
    weight: float
    origin: str
    fn: ScoreFn = field(compare=False, repr=False)

    @property
    def version(self) -> int:
        return REGISTRY[self.scorer].version


@dataclass(frozen=True)
class Rubric:
    command: str
    checks: tuple[Check, ...]
    digest: str
    file: str


@dataclass(frozen=True)
class Case:
    spec: CaseSpec
    file: str
    line: int
    digest: str
    checks: tuple[Check, ...]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def command(self) -> str | None:
        return self.spec.command

    @property
    def prompt_digest(self) -> str:
        """Changes when what the model is asked changes (command or prompt), not the checks."""
        return _digest({"command": self.spec.command, "prompt": self.spec.prompt})


@dataclass(frozen=True)
class CaseAnswers:
    reference: Answer
    flawed: tuple[Answer, ...]
    correct: tuple[Answer, ...] = ()

    @property
    def labelled(self) -> tuple[Answer, ...]:
        """Every hand-written answer: the reference, the other correct ones, the flawed ones."""
        return (self.reference, *self.correct, *self.flawed)


@dataclass(frozen=True)
class Suite:
    root: Path
    kb_digest: str
    cases: tuple[Case, ...]
    rubrics: dict[str, Rubric]
    answers: dict[str, CaseAnswers]

    def rubric_for(self, case: Case) -> Rubric | None:
        return self.rubrics.get(case.command) if case.command else None

    def checks_for(self, case: Case) -> tuple[Check, ...]:
        rubric = self.rubric_for(case)
        return case.checks + (rubric.checks if rubric else ())


@dataclass(frozen=True)
class Checklists:
    """What evals need from the knowledge base: the commands (with their checklists) and the
    digest of the whole knowledge base, recorded in run logs."""

    commands: tuple[Command, ...]
    digest: str

    def command(self, name: str) -> Command:
        for command in self.commands:
            if command.name == name:
                return command
        raise KeyError(name)


def load_checklists(kb_dir: Path) -> Checklists:
    """Read `commands.yaml` of the knowledge base (validated by its own schema). Only that file
    is needed to grade answers, so an unrelated knowledge-base edit never blocks an eval."""
    path = kb_dir / "commands.yaml"
    doc = load_yaml(path, path.as_posix())
    try:
        parsed = CommandsFile.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as err:
        raise InputError(schema_problems(err, doc, field_names([CommandsFile, Command]))) from err
    return Checklists(tuple(parsed.commands), kb_digest(kb_dir))


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# --- loading -------------------------------------------------------------------------------------


def _build_checks(specs: list[CheckSpec], doc: SourceDoc, base: PathKey, origin: str,
                  id_prefix: str, problems: list[Problem]) -> list[Check]:
    load_all()
    checks: list[Check] = []
    seen: dict[str, PathKey] = {}
    for k, spec in enumerate(specs):
        path: PathKey = (*base, k)
        if spec.scorer not in REGISTRY:
            problems.append(Problem(
                f"unknown scorer '{spec.scorer}'{suggest(spec.scorer, REGISTRY)}; "
                f"known: {', '.join(sorted(REGISTRY))}",
                file=doc.file, line=doc.line_of((*path, "scorer")),
                field=format_path((*path, "scorer"))))
            continue
        check_id = id_prefix + (spec.id or spec.scorer)
        if check_id in seen:
            problems.append(Problem(
                f"two checks have the id '{check_id}'; give each an 'id'", file=doc.file,
                line=doc.line_of((*path, "id")) or doc.line_of(path), field=format_path(path)))
            continue
        seen[check_id] = path
        try:
            fn = build_check(spec.scorer, dict(spec.args))
        except ArgsError as err:
            args_path: PathKey = (*path, "args")
            if err.error is not None:
                problems.extend(schema_problems(err.error, doc, arg_names(spec.scorer), args_path))
            else:
                problems.append(Problem(err.message, file=doc.file, line=doc.line_of(args_path),
                                        field=format_path(args_path)))
            continue
        checks.append(Check(check_id, spec.scorer, spec.args, spec.weight, origin, fn))
    return checks


def _validate(doc: SourceDoc, model: type[_Model], problems: list[Problem]) -> Any:
    try:
        return model.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as err:
        problems.extend(schema_problems(err, doc, _FIELDS))
        return None


def load_suite(root: Path, kb: Checklists, *, with_answers: bool = True) -> Suite:
    """Load `root` (an eval folder) against the knowledge base; raise InputError listing every
    problem found."""
    if not (root / "cases").is_dir():
        raise InputError([Problem("eval cases folder not found: pass --evals DIR, a folder with "
                                  "cases/ and rubrics/", file=(root / "cases").as_posix())])
    problems: list[Problem] = []
    rubrics = _load_rubrics(root, kb, problems)
    cases = _load_cases(root, kb, problems)
    if not cases and not problems:
        problems.append(Problem("no cases found (cases/*.yaml)", file=(root / "cases").as_posix()))

    suite = Suite(root, kb.digest, tuple(cases), rubrics, {})
    if with_answers and not problems:
        answers = _load_answers(root, suite, problems)
        suite = Suite(root, kb.digest, tuple(cases), rubrics, answers)
    if problems:
        raise InputError(problems)
    return suite


def _load_rubrics(root: Path, kb: Checklists, problems: list[Problem]) -> dict[str, Rubric]:
    """Every rubric in `root`/rubrics, by command; a command without one is a problem."""
    for command in {c.name: c for c in kb.commands}.values():
        path = root / "rubrics" / f"{command.name}.yaml"
        if not path.is_file():
            problems.append(Problem(
                f"rubric for command '{command.name}' is missing: map each checklist item "
                f"({', '.join(i.id for i in command.checklist)}) to checks or a judge criterion",
                file=path.as_posix()))
    rubrics: dict[str, Rubric] = {}
    for path in sorted((root / "rubrics").glob("*.yaml")):
        rubric = _load_rubric(path, kb, problems)
        if rubric:
            rubrics[rubric.command] = rubric
    return rubrics


def _load_cases(root: Path, kb: Checklists, problems: list[Problem]) -> list[Case]:
    """Every case of `root`/cases/*.yaml, in file order; an id used twice is a problem."""
    commands = {c.name: c for c in kb.commands}
    cases: list[Case] = []
    where: dict[str, str] = {}
    for path in sorted((root / "cases").glob("*.yaml")):
        try:
            doc = load_yaml(path, path.as_posix())
        except InputError as err:
            problems.extend(err.problems)
            continue
        parsed = _validate(doc, CasesFile, problems)
        if parsed is None:
            continue
        for i, spec in enumerate(parsed.cases):
            base: PathKey = ("cases", i)
            if spec.id in where:
                problems.append(Problem(f"duplicate case id '{spec.id}' (also in {where[spec.id]})",
                                        file=doc.file, line=doc.line_of((*base, "id")),
                                        field=format_path((*base, "id"))))
                continue
            where[spec.id] = f"{doc.file}:{doc.line_of(base) or 1}"
            case = _case_from_spec(spec, doc, base, commands, problems)
            if case is not None:
                cases.append(case)
    return cases


def _case_from_spec(spec: CaseSpec, doc: SourceDoc, base: PathKey,
                    commands: Mapping[str, Command], problems: list[Problem]) -> Case | None:
    """The case `spec` describes, its checks built; None when its command is unknown."""
    line = doc.line_of(base) or 1
    if spec.command is not None and spec.command not in commands:
        problems.append(Problem(
            f"unknown command '{spec.command}'{suggest(spec.command, commands)}; "
            f"the knowledge base has {', '.join(commands)}",
            file=doc.file, line=doc.line_of((*base, "command")),
            field=format_path((*base, "command"))))
        return None
    checks = _build_checks(spec.checks, doc, (*base, "checks"), "case", "", problems)
    if spec.command is None and not checks:
        problems.append(Problem("a free-prompt case needs checks of its own",
                                file=doc.file, line=line, field=format_path(base)))
    return Case(spec, doc.file, line, _digest(spec.model_dump(mode="json")), tuple(checks))


def _load_rubric(path: Path, kb: Checklists, problems: list[Problem]) -> Rubric | None:
    try:
        doc = load_yaml(path, path.as_posix())
    except InputError as err:
        problems.extend(err.problems)
        return None
    parsed = _validate(doc, RubricFile, problems)
    if parsed is None:
        return None
    names = [c.name for c in kb.commands]
    if parsed.command != path.stem:
        problems.append(Problem(f"command '{parsed.command}' does not match the file name "
                                f"'{path.name}'", file=doc.file, line=doc.line_of(("command",)),
                                field="command"))
        return None
    if parsed.command not in names:
        problems.append(Problem(f"unknown command '{parsed.command}'"
                                f"{suggest(parsed.command, names)}", file=doc.file,
                                line=doc.line_of(("command",)), field="command"))
        return None
    checklist = [item.id for item in kb.command(parsed.command).checklist]
    for item_id in checklist:
        if item_id not in parsed.items:
            problems.append(Problem(
                f"checklist item '{item_id}' of command '{parsed.command}' has no rubric entry; "
                "add checks or a judge criterion", file=doc.file, line=doc.line_of(("items",)),
                field="items"))
    checks: list[Check] = []
    for item_id, item in parsed.items.items():
        base: PathKey = ("items", item_id)
        if item_id not in checklist:
            problems.append(Problem(
                f"'{item_id}' is not a checklist item of command '{parsed.command}'"
                f"{suggest(item_id, checklist)}; items: {', '.join(checklist)}",
                file=doc.file, line=doc.line_of(base), field=format_path(base)))
            continue
        if not item.checks and item.judge is None:
            problems.append(Problem("give the item checks, a judge criterion, or both",
                                    file=doc.file, line=doc.line_of(base),
                                    field=format_path(base)))
            continue
        checks += _build_checks(item.checks, doc, (*base, "checks"), f"rubric:{item_id}",
                                f"{item_id}/", problems)
        if item.judge is not None:
            fn = build_check("judge", {"criterion": item.judge})
            checks.append(Check(f"{item_id}/judge", "judge", {"criterion": item.judge}, 1.0,
                                f"rubric:{item_id}", fn))
    return Rubric(parsed.command, tuple(checks), _digest(parsed.model_dump(mode="json")),
                  doc.file)


def _load_answers(root: Path, suite: Suite, problems: list[Problem]) -> dict[str, CaseAnswers]:
    folder = root / "answers"
    out: dict[str, CaseAnswers] = {}
    ids = {case.id for case in suite.cases}
    if folder.is_dir():
        for stray in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in ids):
            problems.append(Problem(f"answers for unknown case '{stray.name}'"
                                    f"{suggest(stray.name, ids)}", file=stray.as_posix()))
    for case in suite.cases:
        here = folder / case.id
        reference_path = here / "reference.md"
        flawed_paths = sorted(here.glob("flawed-*.md"))
        if not reference_path.is_file() or not flawed_paths:
            missing = "reference.md" if not reference_path.is_file() else "flawed-<reason>.md"
            problems.append(Problem(
                f"case '{case.id}' needs a hand-written {missing} in {here.as_posix()}/",
                file=case.file, line=case.line, field="id"))
            continue
        try:
            reference = load_answer_file(reference_path)
            flawed = [load_answer_file(p) for p in flawed_paths]
            correct = [load_answer_file(p) for p in sorted(here.glob("correct-*.md"))]
        except InputError as err:
            problems.extend(err.problems)
            continue
        if reference.provenance != "reference":
            problems.append(Problem("reference.md must be labelled 'hand-written reference'",
                                    file=reference.source, line=2, field="provenance"))
        problems.extend(Problem("a correct-*.md file must be labelled 'hand-written correct'",
                                file=answer.source, line=2, field="provenance")
                        for answer in correct if answer.provenance != "correct")
        check_ids = [c.id for c in suite.checks_for(case)]
        for answer in flawed:
            label = answer.label
            if answer.provenance != "flawed" or label is None:
                problems.append(Problem("a flawed-*.md file must be labelled 'hand-written "
                                        "flawed'", file=answer.source, line=2,
                                        field="provenance"))
                continue
            for check_id in label.fails:
                if check_id not in check_ids:
                    problems.append(Problem(
                        f"'{check_id}' is not a check of case '{case.id}'"
                        f"{suggest(check_id, check_ids)}", file=answer.source, line=4,
                        field="fails"))
        out[case.id] = CaseAnswers(reference, tuple(flawed), tuple(correct))
    return out


def select(cases: tuple[Case, ...], *, ids: tuple[str, ...] = (), tags: tuple[str, ...] = (),
           commands: tuple[str, ...] = ()) -> tuple[Case, ...]:
    """The cases matching every filter given (ids, any of the tags, any of the commands).

    A filter value no case has is a typo, not an empty run: InputError naming the option, as
    when the filters together leave no case."""
    known_ids = [c.id for c in cases]
    known_tags = sorted({tag for c in cases for tag in c.spec.tags})
    known_commands = sorted({c.command for c in cases if c.command})
    problems = [Problem(f"no case '{u}'{suggest(u, known_ids)}", field="--case")
                for u in sorted(set(ids) - set(known_ids))]
    problems += [Problem(f"no case has tag '{u}'{suggest(u, known_tags)}", field="--tag")
                 for u in sorted(set(tags) - set(known_tags))]
    problems += [Problem(f"no case of command '{u}'{suggest(u, known_commands)}",
                         field="--command")
                 for u in sorted(set(commands) - set(known_commands))]
    if problems:
        raise InputError(problems)
    chosen = tuple(
        c for c in cases
        if (not ids or c.id in ids)
        and (not tags or set(tags) & set(c.spec.tags))
        and (not commands or c.command in commands)
    )
    if not chosen and (ids or tags or commands):
        raise InputError([Problem("no case matches --case, --tag and --command together",
                                  field="--command" if commands else "--tag")])
    return chosen


def load_rubric(root: Path, kb: Checklists, command: str) -> Rubric:
    """One command's rubric alone (for `plumber eval score`); raises InputError on problems."""
    path = root / "rubrics" / f"{command}.yaml"
    if not path.is_file():
        raise InputError([Problem(f"rubric for command '{command}' not found: pass --evals DIR, "
                                  "a folder with rubrics/", file=path.as_posix())])
    problems: list[Problem] = []
    rubric = _load_rubric(path, kb, problems)
    if problems or rubric is None:
        raise InputError(problems)
    return rubric
