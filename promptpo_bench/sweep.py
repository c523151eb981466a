"""Sweeps: every algorithm × task × seed of a grid, each run the algorithm's own file in a subprocess.

A sweep's run is exactly the command a user could type (`python algorithms/ppo.py --env-id ... --seed ...
--run-dir OUT/{env_id}__{algo}__{seed}`), and its record stores that command. A tuning sweep adds named
configurations per algorithm (`configs`): each is one more set of flags, a run directory
`OUT/{env_id}__{algo}-{config}__{seed}`, and the summary picks the configuration with the best mean score.
Two backends start them (sweep_backends.py): a bounded local process pool, or Ray tasks (one CPU/GPU request per
run, a custom resource capping concurrent LLM runs per endpoint, retries of runs lost with a node). Rerunning a
sweep skips finished runs (valid record.json), resumes interrupted resumable runs (PromptPO: `--resume RUN_DIR`)
and restarts interrupted baseline runs from scratch, since those cannot resume. This module holds the grid, the
sweep file, each run's state on disk, the summary table and `--submit`.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .entries import DEFAULT_BOARD, find_duplicate
from .errors import BenchError
from .records import load_record
from .statistics import ci95

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ALGORITHMS_DIR = Path("algorithms")  # relative to where the sweep is started: a checkout's algorithm files
DEFAULT_LLM_ENDPOINT = "https://api.openai.com/v1"
FORWARDED_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "WANDB_API_KEY", "WANDB_MODE", "WANDB_ENTITY")
# Flags that leave a run's course alone, with how many values each takes: logging; the early stop, which only ends
# the same run sooner (a run finished without it is the same run carried on to its budget); and the run directory,
# which names where the record was written (a clone elsewhere, a moved folder), not what it holds.
_NEUTRAL_FLAGS = {"--track": 0, "--no-track": 0, "--wandb-group": 1, "--wandb-project-name": 1, "--wandb-entity": 1,
                  "--early-stop-fraction": 1, "--early-stop-evals": 1, "--run-dir": 1}


@dataclass(frozen=True)
class Traits:
    """What the sweep must know about an algorithm file: its budget flag, whether it uses an LLM, whether it resumes.

    A file declares them itself in a module-level literal, `SWEEP_TRAITS = {"budget_flag": ..., "uses_llm": ...,
    "resumable": ...}` (read without importing the file); a file without one is a classical baseline, whose
    BaselineArgs give these defaults.
    """

    budget_flag: str = "--total-timesteps"
    uses_llm: bool = False
    resumable: bool = False  # takes --resume RUN_DIR


def traits(script: Path) -> Traits:
    """The traits an algorithm file declares in `SWEEP_TRAITS` (defaults where it declares none)."""
    for node in ast.parse(script.read_text(), str(script)).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["SWEEP_TRAITS"]:
            try:
                return Traits(**ast.literal_eval(node.value))
            except (ValueError, TypeError) as e:
                raise BenchError(f"{script}: SWEEP_TRAITS must be a dict literal with the keys budget_flag, "
                                 f"uses_llm, resumable ({e})") from None
    return Traits()


def method_label(algo: str, config: str | None) -> str:
    """The algorithm, with its configuration's name in a tuning sweep: ppo or ppo[ent-0.05]."""
    return f"{algo}[{config}]" if config else algo


@dataclass(frozen=True)
class SweepRun:
    """One cell of the grid: the algorithm file, its flags and where it writes."""

    algo: str
    env_id: str
    seed: int
    script: Path
    traits: Traits
    run_dir: Path
    flags: tuple[str, ...]  # everything after the script path, --run-dir included
    llm_endpoint: str | None  # the endpoint it talks to, for the concurrency cap; None: no LLM
    config: str | None = None  # the named configuration of a tuning sweep; None: the algorithm's flags as given
    # variables forwarded to the run wherever it runs (API keys, W&B mode); kept out of repr, which may be printed
    env: tuple[tuple[str, str], ...] = dataclasses.field(default=(), repr=False)

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def method(self) -> str:
        return method_label(self.algo, self.config)

    @property
    def label(self) -> str:
        return f"{self.env_id} {self.method} seed {self.seed}"

    def command(self) -> list[str]:
        """The command that starts this run from scratch (with the Python that runs this code)."""
        return [sys.executable, str(self.script), *self.flags]


# ---- the grid ---------------------------------------------------------------------------------------------------


