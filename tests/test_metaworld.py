"""Meta-World MT1 tasks: the description's fields, reward and success against the simulator; task sampling per seed."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("metaworld")

from promptpo_bench import registry  # noqa: E402
from promptpo_bench.descriptions import context  # noqa: E402
from promptpo_bench.descriptions import metaworld as description  # noqa: E402
from promptpo_bench.errors import BenchError  # noqa: E402
from promptpo_bench.rollout import RandomPolicy, episode_seeds, run_episodes  # noqa: E402
from promptpo_bench.tasks.metaworld.env import NUM_TASKS, mt1_tasks  # noqa: E402

IDS = ["MetaWorld-ButtonPress-v0", "MetaWorld-PickPlace-v0", "MetaWorld-DoorOpen-v0", "MetaWorld-DrawerOpen-v0"]


def hidden(sim) -> dict:
    """The simulator quantities each task's reward takes besides the observation, copied from the simulator."""
    values = {
        "button-press-v3": lambda: dict(tcp_center=sim.tcp_center, init_tcp=sim.init_tcp,
                                        obj_to_target_init=sim._obj_to_target_init),
        "door-open-v3": lambda: dict(door_angle=float(sim.data.joint("doorjoint").qpos.item())),
        "drawer-open-v3": lambda: dict(init_tcp=sim.init_tcp),
        "pick-place-v3": lambda: dict(tcp_center=sim.tcp_center, init_tcp=sim.init_tcp, obj_init_pos=sim.obj_init_pos,
                                      left_pad=sim.get_body_com("leftpad"), right_pad=sim.get_body_com("rightpad")),
    }[sim_name(sim)]()
    return {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}  # some are live views


def sim_name(sim) -> str:
    return {"SawyerButtonPressEnvV3": "button-press-v3", "SawyerDoorEnvV3": "door-open-v3",
            "SawyerDrawerOpenEnvV3": "drawer-open-v3", "SawyerPickPlaceEnvV3": "pick-place-v3"}[type(sim).__name__]


def load_description(env) -> dict:
    """The task's variant of the description, executed as the LLM reads it (placeholders filled)."""
    namespace: dict = {}
    exec(compile(context(description, env.unwrapped), "<context>", "exec"), namespace)
    return namespace


def transitions(env_id: str, seed: int, steps: int, noise: float):
    """(obs, action, reward, info, hidden) of the expert's actions plus Gaussian noise, from reset(seed)."""
    env = registry.make(env_id)
    sim = env.unwrapped.sim
    expert = registry.get(env_id).expert(env.unwrapped)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [(obs, None, None, None, hidden(sim))]
    for t in range(steps):
        action = np.clip(expert.act(np.zeros(1), obs[None], np.array([t]))[0] + rng.normal(0, noise, 4), -1, 1)
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs, action, reward, info, hidden(sim)))
    return env, out


@pytest.mark.parametrize("env_id", IDS)
def test_fields_parse_from_real_observations(env_id):
    env, steps = transitions(env_id, seed=3, steps=60, noise=0.3)
    sim = env.unwrapped.sim
    Observation = description.Observation
    assert env.observation_space.shape == (39,) and env.action_space.shape == (4,)
    first = Observation.from_array(steps[0][0])
    np.testing.assert_array_equal(first.prev_hand_pos, first.hand_pos)  # at reset the previous frame is the current one
    previous = first
    for obs, *_ in steps[1:]:
        o = Observation.from_array(obs)
        np.testing.assert_array_equal(o.prev_hand_pos, previous.hand_pos)
        np.testing.assert_array_equal(o.prev_obj1_pos, previous.obj1_pos)
        np.testing.assert_array_equal(o.prev_obj1_quat, previous.obj1_quat)
        assert o.prev_gripper_distance == previous.gripper_distance
        previous = o
    # the last observation against the simulator's own state
    np.testing.assert_allclose(o.hand_pos, sim.get_endeff_pos(), atol=1e-12)
    gap = np.linalg.norm(sim.data.body("rightclaw").xpos - sim.data.body("leftclaw").xpos)
    assert o.gripper_distance == pytest.approx(np.clip(gap / 0.1, 0, 1), abs=1e-12)
    np.testing.assert_allclose(o.obj1_pos, sim._get_pos_objects(), atol=1e-12)
    np.testing.assert_allclose(o.obj1_quat, sim._get_quat_objects(), atol=1e-12)
    np.testing.assert_array_equal(o.obj2_pos, np.zeros(3))
    np.testing.assert_array_equal(o.obj2_quat, np.zeros(4))
    np.testing.assert_allclose(o.goal_pos, sim._target_pos, atol=1e-12)
    assert np.linalg.norm(o.obj1_quat) == pytest.approx(1.0)


@pytest.mark.parametrize("env_id", IDS)
def test_reward_and_success_reproduce_the_simulator(env_id):
    """Every step's reward to 1e-6 (given the hidden inputs the description names) and success exactly."""
    env, steps = transitions(env_id, seed=0, steps=250, noise=0.1)
    _, random_steps = transitions(env_id, seed=1, steps=60, noise=2.0)  # mostly saturated random actions
    code = load_description(env)
    Observation, reward, success = code["Observation"], code["reward"], code["success"]
    successes = 0
    for obs, action, env_reward, info, inputs in steps[1:] + random_steps[1:]:
        o = Observation.from_array(obs)
        assert reward(o, action, **inputs) == pytest.approx(env_reward, abs=1e-6)
        assert success(o) == bool(info["success"])
        successes += bool(info["success"])
    assert successes > 0  # the success branch (reward 10 on door-open and pick-place) was exercised
    if env_id == "MetaWorld-PickPlace-v0":  # the "initial" pad positions are live views of the current ones
        sim = env.unwrapped.sim
        assert np.shares_memory(sim.init_left_pad, sim.data.xpos) and np.shares_memory(sim.init_right_pad, sim.data.xpos)


