"""Grading by execution: run the answer's SQL in the sandbox and probe what it does.

The pieces, in the order they run:

- `program.build_program(answer, dialect) -> Program`: every statement of the answer's SQL
  blocks, in order, classified `ddl` / `seed` (setup), `load`, `maintenance`, `query`,
  `example`, `skip` (see program.py). Warehouse SQL is translated to DuckDB or marked
  `not_executed`. Cached on the answer.
- `run.setup(session, program) -> Execution`: the setup on a fresh database; an engine refusal
  is a failure in the engine's words; the catalog is read afterwards.
- `catalog.read_catalog(session) -> Catalog`: tables, columns, keys, indexes, partitions.
- `synth`: deterministic rows for any table and the defects probes inject.
- `properties.run_family(answer, command, ctx, dialect) -> FamilyResult`: the command's family,
  once per answer (cached); the `executes` and `behaves` scorers read it.

Writing a family (`families/<command>.py`, imported automatically)::

    from ..properties import Finding, ProbeInput, family

    PROPERTIES = ("no-duplicate-keys", "idempotent-rerun")

    @family("pipeline", "etl", properties=PROPERTIES)
    def pipeline_family(probe: ProbeInput) -> list[Finding]:
        catalog = probe.execution.catalog          # what the answer's setup created
        loads = probe.program.writes(kinds=("load",))  # the answer's loads, in order
        if not loads:
            return [Finding.not_applicable(p, "no load statement") for p in PROPERTIES]
        session = probe.execution.session
        with session.savepoint(undo=True):         # each probe undone afterwards
            ...                                    # synth.populate / synth.rows + mutators
            for step in loads:
                session.execute(step.sql)          # raises Rejected / Broken
            ...
        return [Finding.passed("idempotent-rerun", "a second run changed nothing"), ...]

Rules a family keeps:

- Report every id in `properties` (the `behaves` scorer fails on a missing one); a property
  the answer gives nothing for is `Finding.not_applicable` (not scored), never a pass.
- Take every name from `probe.execution.catalog` and the Program (`Step.target`), never from
  the case or the prompt's wording; the answer may call its date column `calendar_date`.
- Catch `Rejected` where the engine refusing data is the answer's behaviour under test; let
  `Broken` and `TimedOut` propagate unless the statement is the answer's own (then turn it
  into a failed Finding carrying the engine's words and `step.where`).
- Isolate probes with `session.savepoint(undo=True)`; DuckDB has no nested savepoints, so a
  probe that must commit, or run statements in separate transactions (`now()` moves), opens
  `probe.fresh()`, which costs a new database: use it sparingly.
- Look where errors hide: several changes to one key in a batch, an empty target on the first
  run, month-end boundaries, the answer's own maintenance steps (`program.writes(table,
  kinds=("maintenance",))`), retries in separate transactions.
- Every failed Finding is a blocker unless made with `blocker=False` (a reported measure such
  as plan cost). Keep probes small: a few rows, fixed values, no randomness.
"""
