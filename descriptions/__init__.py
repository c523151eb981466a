"""The hand-written Python descriptions an LLM reads, one module per task family.

A description module holds the task's `Observation` class (with `from_array`), its actions, reward and
horizon, between `# <context>` markers; `VARIANTS`, the named information variants it offers (the first, the
paper's information, is the default); and `context_variables(env, variant)`, which picks the marked blocks
and fills in the placeholders; optionally `SIMULATOR_STATE`, for a variant whose `Observation` carries more than the
env's observation array (MuJoCo's `paper`), the function of the unwrapped env whose numbers the rollout appends to
it. What the LLM reads is the marked source itself, so it is exactly what the
tests import and check.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

_MARKER = re.compile(r"# <context(?: when=\"(\w+)\")?>\n(.*?)# </context>\n", re.S)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def default_variant(module: ModuleType) -> str:
    """The variant an LLM reads unless told otherwise: the paper's information."""
    return next(iter(module.VARIANTS))


def simulator_state(module: ModuleType, variant: str) -> Callable[[Any], np.ndarray] | None:
    """What a code policy reading `variant` gets appended to each observation array (a function of the unwrapped env),
    or None: the env's own array."""
    if variant not in module.VARIANTS:
        raise ValueError(f"unknown description variant {variant!r}; this task has: {', '.join(module.VARIANTS)}")
    return getattr(module, "SIMULATOR_STATE", {}).get(variant)


def context(module: ModuleType, env, variant: str | None = None) -> str:
    """The marked parts of `module`'s source for `env` (unwrapped) in `variant`, placeholders filled in."""
    variant = variant or default_variant(module)
    if variant not in module.VARIANTS:
        raise ValueError(f"unknown description variant {variant!r}; this task has: {', '.join(module.VARIANTS)}")
    tags, values = module.context_variables(env, variant)
    source = Path(module.__file__).read_text()
    parts = [body for when, body in _MARKER.findall(source) if not when or when in tags]
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), "\n".join(parts)).rstrip() + "\n"


class ObservationPolicy:
    """A trusted, stateless policy written as a policy.py is (`act(obs)` on the description's `Observation`), as a
    batch policy: one expert's logic serves both the in-process rollouts and its policy.py for the sandbox."""

    def __init__(self, policy: Any, observation: type):
        self.policy, self.observation = policy, observation

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        return np.array([self.policy.act(self.observation.from_array(row)) for row in obs])
