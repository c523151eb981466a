"""The MuJoCo descriptions are true: fields are MuJoCo's own qpos/qvel, reward code reproduces the reward.

Each check runs seeded random actions through Gymnasium's v5 env and compares, step by step, what the
description says with what the simulator holds in `env.unwrapped.data`.
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

pytest.importorskip("mujoco")

import promptpo_bench  # noqa: E402
from gymnasium.envs.mujoco.humanoid_v5 import mass_center  # noqa: E402
from promptpo_bench.descriptions import mujoco as description  # noqa: E402
from promptpo_bench.rollout import random_return  # noqa: E402
from promptpo_bench.tasks.mujoco import RANDOM_EPISODES, RANDOM_SEED, TASKS  # noqa: E402

TASK_IDS = list(TASKS)
ROOT_FREE = {"torso_z": ("qpos", 2), "torso_qw": ("qpos", 3), "torso_qx": ("qpos", 4), "torso_qy": ("qpos", 5),
             "torso_qz": ("qpos", 6), "torso_vx": ("qvel", 0), "torso_vy": ("qvel", 1), "torso_vz": ("qvel", 2),
             "torso_wx": ("qvel", 3), "torso_wy": ("qvel", 4), "torso_wz": ("qvel", 5)}


def task_name(env_id: str) -> str:
    return env_id.removesuffix("-v5")


def transitions(env_id: str, steps: int, seed: int):
    """(obs, action, reward, terminated, next_obs, before, after) of random play with resets; `before`/`after`
    are copies of what the simulator holds (qpos, qvel, the x the forward reward uses, ...) around the step."""
    env = promptpo_bench.make(env_id)
    sim = env.unwrapped
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    episode = 0
    for _ in range(steps):
        action = env.action_space.sample()
        before = snapshot(sim)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        yield obs, action, reward, terminated, next_obs, before, snapshot(sim)
        if terminated or truncated:
            episode += 1
            next_obs, _ = env.reset(seed=seed + episode)
        obs = next_obs
    env.close()


def snapshot(sim) -> dict:
    data = sim.data
    return {"qpos": data.qpos.copy(), "qvel": data.qvel.copy(), "cfrc_ext": data.cfrc_ext.copy(),
            "cinert": data.cinert.copy(), "cvel": data.cvel.copy(), "qfrc_actuator": data.qfrc_actuator.copy(),
            "qfrc_constraint": data.qfrc_constraint.copy(),
            "torso_x": float(data.body(1).xpos[0]),  # Ant's main body, as MuJoCo's kinematics report it
            "com_x": float(mass_center(sim.model, data)[0]),  # Humanoid's centre of mass
            "tip": data.site_xpos[0].copy() if sim.model.nsite else None,  # InvertedDoublePendulum's pole tip
            "fingertip_minus_target": sim.get_body_com("fingertip") - sim.get_body_com("target")
            if hasattr(sim, "goal") else None}  # Reacher


def expected_fields(env_id: str, sim, state: dict) -> dict:
    """Every observation field as read from MuJoCo's state, by joint name (independent of the description)."""
    model, name = sim.model, task_name(env_id)
    qpos, qvel = state["qpos"], state["qvel"]
    if name == "Reacher":
        tip = state["fingertip_minus_target"]
        return {"fingertip_minus_target_x": tip[0], "fingertip_minus_target_y": tip[1],"cos_joint0": math.cos(qpos[0]), "cos_joint1": math.cos(qpos[1]), "sin_joint0": math.sin(qpos[0]),
                "sin_joint1": math.sin(qpos[1]), "target_x": qpos[2], "target_y": qpos[3],
                "joint0_vel": qvel[0], "joint1_vel": qvel[1]}
    if name == "InvertedDoublePendulum":
        clip = lambda v: float(np.clip(v, -10, 10))  # noqa: E731
        return {"cart_x": qpos[0], "sin_hinge": math.sin(qpos[1]), "sin_hinge2": math.sin(qpos[2]),
                "cos_hinge": math.cos(qpos[1]), "cos_hinge2": math.cos(qpos[2]), "cart_vel": clip(qvel[0]),
                "hinge_vel": clip(qvel[1]), "hinge2_vel": clip(qvel[2]),
                "cart_constraint_force": clip(state["qfrc_constraint"][0])}
    velocity = (lambda v: float(np.clip(v, -10, 10))) if name == "Hopper" else float
    out = {}
    for j in range(model.njnt):
        joint = model.joint(j).name
        if model.jnt_type[j] == 0:  # the free root joint of Ant and Humanoid
            out.update({f: float(state[kind][i]) if kind == "qpos" else velocity(state[kind][i])
                        for f, (kind, i) in ROOT_FREE.items()})
            continue
        out[joint] = float(qpos[model.jnt_qposadr[j]])
        out[f"{joint}_vel"] = velocity(qvel[model.jnt_dofadr[j]])
    excluded = {"HalfCheetah": ["rootx"], "Hopper": ["rootx"], "Swimmer": ["slider1", "slider2"]}.get(name, [])
    for joint in excluded:  # x (and y) position: not in the observation
        del out[joint]
    if name == "Ant":
        out["cfrc_ext"] = np.clip(state["cfrc_ext"][1:], -1, 1)
    if name == "Humanoid":
        out.update(cinert=state["cinert"][1:], cvel=state["cvel"][1:], qfrc_actuator=state["qfrc_actuator"][6:],
                   cfrc_ext=state["cfrc_ext"][1:])
    return out


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_every_field_is_the_simulators_own_value(env_id):
    env = promptpo_bench.make(env_id)
    layout = vars(description)[f"{task_name(env_id)}Observation"]
    assert layout.size() == env.observation_space.shape[0]  # the fields' sizes add up to the observation
    sim = env.unwrapped
    for obs, _, _, _, next_obs, _, after in transitions(env_id, 300, seed=7):
        parsed = description.Observation.from_array(next_obs)
        assert type(parsed) is layout
        expected = expected_fields(env_id, sim, after)
        names = [f.name for f in fields(parsed)]
        assert sorted(names) == sorted(expected), "every field, and only these, is named after MuJoCo's joints"
        for name in names:
            value = getattr(parsed, name)
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, expected[name], err_msg=name)
            else:
                assert isinstance(value, float) and value == pytest.approx(expected[name], abs=1e-12), name


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_actions_name_the_actuators(env_id):
    env = promptpo_bench.make(env_id)
    model = env.unwrapped.model
    table = vars(description)[f"{_snake(task_name(env_id)).upper()}_ACTIONS"]
    actual = [(model.joint(model.actuator_trnid[a, 0]).name, float(model.actuator_gear[a, 0])) for a in range(model.nu)]
    assert [(joint, float(gear)) for joint, gear in table] == actual
    limit = 0.4 if env_id == "Humanoid-v5" else 1.0  # what each block's "Actions:" line says
    np.testing.assert_array_equal(env.action_space.low, np.float32(-limit))
    np.testing.assert_array_equal(env.action_space.high, np.float32(limit))


