"""The eval harness: golden cases, scorers, offline scoring, calibration and reports.

- `answers`: the `Answer` type (text + provenance) and labelled hand-written answer files.
- `cases`: case, rubric and answer loading with schema and cross-reference checks.
- `scorers`: small scorers registered by name (text, sql, behaviour, python, judge).
- `scoring`: `score_case(case, answer, rubric) -> CaseResult`, pure apart from sandboxes.
- `runner`: answer sources (references, flawed, recordings; live in issue #6), runs, calibration.
- `reports`: JSON log, JUnit XML, Markdown summary, terminal table, HTML.
"""
