"""The MiniGrid expert: it maps the grid from what it sees and plans shortest paths over the map (BFS with keys
and doors), for every task of the family.

It reads only the observation (the 7x7 view, or the whole grid where fully observable, the direction and the
mission), so its score is one any policy that sees the same observation could reach. As a `policy.py` it keeps
one map per episode and knows where an episode ends (it counts its steps and sees the goal, lava, the door or the
ball it acts on), as one `Policy()` may serve a rollout's episodes in order.
"""

from __future__ import annotations

import heapq
import inspect

import numpy as np


class GridPlanner:
    """Maps the cells seen so far (in the episode's own frame) and acts on shortest paths over the map.

    Each step: reach and complete the objective if the map shows a way (dropping what is carried first if the
    objective is a pickup); else fetch the key of a known locked door if the map shows that key; else explore,
    heading for the nearest cell it has not seen. Closed doors cost a toggle to pass, locked ones need their key.
    """

    UNSEEN, EMPTY, WALL, FLOOR, DOOR, KEY, BALL, BOX, GOAL, LAVA, AGENT = range(11)  # MiniGrid's OBJECT_TO_IDX
    OPEN, CLOSED, LOCKED = range(3)  # MiniGrid's STATE_TO_IDX (doors)
    LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE = range(6)  # MiniGrid's actions
    DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # MiniGrid's DIR_TO_VEC: right, down, left, up (y grows downward)

    def __init__(self, objective: str, max_steps: int):
        """objective: "goal" (step onto the goal), "pickup" (the mission's object) or "open" (the locked door)."""
        self.objective, self.max_steps = objective, max_steps
        self.new_episode()

    def new_episode(self) -> None:
        self.cells: dict = {}  # (x, y) -> (object, colour, state) as last seen
        self.pos, self.steps, self.ended, self.last, self.carrying = (0, 0), 0, False, None, None

    # ---- seeing -------------------------------------------------------------------------------------------------
    def observe(self, objects, colors, states, direction: int) -> bool:
        """Update position, carried object and map from one observation; False if it contradicts the map."""
        full = bool((objects == self.AGENT).any())
        moved, front_before = self.pos, None
        if self.last is not None:
            action, front_before, _ = self.last
            if action == self.FORWARD and self.passable(self.cells.get(front_before)):
                moved = front_before
        if full:
            xs, ys = np.nonzero(objects == self.AGENT)
            if self.last is not None and (int(xs[0]), int(ys[0])) != moved:
                return False
            self.pos = (int(xs[0]), int(ys[0]))
            seen = {(x, y): (int(objects[x, y]), int(colors[x, y]), int(states[x, y]))
                    for x in range(objects.shape[0]) for y in range(objects.shape[1]) if (x, y) != self.pos}
            self.track_carrying(seen.get(front_before) if front_before else None)
        else:
            self.pos = moved
            (fx, fy), px, py = self.DIRS[direction], self.pos[0], self.pos[1]
            rx, ry = -fy, fx
            seen = {}
            for vx in range(objects.shape[0]):
                for vy in range(objects.shape[1]):
                    if objects[vx, vy] != self.UNSEEN and (vx, vy) != (3, 6):  # (3, 6): the agent, what it carries
                        cell = (px + fx * (6 - vy) + rx * (vx - 3), py + fy * (6 - vy) + ry * (vx - 3))
                        seen[cell] = (int(objects[vx, vy]), int(colors[vx, vy]), int(states[vx, vy]))
            self.carrying = None if objects[3, 6] == self.EMPTY else (int(objects[3, 6]), int(colors[3, 6]))
        for cell, value in seen.items():
            known = self.cells.get(cell)
            if known is not None and known != value and cell != front_before:  # only the agent changes cells
                return False
        self.cells.update(seen)
        if full and self.pos not in self.cells:
            self.cells[self.pos] = (self.EMPTY, 0, 0)
        return True

    def track_carrying(self, front_now) -> None:
        """Where the view does not show what the agent carries (the whole grid): follow its pickups and drops."""
        if self.last is None:
            return
        action, _, before = self.last
        if action == self.PICKUP and self.carrying is None and before and before[0] in (self.KEY, self.BALL, self.BOX) \
                and front_now and front_now[0] == self.EMPTY:
            self.carrying = before[:2]
        elif action == self.DROP and self.carrying is not None and front_now and front_now[0] != self.EMPTY:
            self.carrying = None

    # ---- planning -----------------------------------------------------------------------------------------------
    def passable(self, value) -> bool:
        return value is not None and (value[0] in (self.EMPTY, self.FLOOR, self.GOAL)
                                      or (value[0] == self.DOOR and value[2] == self.OPEN))

    def door_cost(self, value, carrying) -> int:
        """Steps to pass a door cell: 1 if open, 2 if closed (toggle), 2 if locked and we carry its key, else 0."""
        if value[2] == self.OPEN:
            return 1
        if value[2] == self.CLOSED or carrying == (self.KEY, value[1]):
            return 2
        return 0

    def plan(self, direction: int, is_target, blocked=None):
        """The first action of a shortest path to a state whose front cell satisfies `is_target` ("here" if the
        agent is in one now), or None if the map shows none. Dijkstra over (x, y, direction)."""
        start = (self.pos[0], self.pos[1], direction)
        best, queue, count = {start: 0}, [(0, 0, start, None)], 0
        while queue:
            cost, _, state, first = heapq.heappop(queue)
            if cost > best[state]:
                continue
            x, y, d = state
            dx, dy = self.DIRS[d]
            front = (x + dx, y + dy)
            value = self.cells.get(front)
            if is_target(front, value):
                return "here" if first is None else first
            moves = [((x, y, (d - 1) % 4), 1, self.LEFT), ((x, y, (d + 1) % 4), 1, self.RIGHT)]
            if front != blocked and value is not None:
                if value[0] == self.DOOR:
                    steps = self.door_cost(value, self.carrying)
                    if steps:
                        moves.append(((front[0], front[1], d), steps, self.FORWARD if steps == 1 or value[2] == self.OPEN
                                      else self.TOGGLE))
                elif value[0] in (self.EMPTY, self.FLOOR):
                    moves.append(((front[0], front[1], d), 1, self.FORWARD))
            for nxt, steps, action in moves:
                if cost + steps < best.get(nxt, 1 << 30):
                    best[nxt] = cost + steps
                    count += 1
                    heapq.heappush(queue, (cost + steps, count, nxt, action if first is None else first))
        return None

    def reachable_without(self, cell, is_target) -> bool:
        """Whether a cell-level path from the agent reaches a target's neighbour with `cell` blocked (a drop there)."""
        seen, stack = {self.pos}, [self.pos]
        while stack:
            x, y = stack.pop()
            for dx, dy in self.DIRS:
                n = (x + dx, y + dy)
                value = self.cells.get(n)
                if is_target(n, value):
                    return True
                if n != cell and n not in seen and value is not None and (
                        self.passable(value) or (value[0] == self.DOOR and self.door_cost(value, None))):
                    seen.add(n)
                    stack.append(n)
        return False

    def drop_or_go(self, direction: int, is_target):
        """Free the hands before a pickup: drop here if the front cell is empty and the target stays reachable,
        else head for such a place."""
        def droppable(cell, value):
            return value is not None and value[0] == self.EMPTY and cell != self.pos \
                and self.reachable_without(cell, is_target)
        action = self.plan(direction, droppable)
        return self.DROP if action == "here" else action

    def choose(self, direction: int, mission) -> int:
        if self.objective == "goal":
            def objective(cell, value):
                return value is not None and value[0] == self.GOAL
            final = self.FORWARD
        elif self.objective == "pickup":
            def objective(cell, value):
                return value is not None and value[:2] == (mission[1], mission[0])  # (type, colour)
            final = self.PICKUP
        else:
            def objective(cell, value):  # a door this toggle opens
                return value is not None and value[0] == self.DOOR and (
                    value[2] == self.CLOSED or (value[2] == self.LOCKED and self.carrying == (self.KEY, value[1])))
            final = self.TOGGLE
        action = self.plan(direction, objective)
        if action is not None:
            if final == self.PICKUP and self.carrying is not None:  # no drop yet where it would lock the target away
                drop = self.drop_or_go(direction, objective)
                action = drop if drop is not None else None if action == "here" else action
            if action is not None:
                return final if action == "here" else action
        locked = {value[1] for value in self.cells.values() if value[0] == self.DOOR and value[2] == self.LOCKED}
        if locked and not (self.carrying and self.carrying[0] == self.KEY and self.carrying[1] in locked):
            def key(cell, value):
                return value is not None and value[0] == self.KEY and value[1] in locked
            action = self.plan(direction, key)
            if action is not None:
                if self.carrying is not None:
                    action = self.drop_or_go(direction, key)
                if action is not None:
                    return self.PICKUP if action == "here" else action
        action = self.plan(direction, lambda cell, value: value is None)
        return self.LEFT if action in (None, "here") else action

    # ---- acting -------------------------------------------------------------------------------------------------
    def ends(self, action: int, front, mission) -> bool:
        """Whether this action ends the episode (the goal or lava, or the objective's pickup or toggle)."""
        if front is None:
            return False
        if action == self.FORWARD:
            return front[0] in (self.GOAL, self.LAVA)
        if action == self.PICKUP and self.objective == "pickup":
            return self.carrying is None and front[:2] == (mission[1], mission[0])
        if action == self.TOGGLE and self.objective == "open" and front[0] == self.DOOR:
            return front[2] == self.CLOSED or (front[2] == self.LOCKED and self.carrying == (self.KEY, front[1]))
        return False

    def act(self, objects, colors, states, direction: int, mission=None) -> int:
        """The action for one observation; `mission` is (colour, object type) where the mission varies."""
        if self.ended or self.steps >= self.max_steps:
            self.new_episode()
        if not self.observe(objects, colors, states, direction):  # a new episode the count did not foresee
            self.new_episode()
            self.observe(objects, colors, states, direction)
        action = self.choose(direction, mission)
        dx, dy = self.DIRS[direction]
        front_cell = (self.pos[0] + dx, self.pos[1] + dy)
        front = self.cells.get(front_cell)
        self.ended = self.ends(action, front, mission)
        self.last = (action, front_cell, front)
        self.steps += 1
        return action