def test_reset_seed_decides_the_task():
    """Episode seed s plays MT1 task s % 50, on any env instance, whatever ran before."""
    a, b = registry.make(IDS[1]), registry.make(IDS[1])
    tasks = a.unwrapped.tasks
    assert len(tasks) == NUM_TASKS
    for seed in (0, 7, 1_000_000_003):
        obs, info = a.reset(seed=seed)
        assert info["task_index"] == seed % NUM_TASKS
        rand_vec = pickle.loads(tasks[seed % NUM_TASKS].data)["rand_vec"]
        np.testing.assert_allclose(obs[36:39], rand_vec[3:], atol=1e-12)  # pick-place: goal = rand_vec[3:]
        b.reset(seed=seed + 1)
        b.step(b.action_space.sample())
        np.testing.assert_array_equal(b.reset(seed=seed + NUM_TASKS)[0], obs)
    assert a.reset()[1]["task_index"] == (1_000_000_003 + 1) % NUM_TASKS  # no seed: the next task
    # whole episodes are a function of the reset seed, also on an env that ran other episodes before
    actions = np.random.default_rng(0).uniform(-1, 1, (40, 4))
    runs = []
    for env in (a, registry.make(IDS[1])):
        env.reset(seed=9)
        runs.append([np.append(*env.step(action)[:2]) for action in actions])  # observation and reward
    np.testing.assert_array_equal(runs[0], runs[1])
    # MT1's task draw itself is a fixed function of task_set_seed
    fresh = mt1_tasks.__wrapped__("pick-place-v3", 0)
    assert [t.data for t in fresh] == [t.data for t in tasks]
    other = registry.make(IDS[1], task_set_seed=1).unwrapped.tasks
    assert [t.data for t in other] != [t.data for t in tasks]


def test_expert_succeeds_and_descriptions_name_the_task():
    for env_id in IDS:
        episodes = run_episodes(env_id, registry.get(env_id).expert(registry.make(env_id).unwrapped), [0, 1],
                                {"horizon": 200})
        assert episodes.successes.all(), env_id
        assert episodes.lengths.tolist() == [200, 200]  # the env truncates itself at `horizon`
        text = registry.describe(env_id)
        assert text.count("def reward(") == 1 and text.count("def success(") == 1
        assert "it ends after 500 steps" in text and "{" not in text.replace("{**", "")
        assert "it ends after 200 steps" in registry.describe(env_id, horizon=200)
        assert "it lasts exactly 200 steps" in registry.describe(env_id, "suite", horizon=200)


# what only the suite variant tells, by part: the reference's contexts (env_contexts/*_v3_*.txt of
# github.com/Stephanehk/PromptPO) give the 39 numbers by block, the action's channels and the reward and success as
# code, but no axes, gripper scale, object offsets, quaternion order, step size, hand box, dt or success rule
SUITE_ONLY = ["x to the robot's right", "divided by 0.1 m", "always zeros", "0.045 m", "action * 0.01 m",
              "+1 closes the fingers", "inside the box", "One step lasts", "50 fixed variants",
              "success does not end it",
              "at any step", "physics ever goes unstable", "quaternion (w, x, y, z)", "quaternion (x, y, z, w)"]


@pytest.mark.parametrize("env_id", IDS)
def test_paper_variant_is_the_default_and_tells_only_the_references_information(env_id):
    env = registry.make(env_id)
    assert registry.default_variant(env_id) == "paper" and list(description.VARIANTS) == ["paper", "suite"]
    paper, suite = registry.describe(env_id), registry.describe(env_id, "suite")
    for text in (paper, suite):  # both: the blocks by name, the action's channels, reward and success as code
        assert "hand_pos" in text and "obj1_pos" in text and "goal_pos" in text and "action[3]" in text
        assert "def reward(" in text and "def success(" in text
    told = [words for words in SUITE_ONLY if words in suite]
    assert len(told) >= 11, told  # each task's suite context tells most of them (quaternion orders differ)
    assert [words for words in SUITE_ONLY if words in paper] == []
    assert load_description(env)["Observation"].from_array(env.reset(seed=0)[0]).obj1_pos.shape == (3,)


def test_bad_kwargs_are_one_line_errors():
    with pytest.raises(BenchError, match="horizon"):
        registry.make(IDS[0], horizon=501)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", IDS)
def test_stored_reference_scores_are_what_they_say(env_id):
    """Re-measures exactly what benchmarks/reference_scores.py measured (50 episodes, seeds 0..49)."""
    env = registry.make(env_id)
    reference = registry.get(env_id).references(env.unwrapped)
    seeds = episode_seeds(0, NUM_TASKS)
    random = run_episodes(env_id, RandomPolicy(env.action_space, 0), seeds)
    expert = run_episodes(env_id, registry.get(env_id).expert(env.unwrapped), seeds)
    assert random.mean_return == pytest.approx(reference.random, abs=0.01)
    assert expert.mean_return == pytest.approx(reference.optimal, abs=0.01)