def _snake(name: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).lower()


def reward_from_description(env_id: str, action, next_obs, before: dict, after: dict) -> float:
    """The description's reward function, given what it asks for; x positions come from the simulator."""
    name = task_name(env_id)
    o = description.Observation.from_array(next_obs)
    f = vars(description)[f"{_snake(name)}_reward"]
    x_key = {"Ant": "torso_x", "Humanoid": "com_x"}.get(name)
    x_before, x_after = (before[x_key], after[x_key]) if x_key else (before["qpos"][0], after["qpos"][0])
    if name in ("HalfCheetah", "Swimmer"):
        return f(action, x_before, x_after)
    if name in ("Hopper", "Ant", "Humanoid"):
        return f(action, x_before, x_after, o)
    if name == "Reacher":
        return f(action, o)
    tip_x, _, tip_y = after["tip"]  # the tip as MuJoCo's kinematics report it
    return f(tip_x, tip_y, after["qvel"][1], after["qvel"][2])


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_reward_code_reproduces_the_environment(env_id):
    name = task_name(env_id)
    healthy = vars(description).get(f"{_snake(name)}_is_healthy")
    terminations = 0
    for _, action, reward, terminated, next_obs, before, after in transitions(env_id, 600, seed=11):
        assert reward_from_description(env_id, action, next_obs, before, after) == pytest.approx(reward, abs=1e-6)
        if healthy is not None:
            assert terminated == (not healthy(description.Observation.from_array(next_obs)))
        if name == "InvertedDoublePendulum":
            assert terminated == (after["tip"][2] <= 1.0)
        terminations += terminated
    if name in ("Hopper", "Humanoid", "InvertedDoublePendulum"):
        assert terminations > 3  # random play falls: the unhealthy branch is exercised too


def test_inverted_double_pendulum_from_the_observation_alone():
    """The tip computed from the observation differs from MuJoCo's by one physics substep (its kinematics are
    those before the last integration), so the reward from the observation alone is close, not exact."""
    errors = []
    for _, action, reward, _, next_obs, _, after in transitions("InvertedDoublePendulum-v5", 600, seed=3):
        o = description.Observation.from_array(next_obs)
        tip_x, tip_y = description.inverted_double_pendulum_tip(o)
        assert (tip_x, tip_y) == pytest.approx((after["tip"][0], after["tip"][2]), abs=0.02)
        if abs(after["tip"][2] - 1.0) > 0.02 and max(abs(after["qvel"][1:])) < 10:
            errors.append(abs(description.inverted_double_pendulum_reward(tip_x, tip_y, o.hinge_vel, o.hinge2_vel)
                              - reward))
    assert len(errors) > 100 and max(errors) < 0.05