class BatchExpert:
    """The planner as a batch policy for the rollout harness: one GridPlanner per episode."""

    def __init__(self, objective: str, max_steps: int):
        from ...descriptions.minigrid import Observation

        self.parse, self.objective, self.max_steps, self.planners = Observation.from_array, objective, max_steps, {}

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        actions = np.empty(len(obs), dtype=np.int64)
        for i, (episode, row) in enumerate(zip(episode_ids.tolist(), obs)):
            planner = self.planners.setdefault(episode, GridPlanner(self.objective, self.max_steps))
            o = self.parse(row)
            mission = None if o.mission_color is None else (o.mission_color, o.mission_object)
            actions[i] = planner.act(o.objects, o.colors, o.states, o.direction, mission)
        return actions


def expert_policy(env) -> BatchExpert:
    """The expert of `env` (an unwrapped FlatMiniGridEnv) as a batch policy."""
    return BatchExpert(env.objective, env.max_steps)


# Shaped like tasks/pointmaze/planner.py's template (the planner's own source, wrapped in a Policy), deliberately:
# an expert's policy.py must stand alone in the sandbox, which gives it nothing of this package.
POLICY_TEMPLATE = """\
# The MiniGrid expert of promptpo-bench (tasks/minigrid/expert.py) as a policy.py: it maps the grid from what it
# sees and plans shortest paths over the map (BFS with keys and doors). It runs in the sandbox like any code policy.
import heapq

import numpy as np

OBJECTIVE = {objective!r}
MAX_STEPS = {max_steps!r}


{planner}

class Policy:
    def __init__(self):
        self.planner = GridPlanner(OBJECTIVE, MAX_STEPS)

    def act(self, obs):
        mission = None if obs.mission_color is None else (obs.mission_color, obs.mission_object)
        return self.planner.act(obs.objects, obs.colors, obs.states, obs.direction, mission)
"""


def policy_code(env) -> str:
    """The planner as a policy.py (the LLM answer contract), so a reference run scores it in the sandbox."""
    return POLICY_TEMPLATE.format(objective=env.objective, max_steps=env.max_steps,
                                  planner=inspect.getsource(GridPlanner))
