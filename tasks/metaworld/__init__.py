"""Meta-World v3 MT1: button-press, pick-place, door-open and drawer-open with a fixed task per reset seed.

Registration only; metaworld and MuJoCo load when an env is made (`env.py`).
"""

from __future__ import annotations

import math

from ...registry import Recipe, ReferenceScores, TaskSpec, register
from .expert import ScriptedPolicy

KWARGS_HELP = "horizon: int in 1..500 (default 500); task_set_seed: int (default 0, the seed of MT1's 50 tasks)"

# Measured by benchmarks/reference_scores.py (50 episodes, reset seeds 0..49 = each MT1 task once;
# random actions seeded 0; expert = metaworld.policies' scripted policy).
_SOURCE = ("measured, 50 episodes, seeds 0..49 (each MT1 task once): uniform random (success rate {:.2f}) and "
           "metaworld.policies' scripted policy (success rate {:.2f})")
REFERENCES = {
    "button-press-v3": ReferenceScores(random=188.65, optimal=562.21, source=_SOURCE.format(0.00, 1.00)),
    "pick-place-v3": ReferenceScores(random=7.01, optimal=4402.14, source=_SOURCE.format(0.00, 1.00)),
    "door-open-v3": ReferenceScores(random=300.71, optimal=4275.76, source=_SOURCE.format(0.00, 0.92)),
    "drawer-open-v3": ReferenceScores(random=683.70, optimal=4039.25, source=_SOURCE.format(0.00, 1.00)),
}


def references(env) -> ReferenceScores:
    """The measured scores for the default settings; NaN (no normalisation) for any other settings."""
    if (env.horizon, env.task_set_seed) == (500, 0):
        return REFERENCES[env.env_name]
    return ReferenceScores(random=math.nan, optimal=math.nan, source="none measured for non-default kwargs")


def _spec(name: str, env_name: str, summary: str, rounds: int) -> TaskSpec:
    return TaskSpec(
        id=f"MetaWorld-{name}-v0", family="metaworld", entry_point="promptpo_bench.tasks.metaworld.env:MetaWorldEnv",
        kwargs={"env_name": env_name}, horizon=500, description="promptpo_bench.descriptions.metaworld",
        summary=summary, references=references, kwargs_help=KWARGS_HELP, success_key="success",
        observation="Box(39,)", action="Box(4,)", default_references=lambda: REFERENCES[env_name],
        requires=("metaworld", "mujoco"), extra="metaworld",
        expert=lambda env: ScriptedPolicy(env.env_name), recipe=Recipe(rounds=rounds), scored_by_success=True,
    )


register(_spec("ButtonPress", "button-press-v3", "Meta-World MT1 button-press-v3: press a button in the wall", rounds=10))
register(_spec("PickPlace", "pick-place-v3", "Meta-World MT1 pick-place-v3: grasp a puck, carry it to the goal", rounds=10))
register(_spec("DoorOpen", "door-open-v3", "Meta-World MT1 door-open-v3: swing a door open by its handle", rounds=20))
register(_spec("DrawerOpen", "drawer-open-v3", "Meta-World MT1 drawer-open-v3: pull a drawer open by its handle", rounds=20))