def test_forward_reward_is_not_a_function_of_the_observation():
    """Why the locomotion rewards take x_before/x_after: the same observation occurs at different x."""
    env = promptpo_bench.make("HalfCheetah-v5")
    obs_a, _ = env.reset(seed=0)
    sim = env.unwrapped
    qpos, qvel = sim.data.qpos.copy(), sim.data.qvel.copy()
    qpos[0] += 5.0
    sim.set_state(qpos, qvel)
    np.testing.assert_array_equal(sim._get_obs(), obs_a)


def test_description_refuses_a_layout_it_does_not_cover():
    from promptpo_bench.errors import BenchError

    with pytest.raises(BenchError, match="default observation"):
        promptpo_bench.describe("Ant-v5", include_cfrc_ext_in_observation=False)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_context_shows_only_the_tasks_own_part(env_id):
    text = promptpo_bench.describe(env_id)
    own = f"class {task_name(env_id)}Observation(Observation)"
    assert own in text and text.count("Observation(Observation)") == 1
    assert f"after {promptpo_bench.get(env_id).horizon} steps" in text
    namespace: dict = {}
    exec(compile(text, "context.py", "exec"), namespace)  # the context is itself runnable Python
    obs, _ = promptpo_bench.make(env_id).reset(seed=0)
    assert type(namespace["Observation"].from_array(obs)).__name__ == f"{task_name(env_id)}Observation"


@pytest.mark.parametrize("env_id", ["Reacher-v5", "InvertedDoublePendulum-v5"])
def test_stored_random_return_is_remeasured(env_id):
    """The two cheap tasks re-measure the stored constant exactly (same protocol); the rest: slow test below."""
    assert random_return(env_id, RANDOM_EPISODES, RANDOM_SEED) == pytest.approx(TASKS[env_id].random, abs=0.005)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", TASK_IDS)
def test_stored_random_return_is_remeasured_exactly(env_id):
    assert random_return(env_id, RANDOM_EPISODES, RANDOM_SEED) == pytest.approx(TASKS[env_id].random, abs=0.005)


# ---- the `paper` variant (the default): the observation plus what the paper's observation object reads -------------
# the attributes of the reference's MujocoXObservation beyond its obs_vector (github.com/Stephanehk/PromptPO,
# observations/), as our field names; `observation_structure` (constant block sizes) and Humanoid's copies of
# observation blocks (cinert_excl_world, ...) are left out: our fields already name them
PAPER_STATE = {"Ant": ["qpos", "qvel", "dt", "cfrc_ext_full", "main_body_xy"],
               "HalfCheetah": ["qpos", "qvel", "dt", "main_body_xy"],
               "Hopper": ["qpos", "qvel", "dt", "root_x_position"],
               "Humanoid": ["qpos", "qvel", "dt", "torso_xy", "mass_center_xy", "ctrl", "cfrc_ext_full"],
               "Swimmer": ["qpos", "qvel", "dt", "tip_xy"],
               "Reacher": ["qpos", "qvel", "dt", "fingertip_minus_target", "fingertip_com", "target_com"],
               "InvertedDoublePendulum": ["qpos", "qvel", "dt", "tip_site_pos"]}


def paper_state_of(sim) -> dict:
    """What the paper's observation object reads from the simulator, read here independently of the description."""
    data, com = sim.data, sim.get_body_com
    return {"qpos": data.qpos, "qvel": data.qvel, "dt": sim.dt, "cfrc_ext_full": data.cfrc_ext,
            "main_body_xy": com("torso")[:2] if sim.model.nq == 15 else np.array([data.qpos[0], 0.0]),
            "root_x_position": data.qpos[0], "tip_xy": data.qpos[:2], "torso_xy": data.qpos[:2],
            "mass_center_xy": mass_center(sim.model, data), "ctrl": data.ctrl,
            "fingertip_minus_target": com("fingertip") - com("target") if hasattr(sim, "goal") else None,
            "fingertip_com": com("fingertip") if hasattr(sim, "goal") else None,
            "target_com": com("target") if hasattr(sim, "goal") else None,
            "tip_site_pos": data.site_xpos[0] if sim.model.nsite else None}


