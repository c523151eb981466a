"""The task registry: one `TaskSpec` per task of the suite, registered with Gymnasium on import.

The CLI, the rollout harness, the algorithms and the leaderboard all read these specs. A task family
is a module under `promptpo_bench.tasks` that calls `register(...)`; nothing else changes.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from . import descriptions
from .errors import BenchError


@dataclass(frozen=True)
class ReferenceScores:
    """Returns that normalise scores: `random` maps to 0, `optimal` (or expert) to 1."""

    random: float
    optimal: float
    source: str  # how both were obtained


@dataclass(frozen=True)
class Recipe:
    """PromptPO's budget on a task in the paper: rounds, policy candidates per round, episodes per candidate."""

    rounds: int
    candidates: int = 10
    episodes: int = 5


@dataclass(frozen=True)
class TaskSpec:
    """Everything the suite knows about one task id."""

    id: str
    family: str
    entry_point: str
    kwargs: dict[str, Any]  # defaults passed to the entry point
    horizon: int  # with the default kwargs; the env truncates itself
    description: str  # module of the LLM description (promptpo_bench.descriptions.<family>)
    summary: str  # one line for tables
    references: Callable[[gym.Env], ReferenceScores]  # computed from the (unwrapped) env instance
    kwargs_help: str  # valid kwargs and their ranges, for error messages
    vector_entry_point: str | None = None
    success_key: str | None = None  # info key whose max over an episode is "success", if defined
    max_episode_steps: int | None = None  # only for envs that do not truncate themselves
    expert: Callable[[gym.Env], Any] | None = None  # builds the reference (optimal/expert) batch policy
    expert_code: Callable[[gym.Env], str] | None = None  # the same policy as policy.py source (answer contract)
    recipe: Recipe = Recipe(rounds=10)  # the paper's PromptPO budget here (its main runs; 10 rounds by default)
    # what `promptpo-bench tasks` lists without building an env (tests check each against the env, default kwargs)
    observation: str = ""  # the observation space, e.g. "Box(104,)"
    action: str = ""  # the action space, e.g. "Discrete(4)"
    default_references: Callable[[], ReferenceScores] | None = None  # `references` of the default env
    requires: tuple[str, ...] = ()  # modules the env needs beyond the core dependencies
    extra: str | None = None  # the pyproject extra that installs them
    env_per_process: bool = False  # its env holds a once-per-process resource (libsumo): rollouts give each a process
    # runs are ranked by success rate, not normalised return (Meta-World: the paper ranks by success, and its
    # expert's return is no upper bound: PPO collects 7.8x it on ButtonPress)
    scored_by_success: bool = False


_SPECS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> None:
    """Add a task to the suite and to Gymnasium's registry.

    An id Gymnasium registers itself (e.g. `HalfCheetah-v5`) keeps Gymnasium's own spec (its TimeLimit
    included); the suite only records the TaskSpec, which must name the same entry point.
    """
    known = gym.registry.get(spec.id)
    if known is not None and known.entry_point != spec.entry_point:
        raise ValueError(f"{spec.id} is already registered as {known.entry_point}, not {spec.entry_point}")
    _SPECS[spec.id] = spec
    if known is None:
        gym.register(id=spec.id, entry_point=spec.entry_point, vector_entry_point=spec.vector_entry_point,
                     kwargs=dict(spec.kwargs), max_episode_steps=spec.max_episode_steps)


def specs() -> list[TaskSpec]:
    """All tasks, in registration order."""
    return list(_SPECS.values())


def is_registered(env_id: str) -> bool:
    """Whether `env_id` is a task of the suite."""
    return env_id in _SPECS


def get(env_id: str) -> TaskSpec:
    """The spec of `env_id`, or a one-line error naming the closest known ids."""
    try:
        return _SPECS[env_id]
    except KeyError:
        close = difflib.get_close_matches(env_id, _SPECS, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known ids: {', '.join(_SPECS)}"
        raise BenchError(f"unknown env id {env_id!r}{hint}") from None


def make_target(env_id: str, *, checks: bool = True) -> str | gym.envs.registration.EnvSpec:
    """What `gym.make` should build for `env_id`: the id, or with `checks=False` its spec less the wrappers that check
    each call (OrderEnforcing, PassiveEnvChecker): what the rollout harness makes, since it resets before it steps and
    the tests run `check_env` on every task; the two cost ~0.5 us a step (a NoiseWorld step: 1.3 us with them, 0.8
    without)."""
    return env_id if checks else replace(gym.spec(env_id), order_enforce=False, disable_env_checker=True)


def make(env_id: str, *, checks: bool = True, **kwargs: Any) -> gym.Env:
    """`gym.make` of a suite task, turning bad kwargs into a one-line error with the valid range; `checks=False`: without
    the per-call checks (`make_target`)."""
    spec = get(env_id)
    try:
        return gym.make(make_target(env_id, checks=checks), **kwargs)
    except gym.error.DependencyNotInstalled as e:
        raise BenchError(f"{env_id}: {e}".splitlines()[0]) from None
    except (TypeError, ValueError) as e:
        raise BenchError(f"{env_id}: {e} (valid kwargs: {spec.kwargs_help})") from None


class SimulatorState(gym.ObservationWrapper):
    """The env's observation array with `state(env.unwrapped)` appended after each reset and step: what a description
    variant's `Observation` carries beyond the array (MuJoCo's `paper`: qpos, qvel, dt, ...), read where the paper's
    observation objects read it. Only code policies get it; PPO and SAC see the env's own array."""

    def __init__(self, env: gym.Env, state: Callable[[Any], Any]):
        super().__init__(env)
        self.state = state
        size = env.observation_space.shape[0] + len(state(env.unwrapped))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float64)

    def observation(self, observation: Any) -> np.ndarray:
        return np.concatenate([np.asarray(observation, dtype=np.float64), self.state(self.env.unwrapped)])


