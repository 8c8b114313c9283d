"""The live side of `plumber eval run` (`--live`, `--replay`, `--resume`) and `plumber eval
compare`. The options are added to the offline command; the library does the work
(`pipeline_plumber.live`), this module only parses, prints and picks the exit code.

Exit codes of a live run: 3 the `--max-usd` budget stopped the run (the cases it did not reach
are `budget_exceeded`, not failed; a partial run gives no verdict); else 1 some case is below
its threshold; else 2 bad input or usage, a `--replay` miss, or requests that failed for good;
else 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import CheckFailed, InputError, Problem, Terminated
from ..jsonsource import MAX_JSON_DEPTH, depth
from ..paths import default_kb, default_templates
from .eval_output import append_step_summary, write_reports

if TYPE_CHECKING:
    from ..live.evaluate import LiveRequest

LIVE_FLAGS = ("live", "replay", "resume_dir")
DEFAULT_RUNS = Path(".plumber") / "runs"
DEFAULT_CACHE = Path(".plumber") / "cache"


def live_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The live run's options, added to `plumber eval run`."""
    return _run_options(_request_options(_store_options(f)))


def _stacked(options: list[Callable[[Callable[..., Any]], Callable[..., Any]]]
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One decorator applying `options`, listed in --help in the order given."""
    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f
    return apply


_run_options = _stacked([
    click.option("--live", is_flag=True,
                 help="Ask the model (ANTHROPIC_API_KEY) instead of scoring recordings: the "
                      "agent's body as system prompt, the expanded command as message."),
    click.option("--replay", is_flag=True,
                 help="Like --live, but answer only from recordings matched by request "
                      "hash; a miss fails (exit 2) instead of calling the API."),
    click.option("--record", is_flag=True,
                 help="Write every answer to the recordings folder, for offline runs."),
    click.option("--resume", "resume_dir", type=click.Path(path_type=Path, file_okay=False),
                 default=None, help="Continue the live run in this folder: only what is "
                                    "missing is sent."),
    click.option("--run-dir", type=click.Path(path_type=Path, file_okay=False),
                 default=None, help=f"Folder of a new live run. Default: "
                                    f"{DEFAULT_RUNS}/<UTC time>."),
    click.option("-j", "--jobs", type=click.IntRange(1, 1024), default=None, metavar="N",
                 help="Requests in flight at once (live; default 4), or answers scored at "
                      "once (offline; default: the number of CPUs)."),
    click.option("--repeat", "repeats", type=click.IntRange(1, 100), default=1,
                 show_default=True, help="Answers per case: pass@k, pass^k, flaky cases."),
    click.option("--pass-rule", type=click.Choice(["all", "any", "majority"]),
                 default="all", show_default=True,
                 help="With --repeat: a case passes when all (pass^k), any (pass@k) or "
                      "most repeats pass."),
    click.option("--max-usd", type=click.FloatRange(min=0), default=None,
                 help="Stop sending before the run could cost more; the rest is "
                      "budget_exceeded (exit 3)."),
    click.option("--batch", is_flag=True,
                 help="Send through the Message Batches API (half price, slower)."),
    click.option("--poll-interval", type=click.FloatRange(min=0), default=10.0,
                 show_default=True, help="Seconds between batch status checks."),
    click.option("--baseline", is_flag=True,
                 help="Also ask each case without the agent's system prompt, and report "
                      "the difference the agent makes."),
])
"""How the run goes: live or replayed, its folder, concurrency, repeats, budget, batching."""

_request_options = _stacked([
    click.option("--model", default=None,
                 help="Model id. Default: claude-sonnet-5."),
    click.option("--max-tokens", type=click.IntRange(min=1), default=None,
                 help="Max output tokens per answer. Default: 4096."),
    click.option("--param", "params", multiple=True, metavar="NAME=JSON",
                 help="Another Messages API parameter, e.g. top_p=0.9 (repeatable)."),
    click.option("--no-prompt-cache", is_flag=True,
                 help="Do not mark the system prompt for prompt caching."),
    click.option("--cache-ttl", type=click.Choice(["5m", "1h"]), default="5m",
                 show_default=True, help="Prompt cache lifetime."),
    click.option("--timeout", type=click.FloatRange(min=0.001), default=120.0,
                 show_default=True, help="Seconds per request before it is retried."),
    click.option("--max-retries", type=click.IntRange(min=0), default=4, show_default=True,
                 help="Retries per request after 429, 529, 5xx, timeouts, dropped "
                      "connections."),
])
"""What each request asks for and how it is sent: model, parameters, caching, retries."""

_store_options = _stacked([
    click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False),
                 default=DEFAULT_CACHE, show_default=True,
                 help="Local store of every answer, by request hash."),
    click.option("--fresh", is_flag=True,
                 help="Ignore stored answers (recordings and cache): ask the model again."),
    click.option("--prices", "prices_file",
                 type=click.Path(path_type=Path, dir_okay=False, exists=True),
                 default=None, help="Price table (YAML). Default: the one shipped."),
])
"""Where answers are kept between runs, and what they cost."""


def wanted(live: Mapping[str, Any]) -> bool:
    return any(live.get(flag) for flag in LIVE_FLAGS)


def _params(values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for value in values:
        name, sep, raw = value.partition("=")
        if not sep or not name:
            raise InputError([Problem(f"'{value}' is not NAME=JSON", field="--param")])
        try:
            out[name] = json.loads(raw)
        except RecursionError:
            raise InputError([Problem(f"{name}: JSON nested too deeply",
                                      field="--param")]) from None
        except ValueError:
            out[name] = raw
        if depth(out[name]) > MAX_JSON_DEPTH:
            raise InputError([Problem(f"{name}: JSON nested deeper than {MAX_JSON_DEPTH} levels",
                                      field="--param")])
    return out


def run_live_command(*, evals_dir: Path, kb_dir: Path | None, case_ids: tuple[str, ...],
                     tags: tuple[str, ...], commands: tuple[str, ...], answers: str,
                     recordings_dir: Path | None, out_dir: Path | None, with_html: bool,
                     verbose: bool, live: Mapping[str, Any]) -> None:
    """`plumber eval run` with a live flag: parse, call `evaluate_live`, print its report."""
    from ..evals import reports
    from ..live.evaluate import evaluate_live
    from ..live.run_folder import SPEC_FILE
    from ..live.sender import api_key_from_env, redact

    key = api_key_from_env()
    req = _live_request(evals_dir=evals_dir, kb_dir=kb_dir, case_ids=case_ids, tags=tags,
                        commands=commands, answers=answers, recordings_dir=recordings_dir,
                        live=live, key=key)
    try:
        outcome = evaluate_live(req, announce=lambda line: click.echo(line, err=True))
    except InputError as err:
        if key and key in str(err):  # never let the key reach the terminal
            raise InputError([Problem(redact(str(p), key)) for p in err.problems]) from None
        raise
    except (KeyboardInterrupt, Terminated):
        if (req.run_dir / SPEC_FILE).is_file():  # what was answered is kept: say where
            click.echo(f"note: the run so far is in {req.run_dir}; continue it with "
                       f"--resume {req.run_dir}", err=True)
        raise
    click.echo(f"run folder: {outcome.folder.path}", err=True)
    if outcome.offline_run.results:
        click.echo(reports.terminal_table(outcome.offline_run, verbose=verbose))
    for line in outcome.summary_lines():
        click.echo(line)
    if out_dir is not None:
        write_reports(outcome.offline_run, out_dir, with_html=with_html)
    reports.write_reports(outcome.offline_run, outcome.folder.path)
    append_step_summary(reports.markdown_summary(outcome.offline_run) + "\n"
                        + outcome.report.markdown())
    failure = outcome.failure()
    if failure is not None:
        raise failure


def _live_request(*, evals_dir: Path, kb_dir: Path | None, case_ids: tuple[str, ...],
                  tags: tuple[str, ...], commands: tuple[str, ...], answers: str,
                  recordings_dir: Path | None, live: Mapping[str, Any], key: str | None
                  ) -> LiveRequest:
    """The options of `plumber eval run --live`, checked, as one request."""
    from ..live.evaluate import LiveRequest
    from ..live.prices import load_prices
    from ..live.request import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, LiveConfig
    from ..live.run_folder import default_run_dir
    from ..live.sender import SendOptions, base_url_from_env

    if live["replay"] and live["record"]:
        raise InputError([Problem("--replay reads recordings; --record writes them: pick one",
                                  field="--replay")])
    if live["replay"] and live["fresh"]:
        raise InputError([Problem("--replay answers only from stored answers; --fresh ignores "
                                  "them: pick one", field="--fresh")])
    if answers != "recorded":
        raise InputError([Problem("--answers is for offline runs; a live run asks the model",
                                  field="--answers")])
    resume = live["resume_dir"] is not None
    if resume and live["run_dir"] is not None:
        raise InputError([Problem("--resume names the run folder already", field="--run-dir")])
    config = LiveConfig(model=live["model"] or DEFAULT_MODEL,
                        max_tokens=live["max_tokens"] or DEFAULT_MAX_TOKENS,
                        params=_params(live["params"]),
                        prompt_cache=not live["no_prompt_cache"], cache_ttl=live["cache_ttl"])
    options = SendOptions(jobs=live["jobs"] or 4, timeout=live["timeout"],
                          max_retries=live["max_retries"], max_usd=live["max_usd"],
                          replay=live["replay"], use_stored=not live["fresh"])
    return LiveRequest(
        evals_dir=evals_dir, kb_dir=kb_dir or default_kb(), templates_dir=default_templates(),
        run_dir=live["resume_dir"] or live["run_dir"] or default_run_dir(DEFAULT_RUNS),
        resume=resume, config=config, options=options,
        prices=load_prices(live["prices_file"]), repeats=live["repeats"],
        baseline=live["baseline"], batch=live["batch"], record=live["record"],
        cache_dir=live["cache_dir"], recordings_dir=recordings_dir, case_ids=case_ids,
        tags=tags, commands=commands, pass_rule=live["pass_rule"],
        poll_interval=live["poll_interval"], api_key=None if live["replay"] else key,
        base_url=base_url_from_env())


@click.command(name="compare")
@click.argument("run_a", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("run_b", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Largest p-value (Fisher's exact test) still called a change.")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
def compare_command(run_a: Path, run_b: Path, alpha: float, as_json: bool) -> None:
    """List the cases that regressed or improved from live run RUN_A to RUN_B.

    Uses the repeats to tell change from noise: a case moves only when Fisher's exact test
    on its passes puts the difference beyond --alpha. Exit 1 when a case regressed.
    """
    from ..live.compare import compare, summary

    changes = compare(run_a, run_b, alpha=alpha)
    if as_json:
        click.echo(json.dumps([{"case_id": c.case_id, "change": c.change,
                                "before": c.before, "after": c.after,
                                "p_value": c.p_value} for c in changes], indent=1))
    else:
        for change in changes:
            if change.change != "unchanged":
                click.echo(change.describe())
        counts = summary(changes)
        click.echo(", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
                   or "no cases")
        if any(c.before and c.before[1] == 1 for c in changes):
            click.echo("note: runs without --repeat cannot tell change from noise")
    if any(c.change == "regression" for c in changes):
        raise CheckFailed()
