"""The hand-written Python descriptions an LLM reads, one module per task family.

A description module holds the task's `Observation` class (with `from_array`), its actions, reward
and horizon, between `# <context>` markers, and a `context_variables(env, key_info)` function. What
the LLM reads is the marked source itself, so it is exactly what the tests import and check.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

_MARKER = re.compile(r"# <context(?: when=\"(\w+)\")?>\n(.*?)# </context>\n", re.S)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def context(module: ModuleType, env, key_info: bool | None = None) -> str:
    """The marked parts of `module`'s source for `env` (unwrapped), placeholders filled in."""
    variants, values = module.context_variables(env, key_info)
    source = Path(module.__file__).read_text()
    parts = [body for when, body in _MARKER.findall(source) if not when or when in variants]
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), "\n".join(parts)).rstrip() + "\n"
