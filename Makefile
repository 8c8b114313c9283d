# The two quick-start commands: `make demo` (the main job, no API key) and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PLUMBER := $(VENV)/bin/plumber

.PHONY: setup demo test lint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# Build the pack, install it into ./demo, verify the examples, score the evals offline.
demo: setup
	$(PLUMBER) build
	$(PLUMBER) validate
	$(PLUMBER) verify

# Everything the tests need (Claude Code from npm, Airflow 3 in its own virtualenv), then
# the linters, the type checker and the whole suite.
test: setup
	@for installer in .ci/install-claude .ci/install-airflow; do \
	  if [ -f $$installer ]; then bash $$installer || exit 1; fi; done
	$(PLUMBER) verify
	$(MAKE) lint
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src
