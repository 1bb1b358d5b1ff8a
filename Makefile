# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export BREASTLAB_DATA ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE := 1

.PHONY: install demo test quick bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch 2.13.0 first (local CPU wheel), then everything else constrained to it.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/breastlab demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -x

bench: $(STAMP)
	$(BIN)/python bench/sort_speed.py

clean:
	rm -rf $(VENV) demo-output build src/*.egg-info
