"""What an LLM reads about the MiniGrid tasks: observation, actions, reward, horizon and success, as Python.

One module for the family. Untagged `# <context>` parts are shown for every task; `when="partial"` / `when="full"`
pick the egocentric view or the whole grid (`fully_observable=True`), `when="goal"` / `"pickup"` / `"open"` the
task's objective and reward, and `{name}` placeholders are filled in per task. The index tables are MiniGrid's
own (minigrid.core.constants); tests/test_minigrid.py checks them, every field against the env's grid and the
reward function against the env's reward. It imports nothing but NumPy, so the sandbox can load it.
"""


# <context>
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MiniGrid's encoding of a grid cell: (object, colour, state), each an index into these tables.
OBJECT_TO_IDX = {"unseen": 0, "empty": 1, "wall": 2, "floor": 3, "door": 4, "key": 5, "ball": 6, "box": 7,
                 "goal": 8, "lava": 9, "agent": 10}
COLOR_TO_IDX = {"red": 0, "green": 1, "blue": 2, "purple": 3, "yellow": 4, "grey": 5}
STATE_TO_IDX = {"open": 0, "closed": 1, "locked": 2}  # doors only; 0 for every other object
DIR_TO_VEC = [(1, 0), (0, 1), (-1, 0), (0, -1)]  # direction 0 right (+x), 1 down (+y), 2 left (-x), 3 up (-y)


@dataclass
class Observation:
    """What the agent sees at each step: a grid of cells, each an (object, colour, state) triple, and its heading.

    The arrays are indexed [x, y] (x = column, y = row), as MiniGrid's own `image[x, y]`.
    """

    objects: np.ndarray  # (width, height) int64: OBJECT_TO_IDX of each cell
    colors: np.ndarray  # (width, height) int64: COLOR_TO_IDX of each cell (0 for empty and unseen cells)
    states: np.ndarray  # (width, height) int64: STATE_TO_IDX of each door, 0 elsewhere
    direction: int  # the agent's heading in the grid: 0 right, 1 down, 2 left, 3 up (see DIR_TO_VEC)
    width: int  # the view's (or grid's) width: objects.shape[0]
    height: int  # its height: objects.shape[1]
    mission_color: int | None = None  # COLOR_TO_IDX of the mission's object, where the mission varies, else None
    mission_object: int | None = None  # OBJECT_TO_IDX of the mission's object, where the mission varies, else None

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat uint8 array: width, height, direction, the
        width * height * 3 cell numbers in [x, y, (object, colour, state)] order, then (where the mission
        varies) the mission's colour and object."""
        values = np.asarray(array).astype(np.int64)  # a copy: the policy may keep or change it
        width, height, direction = values[:3].tolist()
        end = 3 + width * height * 3
        image = values[3:end].reshape(width, height, 3)
        mission = values[end:end + 2].tolist() or [None, None]
        return cls(image[:, :, 0].copy(), image[:, :, 1].copy(), image[:, :, 2].copy(), direction, width, height,
                   *mission)


# Actions: one integer.
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
# LEFT / RIGHT turn the agent 90 degrees in place. FORWARD moves it one cell ahead if that cell is empty, floor,
# an open door, the goal or lava (walls, closed doors, keys, balls and boxes block it). PICKUP picks up the key,
# ball or box ahead if the agent carries nothing (it carries at most one object). DROP puts the carried object
# on the cell ahead if that cell is empty. TOGGLE opens or closes the door ahead; a locked door opens only while
# the agent carries the key of the door's colour (it then stays unlocked). DONE does nothing.
# </context>

# <context when="partial">
# The observation is the agent's egocentric 7 x 7 view (width = height = 7), turned so that the agent always
# faces "up" in the view: the agent is at [3, 6], the cell right in front of it is [3, 5], x grows to the
# agent's right. It sees through open doors but not through walls or closed doors: cells hidden behind them are
# "unseen" (object 0). The agent's own cell [3, 6] shows the object it carries ("empty" if none). `direction`
# is the agent's heading in the (unseen) full grid. The view's cell [vx, vy] is grid cell
#   agent position + DIR_TO_VEC[direction] * (6 - vy) + right * (vx - 3),  right = (-dy, dx) for DIR_TO_VEC = (dx, dy).
AGENT_IN_VIEW = (3, 6)
# </context>

