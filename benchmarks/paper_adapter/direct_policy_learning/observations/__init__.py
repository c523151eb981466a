"""Observation objects shaped like the paper's, built from our tasks' flat observation arrays (our code).

The paper's policy files import their observation class from `direct_policy_learning.observations` and read
named attributes. Each class here carries exactly what the array holds, under the paper's attribute names;
anything the paper read from the simulator instead (MuJoCo `qpos`/`qvel`, a site position, the env itself) is
absent on purpose, so a policy that needs it fails with an AttributeError naming it. `dt` is the task's fixed
control period (Gymnasium v5 defaults), checked against the environment by benchmarks/paper_policies.py.
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
    """obs_vector: the environment's observation array (MuJoCo v5 and Meta-World MT1 arrays are the paper's)."""

    @classmethod
    def from_array(cls, array: np.ndarray):
        obs = cls()
        obs.obs_vector = np.asarray(array, dtype=np.float64).copy()
        if hasattr(cls, "dt"):
            obs.dt = cls.dt
        return obs


def _vector(name: str, dt: float | None = None) -> type:
    return type(name, (_VectorObservation,), {"__module__": __name__, **({} if dt is None else {"dt": dt})})


MujocoAntObservation = _vector("MujocoAntObservation", 0.05)
MujocoHalfCheetahObservation = _vector("MujocoHalfCheetahObservation", 0.05)
MujocoHopperObservation = _vector("MujocoHopperObservation", 0.008)
MujocoSwimmerObservation = _vector("MujocoSwimmerObservation", 0.04)
MujocoReacherObservation = _vector("MujocoReacherObservation", 0.02)
MujocoInvertedDoublePendulumObservation = _vector("MujocoInvertedDoublePendulumObservation", 0.05)
MetaWorldButtonPressV3Observation = _vector("MetaWorldButtonPressV3Observation")
MetaWorldPickPlaceV3Observation = _vector("MetaWorldPickPlaceV3Observation")
MetaWorldDoorOpenV3Observation = _vector("MetaWorldDoorOpenV3Observation")
MetaWorldDrawerOpenV3Observation = _vector("MetaWorldDrawerOpenV3Observation")
RawObservation = _vector("RawObservation")  # for tasks whose paper observation object we do not rebuild
