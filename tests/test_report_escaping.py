"""Untrusted text (an answer's error, a scorer's explanation quoting it, a case id from someone
else's eval folder) is escaped and shortened wherever a report shows it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from pipeline_plumber import untrusted_text
from pipeline_plumber.evals import reports
from pipeline_plumber.evals.answers import Answer
from pipeline_plumber.evals.runner import RunResult
from pipeline_plumber.evals.scoring import CaseResult, CheckResult
from pipeline_plumber.live.report import LiveReport

_MD = MarkdownIt("commonmark", {"html": True}).enable("table")  # raw HTML would pass through
CONTROL = "".join(chr(c) for c in range(0x20))
HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "]]><evil/><![CDATA[",
    f"ctl{CONTROL}end \x1b[31mred\x1b[0m",
    "a | b | `code` [link](javascript:alert(3)) ![i](http://x/i.png) **bold**",
    "x" * 100_000,
]


def _run(text: str) -> RunResult:
    check = CheckResult(id=f"check-{text[:40]}", scorer="sql_behaves", origin="case", weight=1.0,
                        status="fail", value=0.0, explanation=f"ERROR: {text}", seconds=0.1)
    unscored = CheckResult(id="judged", scorer="judge", origin="rubric", weight=1.0,
                           status="not-scored", value=None, explanation=text, seconds=0.0)
    result = CaseResult(case_id=f"case-{text}", command="schema",
                        answer=Answer("body", "recorded", f"rec/{text[:50]}.json"),
                        checks=(check, unscored), score=0.0, threshold=0.8, status="fail")
    return RunResult(spec={"answers": text, "kb_digest": "abc"}, results=[result])


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]


def _rendered_tags(html_text: str) -> _Tags:
    parser = _Tags()
    parser.feed(html_text)
    return parser


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_summary_markdown_renders_no_markup_of_theirs(text: str) -> None:
    for summary in (reports.markdown_summary(_run(text)), _live_summary(text)):
        rendered = _MD.render(summary)
        tags = _rendered_tags(rendered)
        assert not {"script", "img", "a", "evil"} & set(tags.tags), tags.tags
        assert tags.tags.count("strong") <= 1, tags.tags  # ours: the failing case's id
        assert "onerror" not in tags.attrs
        assert len(summary) < 5_000
        table = [line for line in summary.splitlines() if line.startswith("| ")]
        assert all(_cells(row) == _cells(table[0]) for row in table), table


def _cells(row: str) -> int:
    return len(row.replace("\\|", "").split("|"))


def _live_summary(text: str) -> str:
    case = {"case_id": f"case-{text}", "arm": "agent", "k": 1, "answered": 1, "scored": 1,
            "passes": 0, "pass_rate": 0.0, "pass_at_k": False, "pass_hat_k": False,
            "flaky": False, "mean_score": 0.0, "status": "fail", "statuses": {"ok": 1}}
    cache = {"write_tokens": 0, "read_tokens": 0, "hit_rate": None, "requests_reading": 0,
             "requests": 0}
    totals = {"items": 1, "ok": 1, "error": 0, "budget_exceeded": 0, "missing": 0,
              "from_api": 0, "from_store": 1, "cost_usd": 0.0, "estimate_usd": None,
              "usage": {}, "cache": cache}
    return LiveReport.model_validate({"status": "fail", "model": text, "repeats": 1,
                                      "pass_rule": "all", "cases": [case], "baseline": [],
                                      "totals": totals}).markdown()


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_junit_is_valid_xml_and_keeps_the_text_as_text(text: str) -> None:
    xml = reports.junit_xml(_run(text))
    root = ET.fromstring(xml.encode())  # raises on control characters or a broken CDATA
    failure = root.find(".//failure")
    assert failure is not None and failure.text is not None
    assert root.find(".//evil") is None
    assert len(xml) < 10_000
    if "]]>" in text:
        assert "]]>" in failure.text  # kept, as text


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_html_report_shows_their_text_as_text(text: str) -> None:
    page = reports.html_report(_run(text))
    tags = _rendered_tags(page)
    assert not {"script", "img", "evil"} & set(tags.tags)
    assert "onerror" not in tags.attrs
    assert len(page) < 15_000
    assert not any(ch in page for ch in CONTROL if ch not in "\t\n\r")


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_the_terminal_table_has_no_control_characters(text: str) -> None:
    table = reports.terminal_table(_run(text), verbose=True)
    assert "\x1b" not in table and "\x00" not in table
    assert all(len(line) < 3_000 for line in table.splitlines())


def test_escaping_keeps_ordinary_text_readable() -> None:
    assert untrusted_text.plain("relation \"t\" does not exist") == 'relation "t" does not exist'
    assert untrusted_text.shorten("abcdef", 4) == "abc…"
    rendered = _MD.render(untrusted_text.markdown("a_b | *c* <d>"))
    assert rendered == "<p>a_b | *c* &lt;d&gt;</p>\n"
