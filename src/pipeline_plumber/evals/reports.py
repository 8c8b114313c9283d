"""Reports of a run: the versioned JSON log, JUnit XML, a Markdown summary, a terminal table and
an optional self-contained HTML page. All are pure text builders; `write_reports` writes them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from .. import atomic
from ..untrusted_text import CELL_CHARS, code, html_text, markdown, plain, xml_text
from .runner import Calibration, RunResult, Tally
from .scoring import CaseResult

LOG_NAME = "eval-log.json"
JUNIT_NAME = "junit.xml"
SUMMARY_NAME = "summary.md"
HTML_NAME = "report.html"

_MARK = {"pass": "PASS", "fail": "FAIL", "not-scored": "N/S"}


def _score(result: CaseResult) -> str:
    return "n/a" if result.score is None else f"{result.score:.2f}"


def _label(result: CaseResult) -> str:
    answer = result.answer
    name = Path(answer.source).name if answer.source else answer.provenance
    return f"{answer.provenance}:{name}" if answer.provenance in ("flawed", "recorded") else (
        answer.provenance)


def log_json(run: RunResult) -> str:
    return json.dumps(run.to_json(), indent=1, ensure_ascii=False) + "\n"


def junit_xml(run: RunResult) -> str:
    """One testsuite per command, one testcase per (case, answer); failing checks in <failure>,
    checks that were not scored in <system-out>."""
    root = ET.Element("testsuites", name="plumber eval")
    suites: dict[str, ET.Element] = {}
    for result in run.results:
        command = result.command or "free"
        suite = suites.get(command)
        if suite is None:
            suite = suites[command] = ET.SubElement(root, "testsuite",
                                                    name=xml_text(f"eval.{command}", CELL_CHARS))
        seconds = sum(c.seconds for c in result.checks)
        case = ET.SubElement(suite, "testcase", classname=xml_text(f"eval.{command}", CELL_CHARS),
                             name=xml_text(f"{result.case_id} [{_label(result)}]", CELL_CHARS),
                             time=f"{seconds:.3f}")
        if result.status == "fail":
            failure = ET.SubElement(case, "failure", message=(
                f"score {_score(result)} < threshold {result.threshold:.2f}"))
            failure.text = "\n".join(xml_text(f"{c.id} ({c.scorer}): {c.explanation}")
                                     for c in result.failed)
        elif result.status == "not-scored":
            ET.SubElement(case, "skipped", message="no check could be scored")
        if result.not_scored:
            out = ET.SubElement(case, "system-out")
            out.text = "not scored: " + "; ".join(xml_text(f"{c.id}: {c.explanation}")
                                                  for c in result.not_scored)
    for suite in suites.values():
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
        suite.set("errors", "0")
    root.set("tests", str(len(run.results)))
    root.set("failures", str(run.counts()["fail"]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def markdown_summary(run: RunResult) -> str:
    """Fit for $GITHUB_STEP_SUMMARY: verdict, counts, a table of cases, then what failed."""
    counts = run.counts()
    verdict = "passed" if run.passed else "did not pass"
    lines = [
        f"## plumber eval: {verdict}",
        "",
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['not-scored']} not scored; "
        f"answers: {markdown(str(run.spec.get('answers')))}; "
        f"knowledge base {code(str(run.spec.get('kb_digest'))[:12])}.",
        "",
        "| case | command | answer | score | threshold | result | not scored |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for r in run.results:
        lines.append(f"| {markdown(r.case_id)} | {markdown(r.command or '-')} | "
                     f"{markdown(_label(r))} | {_score(r)} | "
                     f"{r.threshold:.2f} | {_MARK[r.status]} | {len(r.not_scored)} |")
    failing = [r for r in run.results if r.status != "pass"]
    if failing:
        lines += ["", "### What fell short", ""]
        for r in failing:
            lines.append(f"- **{markdown(r.case_id)}** ({markdown(_label(r))}, "
                         f"score {_score(r)}):")
            for c in r.failed:
                lines.append(f"  - {code(c.id)}: {markdown(c.explanation, 500)}")
    judged = sum(len(r.not_scored) for r in run.results)
    if judged:
        lines += ["", f"{judged} check(s) were not scored (LLM-judge criteria without a recorded "
                  "verdict); they are left out of every score, never counted as passes."]
    return "\n".join(lines) + "\n"


def terminal_table(run: RunResult, *, verbose: bool = False) -> str:
    rows = [("case", "answer", "score", "need", "result", "failed checks")]
    for r in run.results:
        failed = ", ".join(c.id for c in r.failed)
        rows.append((plain(r.case_id, 80), plain(_label(r), 80), _score(r), f"{r.threshold:.2f}",
                     _MARK[r.status], plain(failed, 500)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out = []
    for row in rows:
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5]))
                   + "  " + row[5])
    if verbose:
        for r in run.results:
            for c in r.failed + r.not_scored:
                out.append(plain(f"  {r.case_id}: {c.id} [{_MARK[c.status]}] {c.explanation}"))
    counts = run.counts()
    out.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['not-scored']} not "
               f"scored ({len(run.results)} answers)")
    return "\n".join(out)


def html_report(run: RunResult) -> str:
    """One self-contained page: no scripts, no external assets."""
    esc = html_text
    rows = []
    for r in run.results:
        checks = "".join(
            f"<tr class='{esc(c.status)}'><td>{esc(c.id)}</td><td>{esc(c.scorer)}</td>"
            f"<td>{_MARK[c.status]}</td><td>{esc(c.explanation)}</td></tr>" for c in r.checks)
        rows.append(
            f"<details class='{esc(r.status)}'><summary><b>{esc(r.case_id)}</b> "
            f"{esc(_label(r))} score {_score(r)} / {r.threshold:.2f} {_MARK[r.status]}</summary>"
            f"<table><tr><th>check</th><th>scorer</th><th>result</th><th>why</th></tr>"
            f"{checks}</table></details>")
    counts = run.counts()
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>plumber eval</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:"
        ".5em 0 1em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:"
        "top}.fail>summary,tr.fail{color:#a00}.pass>summary{color:#070}tr.not-scored{color:#777}"
        "</style></head><body>"
        f"<h1>plumber eval</h1><p>{counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['not-scored']} not scored. Answers: {esc(str(run.spec.get('answers')))}. "
        f"Knowledge base {esc(str(run.spec.get('kb_digest'))[:12])}.</p>"
        + "".join(rows) + "</body></html>\n"
    )


def write_reports(run: RunResult, folder: Path, *, with_html: bool = False) -> list[Path]:
    """Write the log, JUnit XML, Markdown summary (and HTML) into `folder`, atomically each."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {LOG_NAME: log_json(run), JUNIT_NAME: junit_xml(run),
             SUMMARY_NAME: markdown_summary(run)}
    if with_html:
        texts[HTML_NAME] = html_report(run)
    written = []
    for name, text in texts.items():
        path = folder / name
        atomic.write_atomic(path, text)
        written.append(path)
    return written


def calibration_table(cal: Calibration) -> str:
    rows: list[tuple[str, ...]] = [("scorer", "true pass", "false pass", "true fail",
                                    "false fail", "not scored", "agreement")]

    def row(name: str, t: Tally) -> tuple[str, ...]:
        agreement = "n/a" if t.agreement is None else f"{t.agreement:.0%}"
        return (name, str(t.true_pass), str(t.false_pass), str(t.true_fail), str(t.false_fail),
                str(t.not_scored), agreement)

    for name, tally in sorted(cal.scorers.items()):
        rows.append(row(name, tally))
    rows.append(row("(case verdict)", cal.cases))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i])
                               for i, c in enumerate(r)) for r in rows)
