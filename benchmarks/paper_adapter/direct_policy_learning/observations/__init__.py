"""Observation objects shaped like the paper's, built from our tasks' flat observation arrays (our code).

The paper's policy files import their observation class from `direct_policy_learning.observations` and read
named attributes. Each class here carries exactly what the array holds, under the paper's attribute names. For
MuJoCo the array is the one our `paper` description variant reads: the env's observation, then what the paper's
observation object reads from the simulator (qpos, qvel, dt, the task's positions; `descriptions/mujoco.py`,
`simulator_state`), appended by the rollout. Anything else the paper read from the env itself (Meta-World's env
handle) is absent on purpose, so a policy that needs it fails with an AttributeError naming it.
"""

from __future__ import annotations

import math

import numpy as np


class NoiseWorldObservation:
    """agent_row, agent_col, goal_row, goal_col (floats), board (float64), the two flags as floats (0.0 if absent)."""

    @classmethod
    def from_array(cls, array: np.ndarray) -> "NoiseWorldObservation":
        values = np.asarray(array, dtype=np.float64).reshape(-1)
        n = math.isqrt(len(values) - 4)
        flags = n * n != len(values) - 4
        if flags:
            n = math.isqrt(len(values) - 6)
        obs = cls()
        obs.agent_row, obs.agent_col, obs.goal_row, obs.goal_col = (float(v) for v in values[:4])
        obs.board = values[4:4 + n * n].copy()
        obs.prereq_first_done, obs.prereq_second_done = (float(values[-2]), float(values[-1])) if flags else (0.0, 0.0)
        return obs


class PointMazeLargeV3Observation:
    """observation_vector (x, y, vx, vy), achieved_goal, desired_goal: our flat array's three parts."""

    @classmethod
    def from_array(cls, array: np.ndarray):
        values = np.asarray(array, dtype=np.float64)
        obs = cls()
        obs.observation_vector, obs.achieved_goal, obs.desired_goal = values[:4].copy(), values[4:6].copy(), \
            values[6:8].copy()
        return obs


class PointMazeLargeDiverseGV3Observation(PointMazeLargeV3Observation):
    pass


class _VectorObservation:
    """obs_vector: the environment's observation array (the Meta-World MT1 arrays are the paper's)."""

    @classmethod
    def from_array(cls, array: np.ndarray):
        obs = cls()
        obs.obs_vector = np.asarray(array, dtype=np.float64).copy()
        return obs


def _vector(name: str) -> type:
    return type(name, (_VectorObservation,), {"__module__": __name__})


class _MujocoObservation:
    """obs_vector (the env's OBS numbers), then qpos, qvel, dt and the task's EXTRA attributes, in the order of our
    `paper` variant's `...WithState` class (descriptions/mujoco.py); CONSTANTS are fixed per task."""

    OBS, NQ, NV, EXTRA, CONSTANTS = 0, 0, 0, (), {}

    @classmethod
    def from_array(cls, array: np.ndarray):
        values, obs = np.asarray(array, dtype=np.float64), cls()
        parts = [("obs_vector", (cls.OBS,)), ("qpos", (cls.NQ,)), ("qvel", (cls.NV,)), ("dt", ()), *cls.EXTRA]
        start = 0
        for name, shape in parts:
            count = math.prod(shape)
            chunk = values[start:start + count]
            setattr(obs, name, chunk.reshape(shape).copy() if shape else float(chunk[0]))
            start += count
        if start != len(values):
            raise ValueError(f"{cls.__name__} expects {start} numbers (the paper variant's observation), "
                             f"got {len(values)}")
        for name, value in cls.CONSTANTS.items():
            setattr(obs, name, dict(value) if isinstance(value, dict) else value)
        return obs

    def state_vector(self) -> np.ndarray:
        return np.concatenate([self.qpos, self.qvel])


def _mujoco(name: str, obs: int, nq: int, nv: int, extra: tuple = (), constants: dict | None = None) -> type:
    return type(name, (_MujocoObservation,), {"__module__": __name__, "OBS": obs, "NQ": nq, "NV": nv,
                                               "EXTRA": extra, "CONSTANTS": constants or {}})


# Humanoid has no policy in the paper's folder, so no class here.
MujocoAntObservation = _mujoco("MujocoAntObservation", 105, 15, 14, (("cfrc_ext", (14, 6)), ("main_body_xy", (2,))))
MujocoHalfCheetahObservation = _mujoco("MujocoHalfCheetahObservation", 17, 9, 9, (("main_body_xy", (2,)),))
MujocoHopperObservation = _mujoco("MujocoHopperObservation", 11, 6, 6, (("root_x_position", ()),),
                                  {"observation_structure": {"skipped_qpos": 1, "qpos": 5, "qvel": 6}})
MujocoSwimmerObservation = _mujoco("MujocoSwimmerObservation", 8, 5, 5, (("tip_xy", (2,)),),
                                   {"observation_structure": {"skipped_qpos": 2, "qpos": 3, "qvel": 5}})
MujocoReacherObservation = _mujoco("MujocoReacherObservation", 10, 4, 4, (
    ("fingertip_minus_target", (3,)), ("fingertip_com", (3,)), ("target_com", (3,))))
MujocoInvertedDoublePendulumObservation = _mujoco("MujocoInvertedDoublePendulumObservation", 9, 3, 3,
                                                  (("tip_site_pos", (3,)),))
MetaWorldButtonPressV3Observation = _vector("MetaWorldButtonPressV3Observation")
MetaWorldPickPlaceV3Observation = _vector("MetaWorldPickPlaceV3Observation")
MetaWorldDoorOpenV3Observation = _vector("MetaWorldDoorOpenV3Observation")
MetaWorldDrawerOpenV3Observation = _vector("MetaWorldDrawerOpenV3Observation")
RawObservation = _vector("RawObservation")  # for tasks whose paper observation object we do not rebuild
