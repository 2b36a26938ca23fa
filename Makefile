# make train ARGS="model=transformer"   set up a virtualenv (once) and train
# make test                             set up a virtualenv (once) and run the tests
# make lint                             ruff check + ruff format --check (CI runs it before the tests)
# The virtualenv is .venv in the clone (ignored by git); VENV=<dir> puts it elsewhere.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The stamp names this clone, pyproject.toml and setup.py: a new clone or new dependencies reinstall.
STAMP := $(VENV)/.linzoo-$(shell printf '%s' "$(CURDIR)" | cat - pyproject.toml setup.py | sha256sum | cut -c1-16)

.PHONY: install train eval test test-fast lint clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@if { [ -e $(VENV) ] || [ -L $(VENV) ]; } && [ ! -x $(PY) ]; then \
	  echo "$(VENV) exists but holds no virtualenv (a dangling symlink or a stray file): remove it (rm -rf $(VENV)) and rerun." >&2; exit 2; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[dev]"
	rm -f $(VENV)/.linzoo-* && touch $@

train: install
	$(PY) scripts/train.py $(ARGS)

eval: install
	$(PY) scripts/eval.py $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow and not real_data" $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
