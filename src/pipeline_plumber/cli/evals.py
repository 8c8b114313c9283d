"""`plumber eval run | score | calibrate | scorers`: golden cases, scorers and reports.

Offline by default: no key and no network. Exit 0 when every case reaches its threshold (or the
scorers agree with every label), 1 when not, 2 on bad input.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import CheckFailed
from ..paths import default_kb
from ..words import plural
from . import cli
from .eval_output import append_step_summary, write_reports
from .live import compare_command, live_options, run_live_command, wanted

if TYPE_CHECKING:
    from ..evals.answers import Answer
    from ..evals.cases import Case, Checklists, Suite
    from ..evals.runner import AnswerSource
    from ..evals.scorers import Resources
    from ..evals.scoring import CaseResult

_PROGRESS_FROM = 20  # answers; fewer finish before a bar would be worth drawing


def _evals_option(f: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "--evals", "evals_dir", type=click.Path(path_type=Path, file_okay=False),
        default=None, callback=_chosen_suite,
        help="Eval folder: cases/, rubrics/, answers/, recordings/. Default: ./evals when it "
             "holds cases/, else the suite shipped with plumber.")(f)


def _chosen_suite(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """`--evals`, else `./evals`, else the shipped suite, which is named on stderr so that a
    user outside a checkout knows where the cases come from and how to use their own."""
    if value is not None:
        return value
    from ..paths import default_evals, package_data

    chosen = default_evals()
    if chosen == package_data("evals"):
        click.echo(f"eval suite: the one shipped with plumber ({chosen}); pass --evals DIR for "
                   "your own", err=True)
    return chosen


def _kb_option(f: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "--kb", "kb_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
        help="Knowledge-base folder (for the commands' checklists). Default: ./kb or shipped.")(f)


def _suite_options(f: Callable[..., object]) -> Callable[..., object]:
    """`--evals` and `--kb`: the eval folder and the knowledge base whose checklists it grades."""
    return _evals_option(_kb_option(f))


def _filters(f: Callable[..., object]) -> Callable[..., object]:
    f = click.option("--case", "case_ids", multiple=True, metavar="ID",
                     help="Only this case (repeatable).")(f)
    f = click.option("--tag", "tags", multiple=True,
                     help="Only cases with this tag (repeatable).")(f)
    return click.option("--command", "commands", multiple=True, metavar="NAME",
                        help="Only cases of this command (repeatable).")(f)


@cli.group(name="eval")
def eval_group() -> None:
    """Score answers against golden cases and the commands' rubrics, offline by default.

    Cases live in evals/cases/*.yaml, per-command rubrics in evals/rubrics/, hand-written
    reference and flawed answers in evals/answers/<case-id>/, recorded model answers in
    evals/recordings/. See docs/evals.md.
    """


def _jobs_option(f: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "-j", "--jobs", type=click.IntRange(1, 1024), default=None, metavar="N",
        help="Answers scored at once, each in its own sandbox database. Default: the number "
             "of CPUs.")(f)


def scoring_jobs(jobs: int | None) -> int:
    """Worker threads for scoring: the number given, else one per CPU."""
    return jobs or os.cpu_count() or 1


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    if total < _PROGRESS_FROM:
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _answer_timeout_option(f: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "--answer-timeout", "answer_timeout", type=click.FloatRange(min=0.1), default=20.0,
        show_default=True, metavar="SECONDS",
        help="Deadline for everything one answer runs in the sandbox (all its statements and "
             "probes); past it the check fails with 'timed out'.")(f)


@eval_group.command(name="run")
@_suite_options
@_filters
@click.option("--answers", type=click.Choice(["recorded", "references", "flawed"]),
              default="recorded", show_default=True,
              help="What to score: recorded model answers, or the hand-written references or "
                   "flawed answers.")
@click.option("--recordings", "recordings_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Recordings folder. Default: <evals>/recordings.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write eval-log.json, junit.xml and summary.md into this folder.")
@click.option("--html", "with_html", is_flag=True, help="Also write report.html (needs --out).")
@click.option("-v", "--verbose", is_flag=True, help="List every failed and unscored check.")
@live_options
@_answer_timeout_option
def run_command(evals_dir: Path, kb_dir: Path | None, case_ids: tuple[str, ...],
                tags: tuple[str, ...], commands: tuple[str, ...], answers: str,
                recordings_dir: Path | None, out_dir: Path | None, with_html: bool,
                verbose: bool, answer_timeout: float, **live: Any) -> None:
    """Score answers to the golden cases; exit 0 when every case reaches its threshold.

    With no key and no network it scores recorded answers (a case without one is an error,
    exit 2) or, with --answers references, the hand-written references. Checks graded by the
    LLM judge without a recorded verdict are reported as not scored and left out of the score.
    If $GITHUB_STEP_SUMMARY is set, the Markdown summary is appended to it.

    With --live (or --replay, --resume) it asks the model instead: see docs/live-evals.md.
    Exit 3 when --max-usd stopped the run.
    """
    if wanted(live):
        return run_live_command(
            evals_dir=evals_dir, kb_dir=kb_dir, case_ids=case_ids, tags=tags, commands=commands,
            answers=answers, recordings_dir=recordings_dir, out_dir=out_dir,
            with_html=with_html, verbose=verbose, live=live)
    from ..evals import cases as cases_mod
    from ..evals import reports, runner

    kb = cases_mod.load_checklists(kb_dir or default_kb())
    suite = cases_mod.load_suite(evals_dir, kb)
    chosen = cases_mod.select(suite.cases, ids=case_ids, tags=tags, commands=commands)
    recordings = recordings_dir or evals_dir / "recordings"
    source = _answer_source(answers, suite, recordings)
    total = sum(len(suite.answers[c.id].flawed) for c in chosen) if answers == "flawed" else len(
        chosen)
    with _resources(recordings, answer_timeout) as resources, \
            _progress(total, "scoring") as progress:
        result = runner.run(suite, chosen, source, answers=answers, resources=resources,
                            progress=progress, jobs=scoring_jobs(live.get("jobs")))
    click.echo(reports.terminal_table(result, verbose=verbose))
    if out_dir is not None:
        write_reports(result, out_dir, with_html=with_html)
    elif with_html:
        click.echo("note: --html needs --out DIR; no report written", err=True)
    append_step_summary(reports.markdown_summary(result))
    if not result.passed:
        raise CheckFailed()


def _answer_source(answers: str, suite: Suite, recordings: Path) -> AnswerSource:
    """The answers `--answers` names; recorded ones must exist, or the user is told what to
    pass instead."""
    from ..errors import InputError, Problem
    from ..evals import runner

    if answers == "recorded" and not any((recordings / "answers").glob("*/*.json")):
        raise InputError([Problem(
            f"no recorded answers in {recordings / 'answers'}: pass --answers references to "
            "score the hand-written reference answers, or record model answers with --live "
            "(docs/live-evals.md)", field="--answers")])
    return {
        "recorded": lambda: runner.recorded_source(recordings),
        "references": lambda: runner.reference_source(suite),
        "flawed": lambda: runner.flawed_source(suite),
    }[answers]()


