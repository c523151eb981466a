"""Run directories and run records: what every algorithm writes and what the leaderboard reads.

A run directory holds `record.json` (valid against `run_record.schema.json`, the copy of the
suite's shared schema shipped in the package), the final policy, and `curve.jsonl`, appended and
flushed point by point so an interrupted run loses nothing it had measured.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from .errors import BenchError

if TYPE_CHECKING:
    from .rollout import Episodes

SCHEMA_VERSION = 1


@lru_cache(maxsize=None)
def schema() -> dict:
    """The run-record JSON schema."""
    return json.loads(resources.files("promptpo_bench").joinpath("run_record.schema.json").read_text())


def validate(record: dict) -> None:
    """Raise BenchError naming the first place where `record` breaks the schema."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(record))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise BenchError(f"record.json is invalid at {where}: {error.message}")


def final_eval(episodes: Episodes, failure: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record's `final_eval`: the held-out episodes' seeds, returns, lengths and successes, and the failure that
    ended them early (None: every episode ran to its end)."""
    return {"episode_seeds": list(episodes.seeds), "returns": episodes.returns.tolist(),
            "mean_return": episodes.mean_return, "lengths": episodes.lengths.tolist(),
            "successes": None if episodes.successes is None else episodes.successes.tolist(),
            "success_rate": episodes.success_rate, "failure": failure}


# The flags of an algorithm's command that choose the task, seed, budget and bookkeeping of a run rather than how it
# learns: BaselineArgs' fields, env-id and total-timesteps (tests/test_leaderboard.py keeps the two in step).
RUN_FLAGS = frozenset({
    "env-id", "seed", "total-timesteps", "run-dir", "exp-name", "env-kwargs", "native-vector-env", "torch-deterministic",
    "cuda", "torch-threads", "track", "wandb-project-name", "wandb-entity", "wandb-group", "capture-video",
    "save-model", "eval-every", "periodic-eval-episodes", "eval-episodes", "early-stop-fraction", "early-stop-evals",
})


def hyperparameter_flags(command: str) -> list[str]:
    """The flags of a recorded command that change how it learns, e.g. ["learning-rate 1e-3"]; run flags left out."""
    words = shlex.split(command)
    start = next((i + 1 for i, word in enumerate(words) if word.endswith(".py")), len(words))
    flags: list[list[str]] = []
    keep = False
    for word in words[start:]:
        if word.startswith("--"):
            name, *value = word[2:].replace("_", "-").split("=", 1)
            keep = name.removeprefix("no-") not in RUN_FLAGS
            if keep:
                flags.append([name, *value])
        elif keep:
            flags[-1].append(word)
    return [" ".join(flag) for flag in flags]


def run_dir_of(args: Any) -> Path:
    """An algorithm's run directory: --run-dir, or CleanRL's runs/{env_id}__{exp_name}__{seed}__{unix_time}."""
    if args.run_dir:
        return Path(args.run_dir)
    return Path("runs") / f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def code_version() -> dict[str, Any]:
    """Package version and, when run from a git checkout, its commit and whether it had local changes."""
    from . import __version__

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                                    timeout=10).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"package_version": __version__, "git_commit": commit, "git_dirty": dirty}


def cpu_fields() -> dict[str, str]:
    """/proc/cpuinfo's fields, each as the first CPU that has it gives it ("model name", "cpu family", "model"...);
    {} where there is no such file."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, colon, value = line.partition(":")
            if colon:
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def hardware() -> dict[str, Any]:
    cpu = cpu_fields().get("model name") or platform.processor() or platform.machine()
    gpu = None
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        gpu = sys.modules["torch"].cuda.get_device_name(0)
    return {"cpu": cpu, "cores": os.cpu_count() or 1, "gpu": gpu}


class RunRecorder:
    """Writes one run directory while the run goes: curve points as they happen, record.json at the end."""

    def __init__(self, run_dir: str | Path, *, algorithm: str, env_id: str, env_kwargs: dict[str, Any], seed: int,
                 config: dict[str, Any], llm: dict[str, Any] | None = None, command: str | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._start = time.time()
        self.base = {
            "schema_version": SCHEMA_VERSION, "algorithm": algorithm, "env_id": env_id, "env_kwargs": env_kwargs,
            "seed": seed, "command": command or shlex.join(["python", *sys.argv]), "config": config,
            "code_version": code_version(), "hardware": hardware(),
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "llm": llm,
        }
        self.curve: list[dict[str, Any]] = []

    @property
    def wall_time_s(self) -> float:
        return time.time() - self._start

    def add_point(self, env_steps: int, mean_return: float, **extra: Any) -> dict[str, Any]:
        """Append one curve point (the return of the policy the run would output now) and flush it."""
        point = {"env_steps": int(env_steps), "mean_return": float(mean_return),
                 "wall_time_s": round(self.wall_time_s, 3), **extra}
        self.curve.append(point)
        with open(self.run_dir / "curve.jsonl", "a") as f:
            f.write(json.dumps(point) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return point

    def finish(self, *, totals: dict[str, Any], final_eval: dict[str, Any], policy_path: str,
               policy_kind: str) -> dict[str, Any]:
        """Validate and write record.json; `policy_path` is relative to the run directory."""
        record = {
            **self.base, "wall_time_s": round(self.wall_time_s, 3), "totals": totals, "curve": self.curve,
            "final_eval": final_eval,
            "policy": {"kind": policy_kind, "path": policy_path, "sha256": sha256_file(self.run_dir / policy_path)},
        }
        validate(record)
        atomic_write_json(self.run_dir / "record.json", record)
        return record


def load_record(run_dir: str | Path) -> dict[str, Any]:
    """The validated record of a finished run."""
    path = Path(run_dir) / "record.json"
    if not path.is_file():
        raise BenchError(f"{run_dir} has no record.json (not a finished run directory)")
    record = json.loads(path.read_text())
    validate(record)
    return record
