"""The descriptions an LLM reads are true: they parse real observations and reproduce real rewards."""

from __future__ import annotations

import numpy as np
import pytest

import promptpo_bench
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


@pytest.mark.parametrize("board_id", BOARDS)
def test_default_variant_follows_the_paper(board_id):
    text = promptpo_bench.describe("NoiseWorld-v0", board=board_id)
    milestones = board_id >= 4
    assert ("BOARD_CODES" in text) == (not milestones)  # boards 4-6: codes left unexplained
    assert ("def reward" in text) == (not milestones)
    assert "{" + "horizon}" not in text and "after 100 steps" in text or "after 25 steps" in text
    if milestones:
        codes = sorted({int(c) for c in promptpo_bench.make("NoiseWorld-v0", board=board_id).unwrapped.board.codes})
        assert f"occur on this board: {', '.join(map(str, codes))}." in text
        assert "first visited the first milestone" in text


def test_key_info_switch_and_text_is_runnable_python():
    with_key = promptpo_bench.describe("NoiseWorld-Board4-v0", key_info=True)
    without = promptpo_bench.describe("NoiseWorld-Board1-v0", key_info=False)
    assert "BOARD_CODES" in with_key and "BOARD_CODES" not in without and "REWARD = " in without
    for text in (with_key, without):
        namespace: dict = {}
        exec(compile(text, "context.py", "exec"), namespace)  # the context is itself valid Python
        obs = promptpo_bench.make("NoiseWorld-Board4-v0").reset(seed=0)[0]
        assert namespace["Observation"].from_array(obs).prereq_first_done is False


def test_context_is_the_module_source():
    """What the LLM reads is the tested module's own text, not a copy."""
    source = open(description.__file__).read()
    text = promptpo_bench.describe("NoiseWorld-Board0-v0")
    for block in text.split("\n\n"):
        if "{" not in block and "after 25 steps" not in block:
            assert block.strip() in source