def _resources(recordings: Path, answer_timeout: float) -> Resources:
    """What scoring needs besides the answer: the recorded judge verdicts, the sandbox's
    deadline per answer."""
    from ..evals.scorers import Resources
    from ..evals.scorers.judge import JudgeStore

    return Resources(judge_store=JudgeStore(recordings / "judge"),
                     answer_timeout_s=answer_timeout)


@eval_group.command(name="score")
@_suite_options
@click.option("--command", "command", default=None, metavar="NAME",
              help="Grade by this command's rubric (with --case: optional, must agree).")
@click.option("--case", "case_id", default=None, metavar="ID",
              help="Grade as an answer to this golden case: its checks and probes, its "
                   "command's rubric, its prompt, dialect and threshold.")
@click.option("--answer", "answer_file", required=True,
              type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="A Markdown file with the answer text.")
@click.option("--prompt", "prompt_file", default=None,
              type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The request the answer replies to; code it quotes never counts against "
                   "the answer.")
@click.option("--dialect", type=click.Choice(["postgres", "snowflake", "bigquery", "duckdb"]),
              default=None, help="SQL dialect of the answer. Default: the case's, else the one "
                                 "the answer names.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Pass when the weighted mean of the scored checks reaches this. Default: "
                   "the case's, else 0.8.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict and every check as JSON.")
