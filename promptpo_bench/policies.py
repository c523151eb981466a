"""A saved policy back to a BatchPolicy: the one place that decides how a run's policy is loaded.

`promptpo-bench rollout --policy PATH` and `promptpo-bench submit` both come here, so a policy is
re-evaluated the same way wherever it is scored: a code policy (`policy.py`) only in the sandbox,
a baseline's `model.pt` through `torch_policy.load_torch_policy` (weights only, no code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym

from . import registry
from .errors import BenchError


def policy_file(path: str | Path) -> tuple[Path, str]:
    """The policy file of a run directory (as its record.json names it: a file inside the directory, also where it is
    a link, so a downloaded run cannot point at the user's own files) or a file itself, and its kind."""
    path = Path(path)
    if path.is_dir():
        record = path / "record.json"
        policy = json.loads(record.read_text()).get("policy", {}) if record.is_file() else {}
        name = policy.get("path") or ("policy.py" if (path / "policy.py").is_file() else "model.pt")
        kind = policy.get("kind") or ("python" if name.endswith(".py") else "torch")
        run_dir, path = path.resolve(), path / name
        if not path.resolve().is_relative_to(run_dir):
            raise BenchError(f"{record}: policy.path {name!r} must be a file inside the run directory")
    else:
        kind = "python" if path.suffix == ".py" else "torch"
    if not path.is_file():
        raise BenchError(f"{path} does not exist (expected policy.py, model.pt or a run directory holding one)")
    return path, kind


def run_env_kwargs(path: str | Path) -> dict[str, Any]:
    """The env kwargs a run directory's record was made with ({} for a bare policy file or no record)."""
    record = Path(path) / "record.json"
    return dict(json.loads(record.read_text()).get("env_kwargs") or {}) if record.is_file() else {}


def run_policy_lifetime(path: str | Path) -> str | None:
    """How long one `Policy()` lived in the run a directory holds: its record's `config.policy_lifetime`, "episode"
    for records older than that field (they were scored so), None for a bare policy file."""
    config = _run_config(path)
    return None if config is None else config.get("policy_lifetime") or "episode"


def run_episodes_per_worker(path: str | Path) -> int | None:
    """How many episodes one sandbox worker played in the run's final evaluation (`config.eval_episodes_per_worker`):
    a re-evaluation presents the policy the same; None (one worker for all) for a bare file or an older record."""
    config = _run_config(path)
    return None if config is None else config.get("eval_episodes_per_worker")


def policy_variant(path: str | Path, env_id: str) -> str | None:
    """The description variant whose observation the code policy at `path` reads (see `recorded_variant`)."""
    return recorded_variant(_run_config(path), policy_file(path)[1], env_id)


def recorded_variant(config: dict | None, kind: str, env_id: str) -> str | None:
    """The description variant whose observation a code policy reads (`run_episodes`' `variant`): its run's recorded
    `config.description_variant` (None for records older than that field: they were scored on the env's own
    observation), the task's default for a bare policy file (no `config`); None for a model.pt (`kind` "torch")."""
    if kind == "torch":
        return None
    return registry.default_variant(env_id) if config is None else config.get("description_variant")


def _run_config(path: str | Path) -> dict | None:
    record = Path(path) / "record.json"
    return (json.loads(record.read_text()).get("config") or {}) if record.is_file() else None


def load_policy(path: str | Path, env_id: str, env: gym.Env, act_seconds: float = 1.0,
                memory_mb: int = 2048, lifetime: str = "episode", unsafe: bool = False,
                episodes_per_worker: int | None = None, episode_seconds: float = 120.0) -> Any:
    """A BatchPolicy for `env` from a run directory, a policy.py (sandboxed, one `Policy()` per `lifetime`:
    "rollout" or "episode"; a fresh worker per `episodes_per_worker` episodes, within `act_seconds` per observation,
    `episode_seconds` per episode and `memory_mb`) or a model.pt; `close()` it after. `unsafe` runs code without a
    missing sandbox layer."""
    file, kind = policy_file(path)
    if kind == "torch":
        from .torch_policy import load_torch_policy

        return load_torch_policy(file, env.action_space, env.observation_space)
    if not registry.is_registered(env_id):
        raise BenchError(f"{env_id} has no description module, so a code policy cannot run on it")
    from .sandbox import Limits, SandboxedPolicy  # the sandbox is only needed for user code

    limits = Limits(act_seconds=act_seconds, episode_seconds=episode_seconds, memory_mb=memory_mb)
    return SandboxedPolicy(file.read_text(), f"{registry.get(env_id).description}:Observation", env.action_space,
                           limits, lifetime=lifetime, unsafe=unsafe, episodes_per_worker=episodes_per_worker)
