# make demo: run the main job end to end on an embedded default (outputs in $(DEMO_DIR)).
# make test: run the test suite. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
STAMP := $(VENV)/.installed-$(shell cat requirements.txt setup.py | sha256sum | cut -c1-16)

.PHONY: install demo test bench clean

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

test: install
	$(BIN)/python -m pytest -n 2 tests

clean:
	rm -rf $(VENV) runs build *.egg-info
