# Two commands do all the set-up: `make demo` and `make test` (both create .venv and install first).
PYTHON ?= python3
LLM_MODEL ?= gpt-4o-mini
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# the sandbox's workers, each with a uid of its own, read the interpreter's and NumPy's files: install them readable
PIP := umask 022 && $(BIN)/python -m pip

DEMO_BOARD := runs/demo-leaderboard
DEMO_RUN := runs/demo-ppo-NoiseWorld-v0
DEMO_PROMPTPO := runs/demo-promptpo-NoiseWorld-v0

.PHONY: install demo test docs bench mutation leaderboard chromium seccomp clean

$(STAMP): pyproject.toml
	umask 022 && $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip "setuptools>=77" wheel
	$(PIP) install --quiet "torch==2.13.0"  # the CPU wheel (a bare torch pulls a multi-GB CUDA build)
	$(PIP) install --quiet -e ".[dev,all]"
	$(PIP) install --quiet --no-deps "simglucose==0.2.11"  # its metadata pins gym 0.9.4; real needs are in [realworld]
	touch $(STAMP)

install: $(STAMP)

demo: install seccomp
	$(BIN)/promptpo-bench tasks
	@echo
	$(BIN)/promptpo-bench rollout NoiseWorld-v0 --policy random --episodes 1000 --show-episodes 10
	@echo
	$(BIN)/promptpo-bench rollout NoiseWorld-v0 --policy optimal --episodes 1000 --show-episodes 10
	@echo
	@if [ -n "$$OPENAI_API_KEY" ]; then \
		rm -rf $(DEMO_PROMPTPO) && $(BIN)/python algorithms/promptpo.py --env-id NoiseWorld-v0 --num-rounds 2 --num-candidates 3 --llm-model $(LLM_MODEL) --run-dir $(DEMO_PROMPTPO); \
	else \
		rm -rf $(DEMO_PROMPTPO); \
		echo "PromptPO skipped: no LLM endpoint. Set OPENAI_API_KEY (any value for local servers) and OPENAI_BASE_URL, e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 (Ollama), http://localhost:8080/v1 (llama.cpp), then: make demo LLM_MODEL=<model>"; \
	fi
	@echo
	@# the leaderboard: a short PPO run, verified and added to a scratch copy of the committed board
	rm -rf $(DEMO_BOARD) $(DEMO_RUN) && mkdir -p runs && cp -r leaderboard $(DEMO_BOARD)
	$(BIN)/python algorithms/ppo.py --env-id NoiseWorld-v0 --total-timesteps 4096 --eval-every 1024 --run-dir $(DEMO_RUN)
	$(BIN)/promptpo-bench submit $(DEMO_RUN) --leaderboard $(DEMO_BOARD)
	@if [ -f $(DEMO_PROMPTPO)/record.json ]; then $(BIN)/promptpo-bench submit $(DEMO_PROMPTPO) --leaderboard $(DEMO_BOARD); fi
	$(BIN)/promptpo-bench leaderboard build --leaderboard $(DEMO_BOARD)
	@echo "The board with the demo run: $(DEMO_BOARD)/index.html (open it in a browser) and $(DEMO_BOARD)/README.md"

# the leaderboard test screenshots index.html in headless Chromium (Debian's package; we run as root)
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# the policy sandbox's seccomp layer loads Debian's libseccomp.so.2 (through pyseccomp)
seccomp:
	@ldconfig -p | grep -q libseccomp.so.2 || (apt-get update -qq && apt-get install -y -qq libseccomp2 >/dev/null)

# one pytest process per CPU (pytest-xdist), each test file on one of them: the files share nothing on disk
test: install chromium seccomp
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# the documentation site (docs/, mkdocs.yml) into site/; strict: a broken link fails the build
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "The documentation site: site/index.html"

bench: install
	$(BIN)/python benchmarks/noiseworld_speed.py

# mutation testing of the code that decides results (cosmic-ray; not part of `make test`); two modules side by side
# one module: make mutation MODULES=noiseworld (names in benchmarks/mutation.toml); results in docs/mutation.md
JOBS ?= 2
mutation: install
	$(BIN)/python benchmarks/mutation.py -j $(JOBS) $(MODULES)

# rebuild the committed board: reference runs, then every run in benchmarks/results/ verified by submit
leaderboard: install
	$(BIN)/python benchmarks/leaderboard_entries.py

clean:
	rm -rf $(VENV) build dist site *.egg-info
