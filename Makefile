# Two commands do all the set-up: `make demo` and `make test` (both create .venv and install first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/promptpo-bench tasks
	@echo
	$(BIN)/promptpo-bench rollout NoiseWorld-v0 --policy random --episodes 1000 --show-episodes 10
	@echo
	$(BIN)/promptpo-bench rollout NoiseWorld-v0 --policy optimal --episodes 1000 --show-episodes 10

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/noiseworld_speed.py

clean:
	rm -rf $(VENV) build dist *.egg-info