def parse_seeds(value: Any) -> list[int]:
    """Seeds from "1-5", "1,3,7", "1-3,9", an int or a list of ints (a sweep file), in order, without repeats."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list):
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    else:
        raise BenchError(f"seeds must look like 1-5 or 1,3,7, got {value!r}")
    seeds: list[int] = []
    for part in parts:
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match or (match[2] and int(match[2]) < int(match[1])):
            raise BenchError(f"seeds must look like 1-5 or 1,3,7, got {part!r}")
        seeds += range(int(match[1]), int(match[2] or match[1]) + 1)
    if not seeds:
        raise BenchError("no seeds given (e.g. --seeds 1-5)")
    return list(dict.fromkeys(seeds))


def parse_list(value: Any, what: str) -> list[str]:
    """A comma-separated string or a list of strings."""
    items = value if isinstance(value, list) else str(value).split(",")
    items = [str(item).strip() for item in items if str(item).strip()]
    if not items:
        raise BenchError(f"no {what} given")
    return list(dict.fromkeys(items))


def parse_budget(value: Any, algos: list[str]) -> dict[str, int]:
    """Budget per algorithm from "100000", "ppo=1000000,promptpo=50000" (a bare number: every algorithm not named)
    or a sweep file's int or table; algorithms without one keep their own default."""
    if value is None:
        return {}
    if isinstance(value, int) and not isinstance(value, bool):
        pairs = [("", value)]
    elif isinstance(value, dict):
        pairs = [("" if k == "default" else k, v) for k, v in value.items()]
    else:
        pairs = [tuple(p.split("=", 1)) if "=" in p else ("", p) for p in str(value).split(",") if p.strip()]
    budget: dict[str, int] = {}
    for algo, amount in pairs:
        algo = algo.strip()
        if algo and algo not in algos:
            raise BenchError(f"--budget names {algo!r}, not one of the sweep's algorithms ({', '.join(algos)})")
        try:
            amount = int(str(amount).strip().replace("_", ""))
        except ValueError:
            raise BenchError(f"--budget must be a number of steps or ALGO=STEPS pairs, got {value!r}") from None
        if amount < 1:
            raise BenchError(f"--budget must be at least 1, got {amount}")
        for name in [algo] if algo else algos:
            if algo or name not in budget:
                budget[name] = amount
    return budget


def parse_algo_args(value: Any, algos: list[str]) -> dict[str, list[str]]:
    """Extra flags per algorithm: ["ppo=--num-envs 4", ...] (command line) or {ppo = "--num-envs 4"} (a file)."""
    if not value:
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = []
        for text in value:
            algo, sep, flags = text.partition("=")
            if not sep:
                raise BenchError(f"--args must be ALGO='FLAGS', e.g. --args ppo='--num-envs 4', got {text!r}")
            items.append((algo, flags))
    result: dict[str, list[str]] = {}
    for algo, flags in items:
        algo = algo.strip()
        if algo not in algos:
            raise BenchError(f"--args names {algo!r}, not one of the sweep's algorithms ({', '.join(algos)})")
        result[algo] = result.get(algo, []) + (list(map(str, flags)) if isinstance(flags, list) else shlex.split(flags))
    return result


def parse_configs(value: Any, algos: list[str]) -> dict[str, dict[str, list[str]]]:
    """Named configurations per algorithm: ["ppo:ent-0.05=--ent-coef 0.05", ...] (command line) or
    {ppo = {default = "", ent-0.05 = "--ent-coef 0.05"}} (a file); names are letters, digits, '.', '-'."""
    if not value:
        return {}
    if isinstance(value, dict):
        items = [(algo, name, flags) for algo, named in value.items()
                 for name, flags in (named.items() if isinstance(named, dict) else [(None, named)])]
    else:
        items = []
        for text in value:
            head, sep, flags = text.partition("=")
            algo, colon, name = head.partition(":")
            items.append((algo, name if sep and colon else None, flags))
    result: dict[str, dict[str, list[str]]] = {}
    for algo, name, flags in items:
        algo, name = algo.strip(), name and name.strip()
        if algo not in algos:
            raise BenchError(f"--configs names {algo!r}, not one of the sweep's algorithms ({', '.join(algos)})")
        if not name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", name):
            raise BenchError(f"--configs must be ALGO:NAME='FLAGS' with NAME of letters, digits, '.' and '-', e.g. "
                             f"--configs ppo:ent-0.05='--ent-coef 0.05', got {algo}:{name}")
        if not isinstance(flags, (str, list)):
            raise BenchError(f"--configs {algo}:{name}: the flags must be a string or a list of strings (in TOML, "
                             f'quote a name with dots: "{name}.x" = "...")')
        named = result.setdefault(algo, {})
        if name in named:
            raise BenchError(f"--configs names {algo}:{name} twice")
        named[name] = list(map(str, flags)) if isinstance(flags, list) else shlex.split(flags)
    return result


