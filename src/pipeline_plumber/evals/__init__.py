"""The eval harness: golden cases, scorers, offline scoring, calibration and reports.

- `answers`: the `Answer` type (text + provenance) and labelled hand-written answer files.
- `cases`: case, rubric and answer loading with schema and cross-reference checks.
- `scorers`: small scorers registered by name (text, sql, behaviour, execution, python, judge).
- `execution`: the answer as a program, run in the sandbox and probed by command families.
- `scoring`: `score_case(case, answer, rubric) -> CaseResult`; a failed blocker fails the case.
- `recordings`: the one recording format, shared with live runs.
- `runner`: answer sources (references, flawed, correct, recordings), runs, calibration.
- `reports`: JSON log, JUnit XML, Markdown summary, terminal table, HTML.
"""
