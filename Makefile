# dualtrain: every target sets up what it needs, so `make demo` and `make test`
# work on a fresh clone. The project runs on CPython 3.10 (OneFlow 0.9.0 wheels
# exist only for 3.8-3.10); .ci/python310 finds one.

VENV ?= .venv
PY = $(VENV)/bin/python
# Extras installed with the project, e.g. `make test EXTRAS=dev,torch`.
EXTRAS ?= dev,torch,oneflow
PYTEST_ARGS ?=

comma := ,
# One stamp per extras set; it is redone when pyproject.toml changes.
STAMP = $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# Touched only when the venv is (re)created, so the stamps follow it.
VENV_MARK = $(VENV)/.python310

DEMO_OUT = runs/demo
DEMO_BACKENDS = numpy,torch,oneflow

.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.PHONY: help venv demo test lint format bench docs mutation clean FORCE

help: ## list the targets
	@echo "make TARGET   (VENV=$(VENV), EXTRAS=$(EXTRAS))"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9_-]*:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(STAMP) ## create .venv with CPython 3.10, install the project editable with [EXTRAS]
	@:

# Reuse $(VENV) when its python is 3.10; otherwise (missing, broken, other
# version) build it anew and upgrade pip once.
$(VENV_MARK): FORCE
	@if $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then \
		[ -f $@ ] || touch $@; \
	else \
		py="$$(.ci/python310)" || exit 1; \
		echo "creating $(VENV) with $$py"; \
		rm -rf $(VENV); \
		"$$py" -m venv $(VENV) || exit 1; \
		$(PY) -m pip install -q --upgrade pip || exit 1; \
		touch $@; \
	fi

$(STAMP): pyproject.toml $(VENV_MARK)
	@echo "installing the project into $(VENV) (editable, [$(EXTRAS)])"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

demo: venv ## compare every engine on the built-in regression problem; report in runs/demo/
	$(PY) -m dualtrain compare --backends $(DEMO_BACKENDS) --modes eager,graph \
		--problem regression --optimizer sgd --lr 0.05 --momentum 0.9 \
		--scheduler StepLR --arg step_size=5 --arg gamma=0.5 --epochs 20 --seed 0 \
		--out $(DEMO_OUT)
	@echo "report: $(DEMO_OUT)/report.md"

test: venv ## run the tests (PYTEST_ARGS="..." passes options to pytest)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: venv ## ruff check and ruff format --check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv ## ruff format, then ruff check --fix
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: venv ## benchmarks side by side in one run, printed as ratios
	$(PY) tests/bench/run_all.py

# Not part of `test` (slow): mutmut, from the `mutation` extra, over the schedule engine and
# the NumPy reference (docs/mutation.md). MUTATION_ARGS="--area numpy" runs one area.
MUTATION_ARGS ?=
mutation: ## mutation run of the schedule engine and NumPy reference; score and survivors
	@$(MAKE) --no-print-directory venv EXTRAS=$(EXTRAS),mutation
	nice -n 10 $(PY) tools/mutation/run.py $(MUTATION_ARGS)

docs: ## list the docs (Markdown in docs/, no generator)
	@echo "The docs are Markdown files in docs/, read them as they are:"
	@ls -1 docs/*.md 2>/dev/null | sed 's/^/  /' || true

clean: ## remove .venv, runs/ and caches
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

FORCE:
