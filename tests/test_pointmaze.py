"""PointMaze tasks: the description's fields, maze, reward and success against gymnasium-robotics; seeding; the expert."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

from promptpo_bench import registry  # noqa: E402
from promptpo_bench.descriptions import context  # noqa: E402
from promptpo_bench.descriptions import pointmaze as description  # noqa: E402
from promptpo_bench.errors import BenchError  # noqa: E402
from promptpo_bench.rollout import RandomPolicy, episode_seeds, run_episodes  # noqa: E402

IDS = ["PointMaze-Large-v0", "PointMaze-LargeDiverseG-v0"]
PAPER_LARGE = """
1111111111
1000100001
1010101101
1000000101
1011110101
1000000001
1010111101
1000000001
1111111111
"""  # as printed in the paper's reference facts


def load_description(env, variant: str = "suite") -> dict:
    """The description as the LLM reads it (placeholders filled), executed; by default the variant with the maze."""
    namespace: dict = {}
    exec(compile(context(description, env.unwrapped, variant), "<context>", "exec"), namespace)
    return namespace


def rollout(env, seed: int, steps: int, expert_share: float):
    """(obs, reward, info) of a mix of expert and random actions from reset(seed), with the simulator's dict obs."""
    rng = np.random.default_rng(seed)
    expert = registry.get(env.spec.id).expert(env.unwrapped)
    obs, _ = env.reset(seed=seed)
    out = []
    for t in range(steps):
        if rng.random() < expert_share:
            action = expert.act(np.zeros(1), obs[None], np.array([t]))[0]
        else:
            action = rng.uniform(-1, 1, 2)
        obs, reward, terminated, truncated, info = env.step(action)
        sim = env.unwrapped.sim
        out.append((obs, reward, info, dict(qpos=sim.data.qpos.copy(), qvel=sim.data.qvel.copy(), goal=sim.goal.copy())))
    return out


@pytest.mark.parametrize("env_id", IDS)
def test_fields_reward_and_success_reproduce_the_simulator(env_id):
    env = registry.make(env_id)
    code = load_description(env)
    assert env.observation_space.shape == (8,) and env.action_space.shape == (2,)
    successes = 0
    for seed in (0, 1):
        for obs, reward, info, state in rollout(env, seed, 300, expert_share=0.8):
            o = code["Observation"].from_array(obs)
            assert [o.x, o.y, o.vx, o.vy] == [*state["qpos"], *state["qvel"]]
            np.testing.assert_array_equal(o.achieved_goal, state["qpos"])
            np.testing.assert_array_equal(o.desired_goal, state["goal"])
            assert code["reward"](o) == reward  # exactly: a pure function of the observation
            successes += info["success"]
            assert info["success"] == (np.linalg.norm(o.achieved_goal - o.desired_goal) <= 0.45)
    assert 0 < successes < 600  # both reward values occurred
    dense = registry.make(env_id, reward_type="dense")
    dense_reward = load_description(dense)["reward"]
    for obs, reward, _, _ in rollout(dense, 2, 100, expert_share=0.5):
        assert dense_reward(description.Observation.from_array(obs)) == pytest.approx(reward, abs=1e-12)


def test_maze_and_cells_in_the_description():
    env = registry.make("PointMaze-Large-v0")
    code = load_description(env)
    assert code["MAZE"].split() == PAPER_LARGE.split()
    maze = env.unwrapped.maze
    for row, col in [(1, 1), (3, 5), (7, 8)]:
        np.testing.assert_allclose(code["cell_to_xy"](row, col), maze.cell_rowcol_to_xy(np.array([row, col])))
        assert code["xy_to_cell"](*maze.cell_rowcol_to_xy(np.array([row, col]))) == (row, col)
    diverse = load_description(registry.make("PointMaze-LargeDiverseG-v0"))["MAZE"].split()
    assert diverse[1].startswith("1r") and sum(row.count("g") for row in diverse) == 7
    assert "it ends when the ball comes within 0.45 m of the goal, or after 800 steps" in \
        registry.describe("PointMaze-Large-v0")
    assert "lasts exactly 30 steps" in registry.describe("PointMaze-Large-v0", horizon=30, continuing_task=True)


@pytest.mark.parametrize("env_id", ["PointMaze-Large-v0", "PointMaze-LargeDiverseG-v0"])
def test_the_paper_variant_draws_no_maze_and_is_the_default(env_id):
    """The paper's PointMaze context names its maze but gives no layout, cell geometry, radius or start noise."""
    paper, suite = registry.describe(env_id), registry.describe(env_id, "suite")
    assert paper == registry.describe(env_id, "paper")
    code = load_description(registry.make(env_id), "paper")
    for name in ("MAZE", "cell_to_xy", "xy_to_cell"):
        assert name not in code and name in load_description(registry.make(env_id))
    for detail in ("1111", "radius", "1 m x 1 m", "0.25 m", "damped"):
        assert detail not in paper and detail in suite
    assert ("LARGE_MAZE_DIVERSE_G" if "Diverse" in env_id else "not its published LARGE_MAZE") in paper
    for shared in ("class Observation", "def reward", "0.45 m of the goal", "[-5, 5] m/s", "after 800 steps"):
        assert shared in paper and shared in suite


