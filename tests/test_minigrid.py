"""MiniGrid tasks: the description's tables, fields and reward against MiniGrid's own grid and reward; seeding; the
expert, in process, in the sandbox and as one Policy() serving a rollout's episodes in order."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("minigrid")

from minigrid.core import constants  # noqa: E402
from minigrid.core.actions import Actions  # noqa: E402

import promptpo_bench  # noqa: E402
from promptpo_bench import registry  # noqa: E402
from promptpo_bench.descriptions import context  # noqa: E402
from promptpo_bench.descriptions import minigrid as description  # noqa: E402
from promptpo_bench.errors import BenchError  # noqa: E402
from promptpo_bench.rollout import RandomPolicy, episode_seeds, run_episodes  # noqa: E402
from promptpo_bench.tasks.minigrid import TASKS  # noqa: E402
from promptpo_bench.tasks.minigrid.expert import GridPlanner, expert_policy  # noqa: E402

IDS = list(TASKS)


def load_description(env) -> dict:
    """The description as the LLM reads it (variants chosen, placeholders filled), executed."""
    namespace: dict = {}
    exec(compile(context(description, env.unwrapped), "<context>", "exec"), namespace)
    return namespace


def cell_code(cell) -> tuple[int, int, int]:
    """MiniGrid's (object, colour, state) of a grid cell (None is an empty cell)."""
    return (constants.OBJECT_TO_IDX["empty"], 0, 0) if cell is None else tuple(int(v) for v in cell.encode())


def transitions(env_id: str, seed: int, steps: int, expert_share: float, **kwargs):
    """(obs, action, reward, terminated, next_obs, info, sim) of expert and random episodes (a share of
    `expert_share` expert ones), episode k from reset seed seed + k; `sim` (MiniGrid's env) holds the state after
    each step."""
    env = promptpo_bench.make(env_id, **kwargs)
    rng = np.random.default_rng(seed)
    expert = expert_policy(env.unwrapped)
    obs, _ = env.reset(seed=seed)
    episode, expert_episode = 0, rng.random() < expert_share
    for _ in range(steps):
        if expert_episode:
            action = int(expert.act(np.array([episode]), obs[None], np.zeros(1))[0])
        else:
            action = int(rng.integers(7))
        next_obs, reward, terminated, truncated, info = env.step(action)
        yield obs, action, reward, terminated, next_obs, info, env.unwrapped.sim
        if terminated or truncated:
            episode, expert_episode = episode + 1, rng.random() < expert_share
            next_obs, _ = env.reset(seed=seed + episode)
        obs = next_obs
    env.close()


def test_tables_and_actions_are_minigrids_own():
    assert description.OBJECT_TO_IDX == constants.OBJECT_TO_IDX
    assert description.COLOR_TO_IDX == constants.COLOR_TO_IDX
    assert description.STATE_TO_IDX == constants.STATE_TO_IDX
    assert [tuple(v) for v in constants.DIR_TO_VEC] == description.DIR_TO_VEC
    names = ["LEFT", "RIGHT", "FORWARD", "PICKUP", "DROP", "TOGGLE", "DONE"]
    assert [vars(description)[n] for n in names] == [int(getattr(Actions, n.lower())) for n in names]
    planner = GridPlanner  # the expert's own copy (it runs in the sandbox without the description)
    assert [planner.UNSEEN, planner.AGENT, planner.LOCKED, planner.TOGGLE] == [0, 10, 2, 5]
    assert planner.DIRS == tuple(description.DIR_TO_VEC)