def paper_transitions(env_id: str, steps: int, seed: int):
    """(obs, action, reward, terminated, next_obs, env) of random play in the env a code policy reading the default
    variant gets (`make_for_policy`), with resets."""
    env = promptpo_bench.registry.make_for_policy(env_id, promptpo_bench.registry.default_variant(env_id))
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    episode = 0
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        yield obs, action, reward, terminated, next_obs, env
        if terminated or truncated:
            episode += 1
            next_obs, _ = env.reset(seed=seed + episode)
        obs = next_obs
    env.close()


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_paper_variant_carries_the_values_the_simulator_holds(env_id):
    name = task_name(env_id)
    layout = vars(description)[f"{name}ObservationWithState"]
    for _, _, _, _, next_obs, env in paper_transitions(env_id, 200, seed=5):
        sim = env.unwrapped
        parsed = description.Observation.from_array(next_obs)
        assert type(parsed) is layout and len(next_obs) == layout.size()
        plain = vars(description)[f"{name}Observation"]
        np.testing.assert_array_equal(next_obs[:plain.size()], sim._get_obs())  # the env's own array comes first
        added = [f.name for f in fields(layout)][len(fields(plain)):]
        assert added == PAPER_STATE[name]
        truth = paper_state_of(sim)
        for field in added:
            expected = np.asarray(truth[field], dtype=np.float64)
            got = getattr(parsed, field)
            if expected.ndim == 0:
                assert isinstance(got, float) and got == float(expected), field
            else:
                np.testing.assert_array_equal(got, expected[:2] if field == "mass_center_xy" else expected, field)


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5", "Swimmer-v5", "Ant-v5", "Humanoid-v5"])
def test_paper_variant_gives_the_forward_reward_from_observations_alone(env_id):
    """The x its reward docstring points at (e.g. obs.qpos[0]) makes the reward code exact, from two observations."""
    name = task_name(env_id)
    text = promptpo_bench.describe(env_id)
    where = description._X_WHERE[name]
    assert f"in the observation as {where}" in text
    attribute, index = where.split(" ")[0].removeprefix("obs.").removesuffix("[0]"), 0
    f = vars(description)[f"{_snake(name)}_reward"]
    for obs, action, reward, _, next_obs, _ in paper_transitions(env_id, 300, seed=2):
        before, after = (description.Observation.from_array(o) for o in (obs, next_obs))
        x_before, x_after = getattr(before, attribute)[index], getattr(after, attribute)[index]
        args = (action, x_before, x_after) + ((after,) if name in ("Hopper", "Ant", "Humanoid") else ())
        assert f(*args) == pytest.approx(reward, abs=1e-6)


def test_paper_variant_gives_the_pendulum_reward_exactly():
    """The tip the simulator reports (tip_site_pos) makes the reward exact, where the suite's kinematics are close."""
    for _, _, reward, terminated, next_obs, _ in paper_transitions("InvertedDoublePendulum-v5", 400, seed=3):
        o = description.Observation.from_array(next_obs)
        tip_x, _, tip_y = o.tip_site_pos
        assert description.inverted_double_pendulum_reward(tip_x, tip_y, o.qvel[1], o.qvel[2]) == pytest.approx(reward)
        assert terminated == (tip_y <= 1.0)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_variants_say_what_each_observation_holds(env_id):
    """paper (default): the state class and where the forward x is; suite: the array only, x left out; PPO/SAC's
    env and a policy run without a variant keep the env's own observation."""
    name = task_name(env_id)
    assert promptpo_bench.registry.default_variant(env_id) == "paper"
    paper, suite = promptpo_bench.describe(env_id), promptpo_bench.describe(env_id, "suite")
    assert f"class {name}ObservationWithState({name}Observation)" in paper and "qpos: np.ndarray" in paper
    assert "WithState" not in suite and "qpos" not in suite.replace("qpos/qvel", "") and "dt: float" not in suite
    if name in description._X_WHERE:
        assert "left out of the observation" in suite and "left out of the observation" not in paper
    size = vars(description)[f"{name}Observation"].size()
    assert promptpo_bench.make(env_id).observation_space.shape == (size,)
    assert promptpo_bench.registry.make_for_policy(env_id, "suite").observation_space.shape == (size,)
    assert promptpo_bench.registry.make_for_policy(env_id, None).observation_space.shape == (size,)
    widened = promptpo_bench.registry.make_for_policy(env_id, "paper").observation_space.shape
    assert widened == (vars(description)[f"{name}ObservationWithState"].size(),)


def test_observation_sizes_tell_every_class_apart():
    """from_array finds the task's class by the array's size, so no two layouts may share one."""
    sizes = [cls.size() for cls in description._descendants(description.Observation)]
    assert len(sizes) == 14 and len(set(sizes)) == len(sizes)
