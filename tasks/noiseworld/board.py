"""NoiseWorld boards: the paper's seven layouts, the seeded generator, and the transition tables.

A :class:`Board` is pure data (codes and hidden per-cell dynamics). Its derived tables (`moves`,
`success`, `fail_to`, ...) are the single source of the dynamics: the single env, the vector env and
the exact oracle all read them, so they cannot disagree.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources

import numpy as np

# Board codes, as the agent observes them.
DETERMINISTIC, STOCHASTIC_STAY, STOCHASTIC_RESET, WALL, GOAL, TRAP, MILESTONE_1, MILESTONE_2 = range(8)
DYNAMICS_NAMES = {"deterministic": DETERMINISTIC, "stochastic_stay": STOCHASTIC_STAY,
                  "stochastic_reset": STOCHASTIC_RESET}
# Actions: 0 row-1 (up), 1 row+1 (down), 2 col-1 (left), 3 col+1 (right).
ACTION_DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1))
NUM_PAPER_BOARDS = 7
FINAL_PHASE = 2  # milestone phase in which the goal pays its bonus


@dataclass(frozen=True, eq=False)
class Board:
    """One NoiseWorld layout: observed codes plus the hidden dynamics of every cell (row-major, n*n)."""

    n: int
    codes: np.ndarray  # (n*n,) int64, what the agent sees
    dynamics: np.ndarray  # (n*n,) int64 in {0, 1, 2}: dynamics type of the cell being left
    p: np.ndarray  # (n*n,) float64
    p_alt: np.ndarray  # (n*n,) float64
    name: str
    layout_seed: int
    paper_optimum: float | None = field(default=None)

    @cached_property
    def milestones(self) -> bool:
        return bool(np.any(self.codes == MILESTONE_1))

    @property
    def horizon(self) -> int:
        return self.n * self.n

    @property
    def goal_bonus(self) -> float:
        return float(self.n**3)

    @property
    def trap_penalty(self) -> float:
        return float(-(self.n**5))

    @cached_property
    def moves(self) -> np.ndarray:
        """(n*n, 4) int64: the cell a *successful* move leads to; the cell itself when blocked."""
        n = self.n
        moves = np.empty((n * n, 4), dtype=np.int64)
        for cell in range(n * n):
            r, c = divmod(cell, n)
            for a, (dr, dc) in enumerate(ACTION_DELTAS):
                rr, cc = r + dr, c + dc
                inside = 0 <= rr < n and 0 <= cc < n
                moves[cell, a] = rr * n + cc if inside and self.codes[rr * n + cc] != WALL else cell
        return moves

    @cached_property
    def success(self) -> np.ndarray:
        """(n*n,) probability that an unblocked move out of the cell succeeds."""
        p, p_alt = self.p, self.p_alt
        reset = p / (p + 1.0 - p_alt)
        return np.select([self.dynamics == STOCHASTIC_STAY, self.dynamics == STOCHASTIC_RESET],
                         [p, reset], default=1.0)

    @cached_property
    def fail_to(self) -> np.ndarray:
        """(n*n,) where a failed move ends: the cell itself (stay) or the start cell 0 (reset)."""
        cells = np.arange(self.n * self.n)
        return np.where(self.dynamics == STOCHASTIC_RESET, 0, cells)

    @cached_property
    def terminal(self) -> np.ndarray:
        """(n*n,) bool: entering the cell ends the episode (goal or negative terminal)."""
        return (self.codes == GOAL) | (self.codes == TRAP)

    def entry_reward(self, phase: np.ndarray | int) -> np.ndarray:
        """(.., n*n) reward for a step that ends in each cell, given the milestone phase *after* it."""
        base = np.full(self.n * self.n, -1.0)
        base[self.codes == TRAP] += self.trap_penalty
        bonus = np.where(self.codes == GOAL, self.goal_bonus, 0.0)
        return base + bonus * (np.asarray(phase)[..., None] == FINAL_PHASE)

    @cached_property
    def next_phase(self) -> np.ndarray:
        """(3, n*n) milestone phase after entering each cell from each phase (read off the new cell)."""
        table = np.tile(np.arange(3)[:, None], (1, self.n * self.n))
        table[0, self.codes == MILESTONE_1] = 1
        table[1, self.codes == MILESTONE_2] = 2
        return table

    @property
    def start_phase(self) -> int:
        """Boards without milestones start in the final phase, so the goal always pays."""
        return 0 if self.milestones else FINAL_PHASE

    def grid(self) -> np.ndarray:
        """The (n, n) code grid."""
        return self.codes.reshape(self.n, self.n)


@lru_cache(maxsize=None)
def _paper_data() -> dict:
    text = resources.files("promptpo_bench.tasks.noiseworld").joinpath("boards.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=None)
def paper_board(board_id: int) -> Board:
    """One of the seven boards of the paper, exactly as its reference implementation lays it out."""
    if not isinstance(board_id, (int, np.integer)) or isinstance(board_id, bool) or not 0 <= board_id < NUM_PAPER_BOARDS:
        raise ValueError(f"board must be an integer in 0..{NUM_PAPER_BOARDS - 1}, got {board_id!r}")
    raw = _paper_data()["boards"][int(board_id)]
    codes = np.asarray(raw["codes"], dtype=np.int64).ravel()
    dynamics = np.array([DYNAMICS_NAMES[d] for row in raw["dynamics"] for d in row], dtype=np.int64)
    free = codes <= STOCHASTIC_RESET
    if not np.array_equal(codes[free], dynamics[free]):
        raise ValueError(f"boards.json: board {board_id} codes disagree with its dynamics")
    return Board(
        n=int(raw["n"]),
        codes=codes,
        dynamics=dynamics,
        p=np.asarray(raw["p"], dtype=np.float64).ravel(),
        p_alt=np.asarray(raw["p_alt"], dtype=np.float64).ravel(),
        name=f"paper board {board_id}",
        layout_seed=int(raw["layout_seed"]),
        paper_optimum=float(raw["optimal_expected_return"]),
    )


def _reachable(codes: np.ndarray, n: int, blocked: tuple[int, ...]) -> np.ndarray:
    """Cells reachable from the start without entering a code in `blocked` (breadth-first)."""
    seen = np.zeros(n * n, dtype=bool)
    seen[0] = True
    queue = deque([0])
    while queue:
        r, c = divmod(queue.popleft(), n)
        for dr, dc in ACTION_DELTAS:
            rr, cc = r + dr, c + dc
            nxt = rr * n + cc
            if 0 <= rr < n and 0 <= cc < n and not seen[nxt] and codes[nxt] not in blocked:
                seen[nxt] = True
                queue.append(nxt)
    return seen


MAX_SIZE = 64


@lru_cache(maxsize=64, typed=True)  # typed: (5, True) would hit (5, 1)'s entry and skip the check of layout_seed
def generate_board(size: int, layout_seed: int, milestones: bool = False) -> Board:
    """A new board from the paper's recipe, fully determined by (size, layout_seed, milestones).

    Voronoi regions (max(4, n//2) seeds) each draw a dynamics type uniformly and p, p_alt ~ U(0.25, 0.95);
    max(1, floor(0.005 n^2)) walls and max(1, floor(0.002 n^2)) negative terminals are placed on free
    cells, each kept only if the goal stays reachable; optional milestones are two more free cells.
    """
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or not 3 <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer in 3..{MAX_SIZE}, got {size!r}")
    if not isinstance(layout_seed, (int, np.integer)) or isinstance(layout_seed, bool) or layout_seed < 0:
        raise ValueError(f"layout_seed must be a non-negative integer, got {layout_seed!r}")
    n, rng = int(size), np.random.default_rng(int(layout_seed))
    cells = n * n
    rows, cols = np.divmod(np.arange(cells), n)

    num_regions = max(4, n // 2)
    centres = rng.choice(cells, size=num_regions, replace=False)
    cr, cc = np.divmod(centres, n)
    dist = (rows[:, None] - cr[None, :]) ** 2 + (cols[:, None] - cc[None, :]) ** 2
    region = np.argmin(dist, axis=1)
    region_dynamics = rng.integers(0, 3, size=num_regions)
    region_p = rng.uniform(0.25, 0.95, size=num_regions)
    region_p_alt = rng.uniform(0.25, 0.95, size=num_regions)
    dynamics, p, p_alt = region_dynamics[region], region_p[region], region_p_alt[region]
    codes = dynamics.copy()
    goal = cells - 1
    codes[goal] = GOAL

    def place(code: int, count: int) -> None:
        placed, attempts = 0, 0
        while placed < count and attempts < 100 * count:
            attempts += 1
            cell = int(rng.integers(1, goal))
            if codes[cell] > STOCHASTIC_RESET:
                continue
            old = codes[cell]
            codes[cell] = code
            reachable = _reachable(codes, n, blocked=(WALL, TRAP))
            if reachable[goal] and reachable[cell] == (code not in (WALL, TRAP)):
                placed += 1
            else:
                codes[cell] = old

    place(WALL, max(1, int(0.005 * n * n)))
    place(TRAP, max(1, int(0.002 * n * n)))
    if milestones:
        place(MILESTONE_1, 1)
        place(MILESTONE_2, 1)
        is_milestone = codes >= MILESTONE_1
        dynamics[is_milestone], p[is_milestone], p_alt[is_milestone] = DETERMINISTIC, 1.0, 1.0
    return Board(n=n, codes=codes, dynamics=dynamics, p=p, p_alt=p_alt,
                 name=f"generated board size={n} layout_seed={layout_seed}" + (" with milestones" if milestones else ""),
                 layout_seed=int(layout_seed))


def resolve_board(board: int = 1, size: int | None = None, layout_seed: int | None = None,
                  milestones: bool = False) -> Board:
    """The board selected by NoiseWorld's kwargs: a paper board, or a generated one if `size` is given."""
    if size is None and layout_seed is None:
        if milestones:
            raise ValueError("milestones=True only applies to generated boards (give size and layout_seed)")
        return paper_board(board)
    if size is None or layout_seed is None:
        raise ValueError("a generated board needs both size (3..64) and layout_seed (>= 0)")
    return generate_board(size, layout_seed, bool(milestones))