def check_task(env_id: str) -> None:
    """A suite task or any Gymnasium id, else a one-line error naming the closest suite ids."""
    import gymnasium as gym

    if not registry.is_registered(env_id) and env_id not in gym.registry:
        registry.get(env_id)


def llm_endpoint(flags: list[str]) -> str:
    """The endpoint an LLM run talks to: its --llm-base-url, else $OPENAI_BASE_URL, else OpenAI's."""
    for i, flag in enumerate(flags):
        if flag == "--llm-base-url" and i + 1 < len(flags):
            return flags[i + 1]
        if flag.startswith("--llm-base-url="):
            return flag.split("=", 1)[1]
    return os.environ.get("OPENAI_BASE_URL") or DEFAULT_LLM_ENDPOINT


def llm_resource(endpoint: str) -> str:
    """The Ray custom resource that counts concurrent LLM runs on one endpoint (a readable, valid resource name)."""
    return "llm_" + re.sub(r"[^A-Za-z0-9]+", "_", endpoint).strip("_")


@dataclass
class Sweep:
    """A whole sweep: the grid and how to run it (command-line flags and sweep-file keys have the same names)."""

    algos: list[str]
    tasks: list[str]
    seeds: list[int]
    out: Path
    budget: dict[str, int] = dataclasses.field(default_factory=dict)
    args: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    configs: dict[str, dict[str, list[str]]] = dataclasses.field(default_factory=dict)
    backend: str = "local"
    jobs: int = os.cpu_count() or 1
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    ray_address: str | None = None
    max_concurrent_llm_runs: int | None = None
    max_retries: int = 3
    track: bool = False
    wandb_group: str | None = None
    wandb_project_name: str | None = None
    submit: bool = False
    leaderboard: str | None = None
    algorithms_dir: Path = ALGORITHMS_DIR

    def runs(self) -> list[SweepRun]:
        """The grid, seed-major, so a sweep stopped early has every task and algorithm at the first seeds."""
        env = tuple((k, os.environ[k]) for k in FORWARDED_ENV if k in os.environ)
        runs = []
        declared = {algo: traits(self.algorithms_dir / f"{algo}.py") for algo in self.algos}
        for seed in self.seeds:
            for env_id in self.tasks:
                for algo in self.algos:
                    for config, config_flags in (self.configs.get(algo) or {None: []}).items():
                        name = f"{algo}-{config}" if config else algo
                        run_dir = self.out / f"{env_id}__{name}__{seed}"
                        flags = ["--env-id", env_id, "--seed", str(seed), "--run-dir", str(run_dir)]
                        if algo in self.budget:
                            flags += [declared[algo].budget_flag, str(self.budget[algo])]
                        if self.track:
                            flags += ["--track", "--wandb-group", self.wandb_group or self.out.name]
                            if self.wandb_project_name:
                                flags += ["--wandb-project-name", self.wandb_project_name]
                        flags += self.args.get(algo, []) + config_flags
                        endpoint = llm_endpoint(flags) if declared[algo].uses_llm else None
                        runs.append(SweepRun(algo, env_id, seed, self.algorithms_dir / f"{algo}.py", declared[algo],
                                             run_dir, tuple(flags), endpoint, config, env))
        return runs


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """The keys of a TOML sweep file (the same names as the command-line flags, with underscores)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"sweep file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"{path} is not valid TOML: {e}") from None
    known = {f.name for f in dataclasses.fields(Sweep)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BenchError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return data


def build_sweep(options: dict[str, Any]) -> Sweep:
    """A checked Sweep from sweep-file keys overridden by command-line flags (None: not given)."""
    missing = [k for k in ("algos", "tasks", "seeds") if options.get(k) is None]
    if missing:
        raise BenchError(f"a sweep needs --{missing[0]} (on the command line or in the sweep file)")
    algos = parse_list(options["algos"], "algorithms")
    algorithms_dir = Path(options.get("algorithms_dir") or ALGORITHMS_DIR)
    for algo in algos:
        if not (algorithms_dir / f"{algo}.py").is_file():
            have = sorted(p.stem for p in algorithms_dir.glob("*.py")) if algorithms_dir.is_dir() else []
            raise BenchError(f"no algorithm file {algorithms_dir / (algo + '.py')} (have: {', '.join(have) or 'none'};"
                             " --algorithms-dir points elsewhere)")
    tasks = parse_list(options["tasks"], "tasks")
    for env_id in tasks:
        check_task(env_id)
    sweep = Sweep(algos=algos, tasks=tasks, seeds=parse_seeds(options["seeds"]),
                  out=Path(options.get("out") or "runs/sweep").resolve(),
                  budget=parse_budget(options.get("budget"), algos), args=parse_algo_args(options.get("args"), algos),
                  configs=parse_configs(options.get("configs"), algos), algorithms_dir=algorithms_dir.resolve())
    for name in ("backend", "jobs", "cpus_per_run", "gpus_per_run", "ray_address", "max_concurrent_llm_runs",
                 "max_retries", "track", "wandb_group", "wandb_project_name", "submit", "leaderboard"):
        if options.get(name) is not None:
            setattr(sweep, name, options[name])
    if sweep.backend not in ("local", "ray"):
        raise BenchError(f"--backend must be local or ray, got {sweep.backend!r}")
    if sweep.ray_address and sweep.backend != "ray":
        raise BenchError("--ray-address needs --backend ray")
    for name in ("jobs", "max_concurrent_llm_runs"):
        if getattr(sweep, name) is not None and getattr(sweep, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(sweep, name)}")
    if sweep.cpus_per_run <= 0 or sweep.gpus_per_run < 0 or sweep.max_retries < 0:
        raise BenchError("--cpus-per-run must be positive; --gpus-per-run and --max-retries at least 0")
    return sweep


# ---- one run's state on disk ---------------------------------------------------------------------------------


def _result_flags(argv: list[str]) -> list[str]:
    """The flags of a command that decide what it computes (the neutral flags dropped)."""
    kept, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg.split("=", 1)[0] in _NEUTRAL_FLAGS:
            skip = _NEUTRAL_FLAGS[arg.split("=", 1)[0]] if "=" not in arg else 0
        else:
            kept.append(arg)
    return kept


def _same_run(run: SweepRun, command: str) -> bool:
    """Whether a recorded command line (`python SCRIPT FLAGS...`) is this run's."""
    argv = shlex.split(command)
    return (len(argv) >= 2 and Path(argv[1]).name == run.script.name
            and _result_flags(argv[2:]) == _result_flags(list(run.flags)))


