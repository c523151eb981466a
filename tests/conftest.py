"""Put tests/ on sys.path so tests and benchmarks can `from scripted_server import ScriptedLLMServer`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
