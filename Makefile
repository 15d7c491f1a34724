# make demo: run the main job end to end on an embedded default (outputs in $(DEMO_DIR)).
# make test: run the test suite. Both create the venv ($(VENV)) and install what they need.
# make test PYTHON=python3.12: the same on another interpreter (its own venv).
PYTHON ?= python3
# One venv per interpreter version, so the default (3.11: .venv) and others
# (`make test PYTHON=python3.12`: .venv-3.12) coexist.
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV ?= $(if $(filter 3.11,$(PYVER)),.venv,.venv-$(PYVER))
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
STAMP := $(VENV)/.installed-$(shell cat requirements.txt setup.py | sha256sum | cut -c1-16)

.PHONY: install browser demo test bench clean

install: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	DEMO_DIR=$(DEMO_DIR) bash scripts/demo.sh

# The statistics report's render test needs a headless browser (Debian's chromium).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install browser
	$(BIN)/python -m pytest -n 2 tests

clean:
	rm -rf .venv .venv-* runs build *.egg-info