def state(run: SweepRun) -> str:
    """finished | resume | restart | new — or a one-line error when the directory holds something else."""
    record_path = run.run_dir / "record.json"
    if record_path.is_file():
        try:
            record = load_record(run.run_dir)
        except (BenchError, ValueError):
            record = None
        if record is not None:
            if not _same_run(run, record["command"]):
                raise BenchError(f"{run.run_dir} holds a different run ({record['command']}); use another --out or "
                                 "remove it")
            return "finished"
    saved = run.run_dir / "run.json"
    if run.traits.resumable and saved.is_file():
        command = json.loads(saved.read_text()).get("command", "")
        if not _same_run(run, command):
            raise BenchError(f"{run.run_dir} holds a different run ({command}); use another --out or remove it")
        return "resume"
    if run.run_dir.exists():
        if not (run.run_dir / "sweep.json").is_file() and any(run.run_dir.iterdir()):
            raise BenchError(f"{run.run_dir} exists and was not written by a sweep; use another --out or remove it")
        return "restart"
    return "new"


# ---- summary and submission ------------------------------------------------------------------------------------


def _score(record: dict, references: dict) -> tuple[float, bool]:
    """The run's score and whether it is on a common scale: the final held-out success rate where the task is scored
    by success (registry.score_key), else the mean return, normalised where the task has reference scores (else raw)."""
    if registry.score_key(record["env_id"]) == "success_rate":
        rate = record["final_eval"].get("success_rate")
        return (np.nan if rate is None else float(rate)), True
    raw = float(record["final_eval"]["mean_return"])
    key = (record["env_id"], json.dumps(record["env_kwargs"], sort_keys=True))
    if key not in references:
        try:
            references[key] = registry.reference_scores(record["env_id"], **record["env_kwargs"])
        except BenchError:  # not a suite task (e.g. CartPole-v1): no references
            references[key] = None
    reference = references[key]
    return (registry.normalised(raw, reference), True) if reference else (raw, False)