# <context when="full">
# The observation is the whole {width} x {height} grid (MiniGrid's FullyObsWrapper): the agent's cell holds
# object "agent" with colour "red" and its direction as the state (what lies under the agent is not shown).
# What the agent carries is not shown either: a picked-up object disappears from the grid.


def agent_position(obs: Observation) -> tuple[int, int]:
    """(x, y) of the agent in the grid."""
    xs, ys = np.nonzero(obs.objects == OBJECT_TO_IDX["agent"])
    return int(xs[0]), int(ys[0])
# </context>

# <context>
def front(obs: Observation) -> tuple[int, int, int]:
    """(object, colour, state) of the cell right in front of the agent: [3, 5] in the egocentric view, the
    neighbour of the "agent" cell in its direction in the whole grid."""
    agent = np.argwhere(obs.objects == OBJECT_TO_IDX["agent"])
    if len(agent):
        (x, y), (dx, dy) = agent[0], DIR_TO_VEC[obs.direction]
        x, y = x + dx, y + dy
    else:
        x, y = 3, 5
    return int(obs.objects[x, y]), int(obs.colors[x, y]), int(obs.states[x, y])


# The task ({task}): {summary}.
# Mission: "{mission}".
# </context>

# <context when="goal">
def success(obs: Observation, action: int, next_obs: Observation) -> bool:
    """The step succeeds when the agent moves forward onto the goal (a green square); the episode then ends.
    Moving onto lava ends the episode with reward 0."""
    return action == FORWARD and front(obs)[0] == OBJECT_TO_IDX["goal"]
# </context>

# <context when="pickup">
def success(obs: Observation, action: int, next_obs: Observation) -> bool:
    """The step succeeds when the agent picks up the mission's object (mission_color, mission_object), which
    needs empty hands; the episode then ends."""
    target = (obs.mission_object, obs.mission_color)
    return action == PICKUP and front(obs)[:2] == target and front(next_obs)[0] == OBJECT_TO_IDX["empty"]
# </context>

# <context when="open">
def success(obs: Observation, action: int, next_obs: Observation) -> bool:
    """The step succeeds when the agent's toggle opens the door (it is locked: carry its key); the episode then
    ends."""
    return action == TOGGLE and front(obs)[0] == OBJECT_TO_IDX["door"] and front(next_obs)[2] == STATE_TO_IDX["open"]
# </context>

# <context>
def reward(obs: Observation, action: int, next_obs: Observation, step_count: int, max_steps: int) -> float:
    """Reward of a step: 1 - 0.9 * step_count / max_steps on success, else 0. `step_count` counts the steps of
    the episode including this one, so faster is better."""
    return 1.0 - 0.9 * step_count / max_steps if success(obs, action, next_obs) else 0.0


# Episode: it ends on success{lava_end}, or after max_steps = {max_steps} steps (the horizon).
# Each reset draws the layout from its seed as the task says above; the policy sees only the observation.
# </context>


VARIANTS = {"suite": "the suite's description (MiniGrid is not one of the paper's tasks: no paper context to match)"}


def context_variables(env, variant: str) -> tuple[set[str], dict[str, str]]:
    """The view and objective parts and placeholder values for `env` (an unwrapped FlatMiniGridEnv)."""
    from ..registry import get  # here, not at the top: the sandbox loads this module without the suite

    sim = env.sim
    values = {"task": env.spec.id, "summary": get(env.spec.id).summary,
              "mission": "pick up the <mission_color> <mission_object>" if env.mission else sim.mission,
              "max_steps": str(env.max_steps), "width": str(sim.width), "height": str(sim.height),
              "lava_end": ", on stepping into lava (reward 0)" if env.lava else ""}
    return {"full" if env.fully_observable else "partial", env.objective}, values