@pytest.mark.parametrize("env_id", IDS)
def test_every_field_is_minigrids_grid(env_id):
    """Each seen cell of the view is the grid cell the description's formula names; the agent's cell is what it
    carries; the direction and the mission are the env's."""
    seen = 0
    for _, _, _, _, next_obs, _, sim in transitions(env_id, 3, 300, expert_share=0.7):
        o = description.Observation.from_array(next_obs)
        assert o.objects.shape == (7, 7) and o.direction == sim.agent_dir
        (dx, dy), (ax, ay) = description.DIR_TO_VEC[o.direction], sim.agent_pos
        for vx in range(7):
            for vy in range(7):
                if (vx, vy) == description.AGENT_IN_VIEW:
                    assert (o.objects[vx, vy], o.colors[vx, vy], o.states[vx, vy]) == cell_code(sim.carrying)
                    continue
                x, y = ax + dx * (6 - vy) - dy * (vx - 3), ay + dy * (6 - vy) + dx * (vx - 3)
                assert sim.relative_coords(x, y) == (vx, vy)
                if o.objects[vx, vy] == description.OBJECT_TO_IDX["unseen"]:
                    continue
                seen += 1
                inside = 0 <= x < sim.width and 0 <= y < sim.height
                expected = cell_code(sim.grid.get(x, y)) if inside else cell_code(sim.grid.get(0, 0))  # outer wall
                assert (o.objects[vx, vy], o.colors[vx, vy], o.states[vx, vy]) == expected
        front = sim.grid.get(*sim.front_pos)
        assert description.front(o) == cell_code(front)
        if TASKS[env_id].mission:
            assert (o.mission_color, o.mission_object) == (constants.COLOR_TO_IDX[sim.obj.color],
                                                           constants.OBJECT_TO_IDX[sim.obj.type])
            assert sim.mission == f"pick up the {sim.obj.color} {sim.obj.type}"
        else:
            assert o.mission_color is None and o.mission_object is None
    assert seen > 300 * 10


@pytest.mark.parametrize("env_id", ["MiniGrid-DoorKey-8x8-v0", "MiniGrid-KeyCorridorS3R3-v0", "MiniGrid-Unlock-v0"])
def test_fully_observable_fields_are_the_whole_grid(env_id):
    env = promptpo_bench.make(env_id, fully_observable=True)
    code = load_description(env)
    assert "whole" in promptpo_bench.describe(env_id, fully_observable=True)
    for _, _, _, _, next_obs, _, sim in transitions(env_id, 4, 150, expert_share=0.7, fully_observable=True):
        o = code["Observation"].from_array(next_obs)
        assert o.objects.shape == (sim.width, sim.height) and o.direction == sim.agent_dir
        assert code["agent_position"](o) == tuple(int(v) for v in sim.agent_pos)
        for x in range(sim.width):
            for y in range(sim.height):
                if (x, y) != tuple(sim.agent_pos):
                    assert (o.objects[x, y], o.colors[x, y], o.states[x, y]) == cell_code(sim.grid.get(x, y))
        assert code["front"](o) == cell_code(sim.grid.get(*sim.front_pos))


@pytest.mark.parametrize("fully_observable", [False, True])
@pytest.mark.parametrize("env_id", IDS)
def test_reward_function_reproduces_the_env(env_id, fully_observable):
    """The description's reward (with the step count a policy can keep) equals MiniGrid's reward on every step."""
    env = promptpo_bench.make(env_id, fully_observable=fully_observable)
    code, max_steps = load_description(env), env.unwrapped.max_steps
    parse = code["Observation"].from_array
    successes = steps = 0
    for obs, action, reward, terminated, next_obs, info, sim in transitions(
            env_id, 11, 1500, expert_share=0.8, fully_observable=fully_observable):
        o, o2 = parse(obs), parse(next_obs)
        assert code["reward"](o, action, o2, sim.step_count, max_steps) == pytest.approx(reward, abs=1e-12)
        assert code["success"](o, action, o2) == info["success"]
        successes += info["success"]
        steps += 1
    assert steps == 1500 and successes >= 5  # both branches of the reward ran