def summarize(runs: list[SweepRun]) -> list[dict[str, Any]]:
    """Per task × algorithm (× configuration): finished and failed seeds, mean and 95% CI (Student t over seeds)
    of the score."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    references: dict = {}
    for run in runs:
        row = rows.setdefault((run.env_id, run.method), {"task": run.env_id, "algo": run.algo, "config": run.config,
                                                         "seeds": [], "failed": [], "scores": [], "normalised": True})
        try:
            record = load_record(run.run_dir)
        except BenchError:
            if (run.run_dir / "failed.json").is_file():
                row["failed"].append(run.seed)
            continue
        if record["final_eval"].get("failure"):  # its policy failed in the held-out evaluation: no score
            row["failed"].append(run.seed)
            continue
        score, normalised = _score(record, references)
        row["seeds"].append(run.seed)
        row["scores"].append(score)
        row["normalised"] &= normalised
    for row in rows.values():
        row["mean"] = float(np.mean(row["scores"])) if row["scores"] else None
        row["ci95"] = ci95(row["scores"]) if row["scores"] else None
    return list(rows.values())


def format_summary(rows: list[dict[str, Any]], planned_seeds: int) -> str:
    """The summary table as text."""
    header = ("task", "algorithm", "seeds", "score (mean ± 95% CI)", "failed")
    lines = []
    for row in rows:
        if row["mean"] is None:
            score = "-"
        else:
            spread = "(one seed: no CI)" if row["ci95"] is None else f"± {row['ci95']:.3f}"
            score = f"{row['mean']:.3f} {spread}" + ("" if row["normalised"] else " (raw return)")
        failed = ",".join(map(str, row["failed"])) or "-"
        lines.append((row["task"], method_label(row["algo"], row["config"]), f"{len(row['seeds'])}/{planned_seeds}",
                      score, failed))
    widths = [max(len(r[i]) for r in lines + [header]) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + lines]
    return "\n".join(text) + ("\nscore: final held-out mean return, normalised (random = 0, optimal = 1) where the "
                              "task has reference scores; the success rate where the task is scored by success "
                              "(Meta-World)")


def pick_configs(rows: list[dict[str, Any]], planned_seeds: int) -> dict[str, dict[str, Any]]:
    """Per algorithm of a tuning sweep, each configuration's score (the mean over tasks of its mean over seeds) and
    the pick: the best score among configurations finished on every task and seed (ties: the first listed)."""
    scores: dict[str, dict[str, list[float | None]]] = {}
    for row in rows:
        if row.get("config"):
            complete = len(row["seeds"]) == planned_seeds
            scores.setdefault(row["algo"], {}).setdefault(row["config"], []).append(row["mean"] if complete else None)
    picks = {}
    for algo, by_config in scores.items():
        means = {config: None if None in values else float(np.mean(values)) for config, values in by_config.items()}
        finished = {config: mean for config, mean in means.items() if mean is not None}
        picks[algo] = {"scores": means, "picked": max(finished, key=finished.get) if finished else None}
    return picks


def format_picks(picks: dict[str, dict[str, Any]]) -> str:
    """The tuning result as text: every configuration's score and the one picked."""
    lines = []
    for algo, pick in picks.items():
        scores = ", ".join(f"{config} {'(unfinished)' if mean is None else f'{mean:.3f}'}"
                           for config, mean in pick["scores"].items())
        lines.append(f"[tune] {algo}: picked {pick['picked'] or '- (no configuration finished every run)'} "
                     f"(mean score over tasks: {scores})")
    return "\n".join(lines)


def submit(runs: list[SweepRun], out: Path, leaderboard: str | None) -> int:
    """`promptpo-bench submit` every finished run not yet on this leaderboard; the number that failed.

    A run whose policy the board already holds for its task (submitted by hand, or by a sweep whose ledger is gone)
    counts as submitted, not as a rejected duplicate."""
    ledger = out / "submissions.jsonl"
    key = str(Path(leaderboard).resolve()) if leaderboard else None
    done = set()
    if ledger.is_file():
        for line in ledger.read_text().splitlines():
            entry = json.loads(line)
            if entry["returncode"] == 0:
                done.add((entry["run_dir"], entry["leaderboard"]))
    failures = 0
    for run in runs:
        if (str(run.run_dir), key) in done or not (run.run_dir / "record.json").is_file():
            continue
        on_board = find_duplicate(leaderboard or DEFAULT_BOARD, json.loads((run.run_dir / "record.json").read_text()))
        if on_board is not None:
            returncode, said = 0, [f"already on the board as {on_board}"]
        else:
            command = [sys.executable, "-m", "promptpo_bench.cli", "submit", str(run.run_dir)]
            command += ["--leaderboard", leaderboard] if leaderboard else []
            result = subprocess.run(command, capture_output=True, text=True)
            returncode, said = result.returncode, (result.stdout.strip() or result.stderr.strip()).splitlines()
        print(f"[submit] {run.label}: {said[-1] if said else f'exit status {returncode}'}")
        failures += returncode != 0
        with open(ledger, "a") as f:
            f.write(json.dumps({"run_dir": str(run.run_dir), "leaderboard": key, "returncode": returncode,
                                "output": said[-1] if said else ""}) + "\n")
    return failures


# ---- the command -------------------------------------------------------------------------------------------------
