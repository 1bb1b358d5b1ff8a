# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export BREASTLAB_DATA ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE := 1

.PHONY: install demo test quick bench clean bids-validator system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch 2.13.0 first (local CPU wheel), then everything else constrained to it. The install also builds
# the compiled header walker (setup.py, Cython) where gcc exists; without a compiler it goes on without it.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt setup.py src/breastlab/dicom/_cwalk.pyx
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages for the PACS tests (a private Orthanc with DICOMweb, dcmtk's dsrdump):
# installed when root with apt and missing; otherwise nothing (the PACS tests then skip and say why).
ORTHANC_BITS := /usr/sbin/Orthanc /usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/bin/dsrdump
# Headless Chromium and its WebDriver for the review page test (tests/test_review_browser.py).
CHROMIUM_BITS := /usr/bin/chromium /usr/bin/chromedriver
system-deps:
	@missing=0; for f in $(ORTHANC_BITS); do [ -e $$f ] || missing=1; done; \
	if [ $$missing = 1 ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages orthanc orthanc-dicomweb dcmtk (PACS tests)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb dcmtk \
	    >/dev/null; } || echo "warning: could not install orthanc/dcmtk: the PACS tests will skip"; \
	fi
	@missing=0; for f in $(CHROMIUM_BITS); do [ -e $$f ] || missing=1; done; \
	if [ $$missing = 1 ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages chromium chromium-driver (review page browser test)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	    >/dev/null; } || echo "warning: could not install chromium: the review page browser test will skip"; \
	fi


# The BIDS validator (npm, legacy node-based 1.x line: 2.x needs Deno) in a project-local,
# git-ignored folder; tests that need it skip with a reason when node/npm or the package is absent.
BIDS_VALIDATOR_VERSION := 1.15.0
BIDS_VALIDATOR := .tools/bids-validator/node_modules/.bin/bids-validator
export BREASTLAB_BIDS_VALIDATOR ?= $(abspath $(BIDS_VALIDATOR))

$(BIDS_VALIDATOR):
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix .tools/bids-validator --no-audit --no-fund --omit=optional --ignore-scripts \
	    --loglevel=error bids-validator@$(BIDS_VALIDATOR_VERSION) \
	  || echo "bids-validator not installed (npm failed): the BIDS validator test will skip"; \
	else echo "npm not found: the BIDS validator test will skip"; fi

bids-validator: $(BIDS_VALIDATOR)

demo: $(STAMP)
	$(BIN)/breastlab demo --out demo-output

test: $(STAMP) system-deps bids-validator
	$(BIN)/python -m pytest -q -p no:cacheprovider

quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -x

bench: $(STAMP)
	$(BIN)/python bench/sort_speed.py

clean:
	rm -rf $(VENV) demo-output build src/*.egg-info .tools src/breastlab/dicom/_cwalk.c src/breastlab/dicom/_cwalk.*.so
