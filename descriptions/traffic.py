"""What an LLM reads about Traffic: observation, action, reward and horizon, as Python.

Everything between `# <context>` markers is shown to the LLM verbatim ({name} placeholders filled in per
env). It imports nothing but the standard library and NumPy, so the sandbox can load it.
"""

from __future__ import annotations

VARIANTS = {"suite": "the suite's description (its differences from the paper's context: README, Descriptions)"}

# <context>
from dataclasses import dataclass

import numpy as np

# A one-lane highway (600 m to the merge, 200 m after it) is joined by a one-lane on-ramp; cars from the
# ramp merge zipper-style. Human drivers want to drive at up to the speed limit of 30 m/s but dawdle at random
# (SUMO's Krauss model), which makes stop-and-go waves at the merge. A quarter of the highway's cars are
# autonomous: you drive the first 5 of them (in order of entering) from the start of the highway to the
# merge; after the merge they drive like humans again. One step is 0.5 s.
NUM_AVS = 5
MAX_GAP = 1000.0  # reported gap when there is no vehicle ahead / behind


@dataclass
class Observation:
    """One entry per controlled-vehicle slot (slot 0: the one that entered first). Empty slots are all zeros."""

    present: np.ndarray  # 5 booleans: whether the slot holds a controlled vehicle
    position: np.ndarray  # 5 positions on the highway, m from its start (the merge is at 600 m)
    speed: np.ndarray  # 5 speeds, m/s
    leader_speed: np.ndarray  # 5 speeds of the vehicle ahead, m/s (30 when there is none)
    leader_gap: np.ndarray  # 5 bumper-to-bumper gaps to the vehicle ahead, m (1000 when there is none)
    follower_speed: np.ndarray  # 5 speeds of the vehicle behind, m/s (0 when there is none)
    follower_gap: np.ndarray  # 5 gaps to the vehicle behind, m (1000 when there is none)
    cruise_speed: np.ndarray  # 5 cruise speeds, m/s (see the action below; 30 when you take control of a car)

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat float32 array of length 5 * 8."""
        slots = np.array(array, dtype=np.float64).reshape(NUM_AVS, 8)
        return cls(slots[:, 0] > 0.5, *(slots[:, k].copy() for k in range(1, 8)))


# Action: 5 accelerations in m/s^2, each in [-1.5, 1.5] (clipped), one per slot (ignored for empty
# slots), applied to the car's cruise speed for the next 0.5 s: cruise_speed += 0.5 * a, kept in [0, 30].
# A car you take control of has cruise speed 30; while it stays at 30 the car drives exactly like the human
# drivers (dawdling included), so action 0 changes nothing. Below 30 the car drives at its cruise speed
# without dawdling, except that it never goes faster than is safe behind its leader and it yields at the
# merge like the human drivers (the simulator brakes it if needed); when below its cruise speed (after such
# a brake), it speeds back up by at most 1.5 m/s^2.


def reward(all_speeds: np.ndarray, next_obs: Observation, action: np.ndarray) -> float:
    """The reward of a step, from the speeds (m/s) of ALL vehicles on the road after the step (not observed),
    the observation after the step and the action taken.

    Desired velocity: 1 when every vehicle drives 25 m/s, falling with the distance from that; minus 0.1 per
    second by which a controlled car's time headway to its leader is under 1 s; minus 0.05 x the mean absolute
    acceleration commanded to the controlled cars.
    """
    speeds = np.asarray(all_speeds, dtype=np.float64)
    desired = 0.0
    if len(speeds):
        best = np.sqrt(len(speeds)) * 25.0
        desired = max(best - float(np.linalg.norm(speeds - 25.0)), 0.0) / best
    headway = 0.0
    for speed, gap in zip(next_obs.speed[next_obs.present], next_obs.leader_gap[next_obs.present]):
        if speed > 0 and gap < MAX_GAP:
            headway += min(gap / speed - 1.0, 0.0)
    accel = np.clip(np.asarray(action, dtype=np.float64).reshape(NUM_AVS), -1.5, 1.5)
    effort = float(np.abs(accel[next_obs.present]).mean()) if next_obs.present.any() else 0.0
    return desired + 0.1 * headway - 0.05 * effort


# Episode: after a {warmup_s} s warm-up with human drivers only, it lasts {horizon} steps ({seconds} s).
# </context>


def context_variables(env, variant: str) -> tuple[set[str], dict[str, str]]:
    """The placeholder values for `env` (an unwrapped TrafficMergeEnv); there is one variant."""
    from promptpo_bench.tasks.realworld.traffic import STEP_SECONDS

    return set(), {"horizon": str(env.horizon), "seconds": f"{env.horizon * STEP_SECONDS:g}",
                   "warmup_s": f"{env.warmup_steps * STEP_SECONDS:g}"}