@_answer_timeout_option
def score_command(evals_dir: Path, kb_dir: Path | None, command: str | None,
                  case_id: str | None, answer_file: Path, prompt_file: Path | None,
                  dialect: str | None, threshold: float | None, as_json: bool,
                  answer_timeout: float) -> None:
    """Grade one answer by a command's rubric (the checklist of kb/commands.yaml, made
    checkable), or with --case as an answer to a golden case.

    Exit 0 when it reaches the threshold, 1 when not.
    """
    from ..evals import cases as cases_mod
    from ..evals.scoring import score_case, score_with_rubric

    kb = cases_mod.load_checklists(kb_dir or default_kb())
    answer = _read_text_file(answer_file, "--answer", strip_front_matter=True)
    prompt = _read_text_file(prompt_file, "--prompt").text if prompt_file else ""
    with _resources(evals_dir / "recordings", answer_timeout) as resources, \
            resources.answer_scope():
        if case_id is not None:
            suite = cases_mod.load_suite(evals_dir, kb, with_answers=False)
            case = _case_to_score(suite.cases, case_id, command, dialect, prompt_file)
            result = score_case(case, answer, suite.rubric_for(case), resources=resources,
                                threshold=threshold)
        else:
            rubric = cases_mod.load_rubric(evals_dir, kb, _known_command(kb, command))
            result = score_with_rubric(rubric, answer, dialect=dialect, prompt=prompt,
                                       threshold=0.8 if threshold is None else threshold,
                                       resources=resources)
    _print_verdict(result, as_json=as_json)
    if result.status != "pass":
        raise CheckFailed()


def _print_verdict(result: CaseResult, *, as_json: bool) -> None:
    """One line per check, then the verdict; or all of it as JSON."""
    if as_json:
        data = result.to_json()
        if not result.case_id:
            data.pop("case_id")
        click.echo(json.dumps(data, indent=1, ensure_ascii=False))
        return
    for check in result.checks:
        mark = " (blocker)" if check.blocks else ""
        click.echo(f"{check.status:10} {check.id}{mark}: {check.explanation}")
    score = "n/a" if result.score is None else f"{result.score:.2f}"
    click.echo(f"{result.status}: score {score}, threshold {result.threshold:.2f}; "
               f"{plural(len(result.not_scored), 'check')} not scored"
               + (f"; failed blocker(s): {', '.join(c.id for c in result.blockers)}"
                  if result.blockers else ""))


def _known_command(kb: Checklists, command: str | None) -> str:
    from ..errors import InputError, Problem
    from ..schema_errors import suggest

    names = [c.name for c in kb.commands]
    if command is None:
        raise InputError([Problem("name the rubric with --command NAME, or a golden case with "
                                  "--case ID", field="--command")])
    if command not in names:
        raise InputError([Problem(f"unknown command '{command}'{suggest(command, names)}; one of "
                                  f"{', '.join(names)}", field="--command")])
    return command


def _case_to_score(cases: tuple[Case, ...], case_id: str, command: str | None,
                   dialect: str | None, prompt_file: Path | None) -> Case:
    """The case `--case` names; `--command` and `--dialect`, when given, must agree with it,
    and its own prompt is the one the answer replies to."""
    from ..errors import InputError, Problem
    from ..evals import cases as cases_mod

    (case,) = cases_mod.select(cases, ids=(case_id,))
    problems = []
    if command is not None and command != case.command:
        problems.append(Problem(f"case '{case.id}' is for command '{case.command or '(none)'}', "
                                f"not '{command}'", field="--command"))
    if dialect is not None and case.spec.dialect is not None and dialect != case.spec.dialect:
        problems.append(Problem(f"case '{case.id}' is in {case.spec.dialect}, not {dialect}",
                                field="--dialect"))
    if prompt_file is not None:
        problems.append(Problem(f"case '{case.id}' has its own prompt; drop --prompt",
                                field="--prompt"))
    if problems:
        raise InputError(problems)
    return case


