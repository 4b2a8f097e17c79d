# The two quick-start commands: `make demo` runs the example campaign end to
# end, `make test` runs the test suite. Both set up .venv on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
DEMO ?= build/demo

.PHONY: demo test clean requirements

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	rm -rf $(DEMO) && mkdir -p $(dir $(DEMO)) && cp -r examples/digits $(DEMO)
	cd $(DEMO) && git init -q && git add -A && git -c user.name=mlr-demo -c user.email=mlr-demo@localhost commit -q -m 'The digits campaign'
	$(VENV)/bin/mlr validate --repo $(DEMO)
	$(VENV)/bin/mlr run --repo $(DEMO) --interval 1 --no-uv
	$(VENV)/bin/mlr status --repo $(DEMO)
	@echo "\nLedger: $(DEMO)/runs/ledger.jsonl  Summary: $(DEMO)/runs/summary.md"

# Two workers (pytest-xdist): the suite fits its five-minute budget on two cores with room to spare.
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n 2

# The action's pinned, hashed requirements (requirements/*.txt), from pyproject.toml.
requirements: $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet uv
	UV=$(VENV)/bin/uv .ci/lock

clean:
	rm -rf $(VENV) build .pytest_cache
