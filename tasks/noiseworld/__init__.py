"""NoiseWorld: the paper's stochastic grid worlds (seven boards) and a seeded generator of new ones."""

from __future__ import annotations

from ...registry import Recipe, ReferenceScores, TaskSpec, register, space_text
from .board import NUM_PAPER_BOARDS, Board, paper_board
from .env import observation_space
from .oracle import OptimalPolicy, policy_code, solution

KWARGS_HELP = "board: int in 0..6, or size: int in 3..64 with layout_seed: int >= 0 (and milestones: bool)"


def exact_references(board: Board) -> ReferenceScores:
    """Exact expected returns of the uniform random and of the optimal policy (value iteration)."""
    exact = solution(board)
    return ReferenceScores(random=exact.random_return, optimal=exact.optimal_return,
                           source="exact finite-horizon value iteration (promptpo_bench.tasks.noiseworld.oracle)")


def _spec(env_id: str, board: int, summary: str) -> TaskSpec:
    return TaskSpec(
        id=env_id, family="noiseworld", entry_point="promptpo_bench.tasks.noiseworld.env:NoiseWorldEnv",
        vector_entry_point="promptpo_bench.tasks.noiseworld.vector:NoiseWorldVectorEnv",
        kwargs={"board": board}, horizon=paper_board(board).horizon,
        description="promptpo_bench.descriptions.noiseworld", summary=summary,
        references=lambda env: exact_references(env.board), kwargs_help=KWARGS_HELP,
        expert=lambda env: OptimalPolicy(env.board), expert_code=lambda env: policy_code(env.board),
        recipe=Recipe(rounds=5), observation=space_text(observation_space(paper_board(board))), action="Discrete(4)",
        default_references=lambda: exact_references(paper_board(board)),
    )


register(_spec("NoiseWorld-v0", 1, "NoiseWorld, paper board 1 by default; any board via kwargs"))
for _board in range(NUM_PAPER_BOARDS):
    _b = paper_board(_board)
    register(_spec(f"NoiseWorld-Board{_board}-v0", _board,
                   f"NoiseWorld paper board {_board} ({_b.n}x{_b.n}{', milestones' if _b.milestones else ''})"))
