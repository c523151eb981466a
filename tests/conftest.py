"""Put tests/ and tests/e2e/ on sys.path: `from scripted_server import ScriptedLLMServer`, `from algorithm_files import
load_algorithm` and the end-to-end tests' shared helpers (`from test_promptpo import run`) import from anywhere."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent / "e2e"))  # its scripted PromptPO helpers (test_promptpo)
