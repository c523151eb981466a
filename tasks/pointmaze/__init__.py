"""PointMaze: gymnasium-robotics' point mass in the paper's custom Large map and in LARGE_MAZE_DIVERSE_G.

Registration only; gymnasium-robotics and MuJoCo load when an env is made (`env.py`).
"""

from __future__ import annotations

import math

from ...registry import Recipe, ReferenceScores, TaskSpec, register
from .planner import MazePlanner, policy_code

KWARGS_HELP = ("horizon: int >= 1 (default 800); reward_type: 'sparse' (default) or 'dense'; "
               "continuing_task: bool (default False, as in the paper); reset_target: bool (default False)")

# Measured by benchmarks/reference_scores.py (100 episodes, reset seeds 0..99; random actions seeded 0), for the
# paper's episodic task (default) and for the continuing one (`--kwargs '{"continuing_task": true}'`).
_SOURCE = ("measured, 100 episodes, seeds 0..99: uniform random (success rate {random}) and the BFS + PD planner on "
           "the known map (promptpo_bench.tasks.pointmaze.planner; success rate 1.00); {task}")
_EPISODIC = "episodic: the episode ends at the goal, return 0 or 1 (the paper's)"
_CONTINUING = "continuing: every step at the goal pays 1"
REFERENCES = {
    ("large", False): ReferenceScores(random=0.15, optimal=1.00, source=_SOURCE.format(random="0.15", task=_EPISODIC)),
    ("large_diverse_g", False): ReferenceScores(random=0.05, optimal=1.00,
                                                source=_SOURCE.format(random="0.05", task=_EPISODIC)),
    ("large", True): ReferenceScores(random=8.22, optimal=680.46,
                                     source=_SOURCE.format(random="0.12", task=_CONTINUING)),
    ("large_diverse_g", True): ReferenceScores(random=1.32, optimal=590.54,
                                               source=_SOURCE.format(random="0.02", task=_CONTINUING)),
}


def references(env) -> ReferenceScores:
    """The measured scores for the default settings (either continuing_task); NaN for any other settings."""
    if (env.horizon, env.reward_type, env.reset_target) == (800, "sparse", False):
        return REFERENCES[env.maze_name, env.continuing_task]
    return ReferenceScores(random=math.nan, optimal=math.nan, source="none measured for non-default kwargs")


def _spec(env_id: str, maze: str, summary: str) -> TaskSpec:
    return TaskSpec(
        id=env_id, family="pointmaze", entry_point="promptpo_bench.tasks.pointmaze.env:FlatPointMazeEnv",
        kwargs={"maze": maze}, horizon=800, description="promptpo_bench.descriptions.pointmaze", summary=summary,
        references=references, kwargs_help=KWARGS_HELP, success_key="success",
        observation="Box(8,)", action="Box(2,)", default_references=lambda: REFERENCES[maze, False],
        requires=("gymnasium_robotics", "mujoco"), extra="maze",
        expert=lambda env: MazePlanner(env.maze.maze_map, env.maze.maze_size_scaling),
        expert_code=lambda env: policy_code(env.maze.maze_map, env.maze.maze_size_scaling), recipe=Recipe(rounds=10),
    )


register(_spec("PointMaze-Large-v0", "large", "PointMaze, the paper's custom Large map (9x10), random goal and start"))
register(_spec("PointMaze-LargeDiverseG-v0", "large_diverse_g",
               "PointMaze, gymnasium-robotics LARGE_MAZE_DIVERSE_G (start 'r', goal one of 7 'g' cells)"))
