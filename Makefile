# Two entry points on a fresh machine (Debian/Ubuntu, Python >= 3.11):
#   make demo   set up .venv and run the demo experiment end to end on the local executor
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test setup lint clean-demo

$(BIN)/tunegit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,dev]'
	touch $@

setup: $(BIN)/tunegit

demo: setup
	$(BIN)/tunegit tiny-model --site local
	$(BIN)/tunegit run demo_capitalization --site local
	$(BIN)/tunegit results demo_capitalization

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check automation tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

clean-demo:
	rm -rf .tunegit/outputs/demo_capitalization