def test_seeding_start_and_goal_cells():
    env = registry.make("PointMaze-LargeDiverseG-v0")
    maze_map = env.unwrapped.maze.maze_map
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        start, goal = env.unwrapped.maze.cell_xy_to_rowcol(obs[:2]), env.unwrapped.maze.cell_xy_to_rowcol(obs[6:8])
        assert maze_map[start[0]][start[1]] == "r" and maze_map[goal[0]][goal[1]] == "g"
        assert np.all(np.abs(obs[2:4]) == 0)
    actions = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    runs = []
    for e in (env, registry.make("PointMaze-LargeDiverseG-v0")):  # a used env and a fresh one
        runs.append([e.reset(seed=7)[0]] + [e.step(action)[0] for action in actions])
    np.testing.assert_array_equal(runs[0], runs[1])
    large = registry.make("PointMaze-Large-v0")
    starts = {tuple(large.unwrapped.maze.cell_xy_to_rowcol(large.reset(seed=s)[0][:2])) for s in range(30)}
    assert len(starts) > 5  # random start cells on the paper's map


def test_making_an_env_leaves_no_maze_file_behind():
    env = registry.make("PointMaze-Large-v0")
    assert env.unwrapped.sim.tmp_xml_file_path.startswith(tempfile.gettempdir())
    assert not os.path.exists(env.unwrapped.sim.tmp_xml_file_path)
    env.reset(seed=0)
    env.step(np.zeros(2))  # the simulator runs from the model it loaded


@pytest.mark.parametrize("env_id", IDS)
def test_an_episode_ends_at_the_goal_as_in_the_paper(env_id):
    """continuing_task=False by default: the step that reaches the goal terminates the episode and pays the only 1."""
    env = registry.make(env_id)
    expert = registry.get(env_id).expert(env.unwrapped)
    for seed in (0, 1, 2):
        obs, _ = env.reset(seed=seed)
        rewards = []
        for t in range(800):
            obs, reward, terminated, truncated, info = env.step(expert.act(np.zeros(1), obs[None], np.array([t]))[0])
            rewards.append(reward)
            if terminated or truncated:
                break
        assert terminated and not truncated and info["success"] and t < 799
        assert np.linalg.norm(obs[4:6] - obs[6:8]) <= 0.45 and rewards == [0.0] * t + [1.0]


def test_horizon_truncates_and_expert_reaches_the_goal():
    episodes = run_episodes("PointMaze-Large-v0", registry.get("PointMaze-Large-v0").expert(
        registry.make("PointMaze-Large-v0").unwrapped), [0, 1, 2])
    assert (episodes.lengths < 800).all() and episodes.successes.all() and episodes.returns.tolist() == [1.0] * 3
    continuing = {"continuing_task": True}
    episodes = run_episodes("PointMaze-Large-v0", registry.get("PointMaze-Large-v0").expert(
        registry.make("PointMaze-Large-v0", **continuing).unwrapped), [0, 1, 2], continuing)
    assert episodes.lengths.tolist() == [800] * 3 and episodes.successes.all()
    assert (episodes.returns > 400).all()  # at the goal within 400 steps and stays there
    with pytest.raises(BenchError, match="reward_type"):
        registry.make("PointMaze-Large-v0", reward_type="shaped")


@pytest.mark.parametrize("env_id", IDS)
def test_the_expert_as_policy_code_plays_like_the_expert_in_the_sandbox(env_id):
    from promptpo_bench.sandbox import SandboxedPolicy

    kwargs = {"horizon": 400, "continuing_task": True}
    env, spec, seeds = registry.make(env_id, **kwargs), registry.get(env_id), [3, 4]
    trusted = run_episodes(env_id, spec.expert(env.unwrapped), seeds, kwargs)
    with SandboxedPolicy(spec.expert_code(env.unwrapped), f"{spec.description}:Observation", env.action_space) as p:
        sandboxed = run_episodes(env_id, p, seeds, kwargs)
    np.testing.assert_allclose(sandboxed.returns, trusted.returns)
    assert sandboxed.lengths.tolist() == trusted.lengths.tolist() == [400, 400] and trusted.returns.min() > 0


@pytest.mark.slow
@pytest.mark.parametrize("continuing", [False, True])
@pytest.mark.parametrize("env_id", IDS)
def test_stored_reference_scores_are_what_they_say(env_id, continuing):
    """Re-measures exactly what benchmarks/reference_scores.py measured (100 episodes, seeds 0..99)."""
    kwargs = {"continuing_task": continuing}
    env = registry.make(env_id, **kwargs)
    reference = registry.get(env_id).references(env.unwrapped)
    seeds = episode_seeds(0, 100)
    assert run_episodes(env_id, RandomPolicy(env.action_space, 0), seeds, kwargs).mean_return == pytest.approx(
        reference.random, abs=0.01)
    assert run_episodes(env_id, registry.get(env_id).expert(env.unwrapped), seeds, kwargs).mean_return == \
        pytest.approx(reference.optimal, abs=0.01)
