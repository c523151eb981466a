# Two commands do all the set-up: `make demo` and `make test` (both create .venv and install first).
PYTHON ?= python3
LLM_MODEL ?= gpt-4o-mini
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet "torch==2.13.0"  # the CPU wheel (a bare torch pulls a multi-GB CUDA build)
	$(BIN)/python -m pip install --quiet -e ".[dev,all]"
	$(BIN)/python -m pip install --quiet --no-deps "simglucose==0.2.11"  # its metadata pins gym 0.9.4; real needs are in [realworld]
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/promptpo-bench tasks
	@echo
	$(BIN)/promptpo-bench rollout NoiseWorld-v0 --policy random --episodes 1000 --show-episodes 10
	@echo
	$(BIN)/promptpo-bench rollout NoiseWorld-v0 --policy optimal --episodes 1000 --show-episodes 10
	@echo
	@if [ -n "$$OPENAI_API_KEY" ]; then \
		$(BIN)/python algorithms/promptpo.py --env-id NoiseWorld-v0 --num-rounds 2 --num-candidates 3 --llm-model $(LLM_MODEL); \
	else \
		echo "PromptPO skipped: no LLM endpoint. Set OPENAI_API_KEY (any value for local servers) and OPENAI_BASE_URL, e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 (Ollama), http://localhost:8080/v1 (llama.cpp), then: make demo LLM_MODEL=<model>"; \
	fi

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/noiseworld_speed.py

clean:
	rm -rf $(VENV) build dist *.egg-info
