# The PointMaze expert of promptpo-bench (tasks/pointmaze/planner.py) as a policy.py: BFS over the known maze
# cells, then a PD controller toward the next cell's centre. It runs in the sandbox like any code policy.
from collections import deque

import numpy as np

MAZE_MAP = [[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 'r', 0, 0, 0, 1, 'g', 0, 0, 0, 0, 1], [1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1], [1, 0, 0, 0, 0, 'g', 0, 1, 0, 0, 'g', 1], [1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1], [1, 0, 'g', 1, 0, 1, 0, 0, 0, 0, 0, 1], [1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1], [1, 0, 0, 1, 'g', 0, 'g', 1, 0, 'g', 0, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]
SCALING = 1


class MazePlanner:
    """Batch policy for the rollout harness: head for the centre of the next cell on a shortest path to
    the goal's cell, then for the goal itself, with force = kp * error - kd * velocity (clipped to [-1, 1])."""

    def __init__(self, maze_map: list[list], scaling: float = 1.0, kp: float = 10.0, kd: float = 1.0):
        self.free = np.array([[cell != 1 for cell in row] for row in maze_map])
        self.scaling, self.kp, self.kd = scaling, kp, kd
        rows, cols = self.free.shape
        self.x_center, self.y_center = cols / 2 * scaling, rows / 2 * scaling
        self._distances: dict[tuple[int, int], np.ndarray] = {}

    def cell(self, xy: np.ndarray) -> tuple[int, int]:
        """The (row, col) of a point, as gymnasium-robotics' Maze.cell_xy_to_rowcol computes it."""
        return (int(np.floor((self.y_center - xy[1]) / self.scaling)),
                int(np.floor((xy[0] + self.x_center) / self.scaling)))

    def center(self, cell: tuple[int, int]) -> np.ndarray:
        """The (x, y) centre of a cell, as gymnasium-robotics' Maze.cell_rowcol_to_xy computes it."""
        return np.array([(cell[1] + 0.5) * self.scaling - self.x_center, self.y_center - (cell[0] + 0.5) * self.scaling])

    def distances(self, goal: tuple[int, int]) -> np.ndarray:
        """Steps from every free cell to `goal` along free cells (BFS; -1 where unreachable), cached per goal."""
        if goal not in self._distances:
            dist = np.full(self.free.shape, -1, dtype=np.int64)
            dist[goal] = 0
            queue = deque([goal])
            while queue:
                r, c = queue.popleft()
                for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                    if self.free[nr, nc] and dist[nr, nc] < 0:
                        dist[nr, nc] = dist[r, c] + 1
                        queue.append((nr, nc))
            self._distances[goal] = dist
        return self._distances[goal]

    def target(self, position: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Where to head now: the goal if in its cell, else the centre of the next cell on a shortest path."""
        here, goal_cell = self.cell(position), self.cell(goal)
        dist = self.distances(goal_cell)
        if here == goal_cell or not self.free[here] or dist[here] < 0:
            return goal
        r, c = here
        step = min(((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)),
                   key=lambda n: dist[n] if dist[n] >= 0 else np.inf)
        return self.center(step)

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        actions = np.empty((len(obs), 2), dtype=np.float32)
        for i, o in enumerate(obs):
            error = self.target(o[0:2], o[6:8]) - o[0:2]
            actions[i] = np.clip(self.kp * error - self.kd * o[2:4], -1.0, 1.0)
        return actions


class Policy:
    def __init__(self):
        self.planner = MazePlanner(MAZE_MAP, SCALING)

    def act(self, obs):
        row = np.array([[obs.x, obs.y, obs.vx, obs.vy, *obs.achieved_goal, *obs.desired_goal]])
        return self.planner.act(np.zeros(1), row, np.zeros(1))[0].tolist()