def test_horizon_and_kwargs():
    for env_id, task in TASKS.items():
        env = promptpo_bench.make(env_id)
        assert env.unwrapped.max_steps == task.horizon == registry.get(env_id).horizon
        assert f"max_steps = {task.horizon} steps" in promptpo_bench.describe(env_id)
    env = promptpo_bench.make("MiniGrid-Empty-8x8-v0", max_steps=5)
    env.reset(seed=0)
    flags = [env.step(description.LEFT)[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]
    with pytest.raises(BenchError, match="fully_observable"):
        promptpo_bench.make("MiniGrid-Empty-8x8-v0", fully_observable="yes")
    ref = promptpo_bench.reference_scores("MiniGrid-Empty-8x8-v0", max_steps=5)
    assert np.isnan(ref.random) and np.isnan(ref.optimal)


def test_reset_seed_decides_the_layout():
    env = promptpo_bench.make("MiniGrid-FourRooms-v0")
    layouts = []
    for seed in (0, 1, 0):
        env.reset(seed=seed)
        for _ in range(5):
            env.step(description.FORWARD)
        env.reset(seed=seed)
        sim = env.unwrapped.sim
        layouts.append((sim.grid.encode().tobytes(), tuple(sim.agent_pos), sim.agent_dir))
    assert layouts[0] == layouts[2] != layouts[1]


@pytest.mark.parametrize("fully_observable", [False, True])
def test_pickled_env_continues_identically(fully_observable):
    env = promptpo_bench.make("MiniGrid-KeyCorridorS3R3-v0", fully_observable=fully_observable).unwrapped
    env.reset(seed=2)
    actions = np.random.default_rng(0).integers(0, 7, 60).tolist()
    for action in actions[:20]:
        env.step(action)
    twin = pickle.loads(pickle.dumps(env))
    for action in actions[20:]:
        first, second = env.step(action), twin.step(action)
        np.testing.assert_array_equal(first[0], second[0])
        assert first[1:] == second[1:]


@pytest.mark.parametrize("env_id", IDS)
def test_expert_succeeds_and_random_rarely_does(env_id):
    env = promptpo_bench.make(env_id)
    seeds = episode_seeds(100, 20)
    expert = run_episodes(env_id, expert_policy(env.unwrapped), seeds)
    random = run_episodes(env_id, RandomPolicy(env.action_space, 0), seeds)
    assert expert.success_rate >= 0.95 and expert.mean_return > random.mean_return + 0.3
    full = run_episodes(env_id, expert_policy(promptpo_bench.make(env_id, fully_observable=True).unwrapped), seeds,
                        {"fully_observable": True})
    assert full.success_rate >= 0.95


@pytest.mark.parametrize("env_id", IDS)
def test_one_expert_policy_serves_a_rollouts_episodes_in_order(env_id):
    """The policy.py expert finds each episode's start itself: one Policy() over 8 episodes in a row scores what
    a fresh Policy() per episode does."""
    env = promptpo_bench.make(env_id)
    namespace: dict = {"__name__": "expert_policy"}
    exec(compile(registry.get(env_id).expert_code(env.unwrapped), "policy.py", "exec"), namespace)
    policy, per_episode = namespace["Policy"](), []
    shared = []
    for seed in range(8):
        for target, make_policy in ((shared, lambda: policy), (per_episode, namespace["Policy"])):
            acting, obs, total, done = make_policy(), env.reset(seed=seed)[0], 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(acting.act(description.Observation.from_array(obs)))
                total, done = total + reward, terminated or truncated
            target.append(total)
    assert shared == per_episode and min(shared) > 0


@pytest.mark.parametrize("env_id", ["MiniGrid-DoorKey-8x8-v0", "MiniGrid-KeyCorridorS3R3-v0"])
def test_the_expert_as_policy_code_plays_like_the_expert_in_the_sandbox(env_id):
    from promptpo_bench.sandbox import SandboxedPolicy

    env, spec, seeds = promptpo_bench.make(env_id), registry.get(env_id), episode_seeds(0, 6)
    trusted = run_episodes(env_id, spec.expert(env.unwrapped), seeds)
    with SandboxedPolicy(spec.expert_code(env.unwrapped), f"{spec.description}:Observation", env.action_space) as p:
        sandboxed = run_episodes(env_id, p, seeds)
    np.testing.assert_array_equal(sandboxed.returns, trusted.returns)
    assert trusted.successes.all()


@pytest.mark.slow
@pytest.mark.parametrize("env_id", IDS)
def test_stored_reference_scores_are_what_they_say(env_id):
    """Re-measures what benchmarks/reference_scores.py measured (100 episodes, seeds 0..99)."""
    env = promptpo_bench.make(env_id)
    reference = registry.get(env_id).references(env.unwrapped)
    seeds = episode_seeds(0, 100)
    assert run_episodes(env_id, RandomPolicy(env.action_space, 0), seeds).mean_return == pytest.approx(
        reference.random, abs=5e-5)
    assert run_episodes(env_id, expert_policy(env.unwrapped), seeds).mean_return == pytest.approx(
        reference.optimal, abs=5e-5)


def test_doorkey_expert_reaches_the_goal_in_every_one_of_100_episodes():
    """What `promptpo-bench rollout MiniGrid-DoorKey-8x8-v0 --policy expert --episodes 100` plays (seeds 0..99)."""
    env_id = "MiniGrid-DoorKey-8x8-v0"
    episodes = run_episodes(env_id, registry.get(env_id).expert(promptpo_bench.make(env_id).unwrapped),
                            episode_seeds(0, 100))
    assert episodes.successes.all() and (episodes.returns > 0).all()
