"""MiniGrid: seven of Farama's grid worlds, under MiniGrid's own ids, with a flat observation (env.py).

Importing MiniGrid registers its own ids with its dict-observation envs; the suite imports it first (where it is
installed) and replaces those seven registrations with its flat-observation env, so `gym.make` of these ids gives
the suite's env whichever package is imported first. Without MiniGrid installed the ids are still listed, and
`make` says in one line what to install.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import gymnasium as gym

from ...registry import ReferenceScores, TaskSpec, register
from .expert import expert_policy, policy_code

if importlib.util.find_spec("minigrid") is not None:
    import minigrid  # noqa: F401  (registers MiniGrid's ids now, so that it cannot replace the suite's later)

KWARGS_HELP = ("fully_observable: bool (default False: the 7x7 egocentric view; True: the whole grid); "
               "max_steps: int >= 1 (default MiniGrid's own)")
ENTRY_POINT = "promptpo_bench.tasks.minigrid.env:FlatMiniGridEnv"
RANDOM_EPISODES, RANDOM_SEED = 100, 0  # the protocol of the stored scores (benchmarks/reference_scores.py)


@dataclass(frozen=True)
class _Task:
    entry_point: str  # MiniGrid's env class
    kwargs: dict
    horizon: int  # MiniGrid's default max_steps
    random: float  # mean return of uniform random actions, measured by benchmarks/reference_scores.py
    expert: float  # mean return of the expert (expert.py), measured the same way (success rate 1.00 on all seven)
    summary: str
    mission: bool = False  # whether the mission varies between episodes (then it is in the observation)


TASKS = {
    "MiniGrid-Empty-8x8-v0": _Task(
        "minigrid.envs:EmptyEnv", {"size": 8}, 256, 0.09, 0.9437,
        "empty 8x8 room, fixed start, goal in the far corner: the sanity check (sparse reward, no obstacles)"),
    "MiniGrid-FourRooms-v0": _Task(
        "minigrid.envs:FourRoomsEnv", {}, 100, 0.0266, 0.7023,
        "19x19, four rooms joined by gaps, random start and goal: exploration under a tight 100-step horizon"),
    "MiniGrid-DoorKey-8x8-v0": _Task(
        "minigrid.envs:DoorKeyEnv", {"size": 8}, 640, 0.0065, 0.9735,
        "pick up the key, unlock the door, reach the goal: a three-stage dependency"),
    "MiniGrid-MultiRoom-N4-S5-v1": _Task(
        "minigrid.envs:MultiRoomEnv", {"minNumRooms": 4, "maxNumRooms": 4, "maxRoomSize": 5}, 80, 0.0, 0.727,
        "4 random rooms in a chain of closed doors: long-horizon navigation with toggling"),
    "MiniGrid-LavaCrossingS9N2-v0": _Task(
        "minigrid.envs:CrossingEnv", {"size": 9, "num_crossings": 2}, 324, 0.0, 0.9418,
        "9x9 with two lava rivers with one gap each: a wrong step ends the episode (safety)"),
    "MiniGrid-KeyCorridorS3R3-v0": _Task(
        "minigrid.envs:KeyCorridorEnv", {"room_size": 3, "num_rows": 3}, 270, 0.0, 0.8846,
        "find the key in a side room, unlock the ball's room, pick up the ball of the mission's colour",
        mission=True),
    "MiniGrid-Unlock-v0": _Task(
        "minigrid.envs:UnlockEnv", {}, 288, 0.038, 0.9681,
        "two rooms: fetch the key of the locked door's colour and open the door (success = toggling it open)"),
}


def _measured(env_id: str) -> ReferenceScores:
    """The stored scores of the default settings (the 7x7 view, MiniGrid's horizon)."""
    task = TASKS[env_id]
    return ReferenceScores(random=task.random, optimal=task.expert, source=(
        f"measured, {RANDOM_EPISODES} episodes, reset seeds {RANDOM_SEED}..{RANDOM_SEED + RANDOM_EPISODES - 1}: "
        f"uniform random actions (seeded {RANDOM_SEED}) and the mapping BFS expert "
        "(promptpo_bench.tasks.minigrid.expert; its policy.py scores the same in the sandbox)"))


def references(env) -> ReferenceScores:
    """The measured scores for the default settings; NaN (no normalisation) for any other settings."""
    if not env.fully_observable and env.max_steps == TASKS[env.spec.id].horizon:
        return _measured(env.spec.id)
    return ReferenceScores(random=math.nan, optimal=math.nan, source="none measured for non-default kwargs")


for _id, _task in TASKS.items():
    if gym.registry.get(_id) is not None and gym.registry[_id].entry_point == _task.entry_point:
        del gym.registry[_id]  # MiniGrid's own dict-observation registration of this id: the suite's replaces it
    register(TaskSpec(
        id=_id, family="minigrid", entry_point=ENTRY_POINT,
        kwargs={"entry_point": _task.entry_point, "env_kwargs": _task.kwargs, "mission": _task.mission},
        horizon=_task.horizon, description="promptpo_bench.descriptions.minigrid", summary=_task.summary,
        references=references, kwargs_help=KWARGS_HELP, success_key="success",
        expert=expert_policy, expert_code=policy_code, observation=f"Box({152 if _task.mission else 150},)",
        action="Discrete(7)", default_references=lambda _id=_id: _measured(_id), requires=("minigrid",),
        extra="minigrid",
    ))