def make_for_policy(env_id: str, variant: str | None, *, checks: bool = True, **kwargs: Any) -> gym.Env:
    """`make`, the observation extended as the description `variant`'s `Observation` reads it (see SimulatorState);
    None: the env's own observation."""
    env = make(env_id, checks=checks, **kwargs)
    try:
        state = None if variant is None else descriptions.simulator_state(description_module(env_id), variant)
    except ValueError as e:
        env.close()
        raise BenchError(f"{env_id}: {e}") from None
    return env if state is None else SimulatorState(env, state)


def make_vec(env_id: str, num_envs: int, **kwargs: Any) -> gym.vector.VectorEnv:
    """`gym.make_vec` of a suite task: its native vector env where it has one, else a SyncVectorEnv."""
    spec = get(env_id)
    try:
        return gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    except (TypeError, ValueError) as e:
        raise BenchError(f"{env_id}: {e} (valid kwargs: {spec.kwargs_help})") from None


def parse_kwargs(text: str) -> dict[str, Any]:
    """Env kwargs given on a command line as a JSON object, e.g. '{"board": 3}'."""
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError:
        kwargs = None
    if not isinstance(kwargs, dict):
        raise BenchError(f"env kwargs must be a JSON object such as '{{\"board\": 3}}', got {text!r}")
    return kwargs


def description_module(env_id: str) -> ModuleType:
    """The description module the LLM reads for `env_id`."""
    return importlib.import_module(get(env_id).description)


def description_variants(env_id: str) -> dict[str, str]:
    """The named information variants of `env_id`'s description, the default (the paper's) first."""
    return dict(description_module(env_id).VARIANTS)


def default_variant(env_id: str) -> str:
    """The description variant an LLM reads unless told otherwise: the paper's information."""
    return descriptions.default_variant(description_module(env_id))


def describe(env_id: str, variant: str | None = None, **kwargs: Any) -> str:
    """Exactly the task context an LLM gets for `env_id` (with these kwargs) in `variant` (default: the paper's)."""
    env = make(env_id, **kwargs)
    try:
        return descriptions.context(description_module(env_id), env.unwrapped, variant)
    except ValueError as e:  # an unknown variant, or a description that does not cover these kwargs, says why
        raise BenchError(f"{env_id}: {e}") from None
    finally:
        env.close()


def space_text(space: gym.Space) -> str:
    """A space in one short word, as task tables print it: Discrete(4), Box(104,)."""
    if hasattr(space, "n"):
        return f"Discrete({space.n})"
    shape = getattr(space, "shape", None)
    return f"{type(space).__name__}{tuple(shape) if shape is not None else ''}"


def missing_requirements(spec: TaskSpec) -> list[str]:
    """The modules `spec`'s env needs that are not installed (found without importing them)."""
    return [name for name in spec.requires if importlib.util.find_spec(name) is None]


def reference_scores(env_id: str, **kwargs: Any) -> ReferenceScores:
    """Random and optimal (or expert) returns of `env_id` with these kwargs."""
    env = make(env_id, **kwargs)
    try:
        return get(env_id).references(env.unwrapped)
    finally:
        env.close()


def fraction_of_optimum(env_id: str, fraction: float, **kwargs: Any) -> float:
    """`fraction` of the task's optimum on its `score_key`: the value a baseline's early stop holds (baselines.py) and
    `submit` checks. A success rate of `fraction` where the task is scored by success, else `target_return`; a
    BenchError where the task has no optimum better than its random return."""
    if not is_registered(env_id):
        raise BenchError(f"needs a suite task with a known optimal return; {env_id} is not one")
    if score_key(env_id) == "success_rate":
        return fraction
    reference = reference_scores(env_id, **kwargs)
    target = target_return(fraction, reference)
    if target is None:
        raise BenchError(f"needs an optimal return above the random one; {env_id}'s are {reference.optimal:g} and "
                         f"{reference.random:g}")
    return target


def target_return(fraction: float, reference: ReferenceScores) -> float | None:
    """The return that reaches `fraction` of the optimum: `fraction` of the optimal return and `fraction` of the way
    up to it from the random return, the higher of the two (NoiseWorld: the first, which standing still at about 0
    does not reach; Traffic, random 599 and optimal 632: the second), or the second alone where the optimum is not
    above 0 (Reacher, Glucose, Pandemic); None where the optimum is no better than random, so that nothing is."""
    if reference.optimal <= reference.random:
        return None
    up = reference.random + fraction * (reference.optimal - reference.random)
    return max(fraction * reference.optimal, up) if reference.optimal > 0 else up


def normalised(score: float, reference: ReferenceScores) -> float:
    """Score on the scale random = 0, optimal = 1."""
    return (score - reference.random) / (reference.optimal - reference.random)


def score_key(env_id: str) -> str:
    """The final-evaluation and curve field that ranks runs on `env_id` (the sweep's pick, the board's scores):
    "success_rate" where the task is scored by success, else "mean_return" (normalised with the references)."""
    return "success_rate" if is_registered(env_id) and get(env_id).scored_by_success else "mean_return"