def _read_text_file(path: Path, option: str, *, strip_front_matter: bool = False) -> Answer:
    """A UTF-8 Markdown file as an Answer (front matter removed, line numbers kept)."""
    from .. import frontmatter
    from ..errors import InputError, Problem
    from ..evals.answers import MAX_ANSWER_BYTES, Answer

    try:
        if path.stat().st_size > MAX_ANSWER_BYTES:
            raise InputError([Problem(f"larger than {MAX_ANSWER_BYTES} bytes", file=str(path),
                                      field=option)])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError([Problem(f"not UTF-8 text: {err}", file=str(path),
                                  field=option)]) from err
    except OSError as err:
        raise InputError([Problem(f"cannot read: {err.strerror}", file=str(path),
                                  field=option)]) from err
    if not strip_front_matter:
        return Answer(text, "file", path.as_posix())
    _, body, body_line = frontmatter.split(text)
    return Answer("\n" * (body_line - 1) + body, "file", path.as_posix())


@eval_group.command(name="calibrate")
@_suite_options
@_filters
@click.option("--json", "as_json", is_flag=True, help="Print the agreement table as JSON.")
@_jobs_option
@_answer_timeout_option
def calibrate_command(evals_dir: Path, kb_dir: Path | None, case_ids: tuple[str, ...],
                      tags: tuple[str, ...], commands: tuple[str, ...], as_json: bool,
                      jobs: int | None,
                      answer_timeout: float) -> None:
    """Run every check on the labelled answers and report agreement per scorer.

    A reference or correct answer must pass every check and its case; a flawed answer must
    fail exactly the checks its label names, and its case. Exit 0 on full agreement, 1
    otherwise.
    """
    from ..evals import cases as cases_mod
    from ..evals import reports, runner

    kb = cases_mod.load_checklists(kb_dir or default_kb())
    suite = cases_mod.load_suite(evals_dir, kb)
    chosen = cases_mod.select(suite.cases, ids=case_ids, tags=tags, commands=commands)
    total = sum(len(suite.answers[c.id].labelled) for c in chosen)
    with _resources(evals_dir / "recordings", answer_timeout) as resources, \
            _progress(total, "calibrating") as progress:
        cal = runner.calibrate(suite, chosen, resources=resources, progress=progress,
                               jobs=scoring_jobs(jobs))
    if as_json:
        click.echo(json.dumps(cal.to_json(), indent=1, ensure_ascii=False))
    else:
        click.echo(reports.calibration_table(cal))
        for line in cal.disagreements:
            click.echo(f"disagree: {line}")
        verdict = "full agreement" if cal.full_agreement else (
            plural(len(cal.disagreements), "disagreement"))
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(cal.by_kind.items()))
        click.echo(f"false passes: {len(cal.false_passes)} (flawed answers whose case passed); "
                   f"false fails: {len(cal.false_fails)} (reference or correct answers whose "
                   "case failed)")
        click.echo(f"{verdict} over {plural(cal.answers, 'labelled answer')} ({kinds}) in "
                   f"{plural(len(chosen), 'case')}")
    if not cal.full_agreement:
        raise CheckFailed()


@eval_group.command(name="scorers")
@click.argument("name", required=False)
def scorers_command(name: str | None) -> None:
    """List the scorers (or show NAME's documentation, with a passing and a failing example)."""
    from ..errors import InputError, Problem
    from ..evals.scorers import REGISTRY, arg_names, load_all
    from ..schema_errors import suggest

    load_all()
    if name is not None:
        if name not in REGISTRY:
            raise InputError([Problem(f"unknown scorer '{name}'{suggest(name, REGISTRY)}")])
        info = REGISTRY[name]
        click.echo(f"{info.name} (v{info.version}, {info.family}); args: "
                   f"{', '.join(arg_names(name)) or 'none'}\n\n{info.doc}")
        return
    for info in sorted(REGISTRY.values(), key=lambda i: (i.family, i.name)):
        first = info.doc.splitlines()[0] if info.doc else ""
        click.echo(f"{info.name:20} {info.family:10} {first}")


eval_group.add_command(compare_command)
