"""The descriptions an LLM reads are true: they parse real observations and reproduce real rewards."""

from __future__ import annotations

import numpy as np
import pytest

import promptpo_bench
from promptpo_bench.errors import BenchError
from promptpo_bench.descriptions import noiseworld as description

BOARDS = range(7)


def random_transitions(board_id: int, steps: int, seed: int):
    """(obs, action, reward, next_obs, state_after) from random play with resets."""
    env = promptpo_bench.make("NoiseWorld-v0", board=board_id)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = int(rng.integers(4))
        next_obs, reward, term, trunc, _ = env.step(action)
        yield obs, action, reward, next_obs, env.unwrapped.state
        obs = env.reset()[0] if term or trunc else next_obs


@pytest.mark.parametrize("board_id", BOARDS)
def test_observation_parses_real_observations_field_by_field(board_id):
    board = promptpo_bench.make("NoiseWorld-v0", board=board_id).unwrapped.board
    n = board.n
    for _, _, _, next_obs, (cell, phase, _) in random_transitions(board_id, 2000, seed=board_id):
        o = description.Observation.from_array(next_obs)
        row, col = divmod(cell, n)
        assert (o.agent_row, o.agent_col) == (float(np.float32(row / (n - 1))), float(np.float32(col / (n - 1))))
        assert (o.goal_row, o.goal_col) == (1.0, 1.0)
        assert all(isinstance(v, float) for v in (o.agent_row, o.agent_col, o.goal_row, o.goal_col))
        assert o.board.dtype == np.float64 and o.board.shape == (n * n,)
        np.testing.assert_array_equal(o.board, board.codes)
        if board.milestones:
            assert (o.prereq_first_done, o.prereq_second_done) == (phase >= 1, phase >= 2)
        else:
            assert o.prereq_first_done is None and o.prereq_second_done is None


@pytest.mark.parametrize("board_id", BOARDS)
def test_reward_code_reproduces_the_environment(board_id):
    checked = 0
    for obs, action, reward, next_obs, _ in random_transitions(board_id, 5000, seed=100 + board_id):
        parse = description.Observation.from_array
        assert description.reward(parse(obs), action, parse(next_obs)) == reward
        checked += 1
    assert checked == 5000


def test_reward_code_on_goal_and_milestone_transitions():
    """Random play rarely reaches the goal; check the rare branches on purpose with the optimal policy."""
    from promptpo_bench.rollout import run_episodes  # noqa: F401  (same harness as the CLI)

    for board_id in (1, 4):
        env = promptpo_bench.make("NoiseWorld-v0", board=board_id)
        policy = promptpo_bench.get("NoiseWorld-v0").expert(env.unwrapped)
        goal_rewards = 0
        for seed in range(30):
            obs, _ = env.reset(seed=seed)
            for t in range(env.unwrapped.board.horizon):
                action = int(policy.act(None, obs[None], np.array([t]))[0])
                next_obs, reward, term, trunc, _ = env.step(action)
                parse = description.Observation.from_array
                assert description.reward(parse(obs), action, parse(next_obs)) == reward
                goal_rewards += reward > 0
                obs = next_obs
                if term or trunc:
                    break
        assert goal_rewards > 20


# Words that explain what a code does; the paper's contexts never say them.
DYNAMICS_WORDS = ("BOARD_CODES", "stays where", "sent back", "start (0, 0)", "wall", "negative terminal",
                  "always succeeds", "def reward", "n**3", "-1.0", "costs 1")
KEY_INFO_WORDS = ("6 cell", "7 cell", "in\n# that order", "milestone")


@pytest.mark.parametrize("board_id", BOARDS)
def test_paper_variant_lists_codes_and_tells_the_reward_in_words_only(board_id):
    text = promptpo_bench.describe("NoiseWorld-v0", board=board_id)
    assert text == promptpo_bench.describe("NoiseWorld-v0", "paper", board=board_id)  # the default
    milestones = board_id >= 4
    codes = "0, 1, 2, 3, 4, 5, 6, and 7" if milestones else "0, 1, 2, 3, 4, and 5"
    assert f"only the integers {codes} can appear in `board`" in text
    assert "REWARD = " in text and "negative step cost" in text and "large positive increment" in text
    assert "catastrophic" in text and f"time limit of {board_id and 100 or 25} steps" in text
    for word in DYNAMICS_WORDS + KEY_INFO_WORDS:
        assert word not in text, word


@pytest.mark.parametrize("board_id", BOARDS)
def test_key_info_variant_adds_exactly_the_milestone_rule_and_the_flags(board_id):
    paper = promptpo_bench.describe("NoiseWorld-v0", "paper", board=board_id)
    text = promptpo_bench.describe("NoiseWorld-v0", "paper-key-info", board=board_id)
    if board_id < 4:  # the reference's key info exists for milestone boards only
        assert text == paper
        return
    added = [line for line in text.splitlines() if line not in paper.splitlines()]
    changed_flag_comments = [line for line in added if "; see below" in line]
    rule = [line for line in added if line not in changed_flag_comments]
    assert len(changed_flag_comments) == 2 and len(rule) == 5, added
    assert "first stepped onto the 6 cell and later onto the 7 cell" in text.replace("\n# ", " ")
    assert "prereq_first_done: True once" in text and "prereq_second_done: True once" in text
    for word in DYNAMICS_WORDS:
        assert word not in text, word


@pytest.mark.parametrize("board_id", BOARDS)
def test_explained_variant_explains_codes_and_gives_the_reward_as_code(board_id):
    text = promptpo_bench.describe("NoiseWorld-v0", "explained", board=board_id)
    assert "BOARD_CODES" in text and "def reward" in text and "sent back to the start" in text
    assert "REWARD = " not in text
    assert ("first visited the first milestone" in text) == (board_id >= 4)


def test_unknown_variant_is_a_one_line_error():
    with pytest.raises(BenchError, match="unknown description variant 'key'; this task has: "
                                                         "paper, paper-key-info, explained"):
        promptpo_bench.describe("NoiseWorld-Board4-v0", "key")


@pytest.mark.parametrize("variant", list(description.VARIANTS))
def test_every_variant_is_runnable_python(variant):
    for env_id in ("NoiseWorld-Board1-v0", "NoiseWorld-Board4-v0"):
        namespace: dict = {}
        exec(compile(promptpo_bench.describe(env_id, variant), "context.py", "exec"), namespace)
        obs = promptpo_bench.make(env_id).reset(seed=0)[0]
        flag = namespace["Observation"].from_array(obs).prereq_first_done
        assert flag is (False if env_id.endswith("4-v0") else None)


def test_context_is_the_module_source():
    """What the LLM reads is the tested module's own text, not a copy."""
    source = open(description.__file__).read()
    text = promptpo_bench.describe("NoiseWorld-Board0-v0", "explained")
    for block in text.split("\n\n"):
        if "{" not in block and "25" not in block and "n = 5" not in block and "prereq_first_done: bool" not in block:
            assert block.strip() in source
