"""The algorithm files (algorithms/NAME.py) as modules, for tests that call their functions directly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ALGORITHMS = Path(__file__).resolve().parents[1] / "algorithms"


def load_algorithm(name: str) -> ModuleType:
    """algorithms/{name}.py imported as the module `algorithm_{name}` (once per process)."""
    module_name = f"algorithm_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ALGORITHMS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module
