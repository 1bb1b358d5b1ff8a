# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export BREASTLAB_DATA ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE := 1

.PHONY: install demo test quick bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch 2.13.0 first (local CPU wheel), then everything else constrained to it.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages for the PACS tests (a private Orthanc with DICOMweb, dcmtk's dsrdump):
# installed when root with apt and missing; otherwise nothing (the PACS tests then skip and say why).
ORTHANC_BITS := /usr/sbin/Orthanc /usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/bin/dsrdump
system-deps:
	@missing=0; for f in $(ORTHANC_BITS); do [ -e $$f ] || missing=1; done; \
	if [ $$missing = 1 ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages orthanc orthanc-dicomweb dcmtk (PACS tests)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb dcmtk \
	    >/dev/null; } || echo "warning: could not install orthanc/dcmtk: the PACS tests will skip"; \
	fi

demo: $(STAMP) system-deps
	$(BIN)/breastlab demo --out demo-output

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -x

bench: $(STAMP)
	$(BIN)/python bench/sort_speed.py

clean:
	rm -rf $(VENV) demo-output build src/*.egg-info
