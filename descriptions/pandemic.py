"""What an LLM reads about Pandemic: observation, actions, reward and horizon, as Python.

Everything between `# <context>` markers is shown to the LLM verbatim ({name} placeholders filled in per
env). It imports nothing but the standard library and NumPy, so the sandbox can load it.
"""

from __future__ import annotations

VARIANTS = {"suite": "the suite's description (its differences from the paper's context: README, Descriptions)"}

# <context>
from dataclasses import dataclass

import numpy as np

# A COVID-19 epidemic spreads through an agent-based town of {population} people (Covasim: households,
# schools, workplaces and the community); 20 people are infected on day 0. Each step you choose the
# town's regulation stage for the next day.
HISTORY = 7  # days of history in the observation


@dataclass
class Observation:
    """The last 7 days, oldest first, newest last (index -1 is the day just simulated); proportions of the town."""

    infected: np.ndarray  # 7 proportions currently infected (exposed or infectious), in [0, 1]
    critical: np.ndarray  # 7 proportions in critical condition (needing intensive care)
    recovered: np.ndarray  # 7 proportions recovered
    dead: np.ndarray  # 7 proportions dead so far
    stage: int  # the regulation stage in force on the day just simulated, 0..4

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat float32 array of length 4 * 7 + 1."""
        values = np.array(array, dtype=np.float64)
        days = values[:4 * HISTORY].reshape(4, HISTORY)
        return cls(days[0], days[1], days[2], days[3], int(round(values[-1])))


# Actions: an integer in {0, 1, 2}, applied before the next day is simulated.
ACTIONS = {
    0: "lower the stage by one (not below 0)",
    1: "keep the stage",
    2: "raise the stage by one (not above 4)",
}
# What each stage means (each includes the ones below it); the episode starts at stage 0.
STAGES = {
    0: "no restrictions",
    1: "stay home if sick, hand hygiene",
    2: "face masks, gatherings over 50 people banned",
    3: "social distancing, schools closed, gatherings over 10 people banned",
    4: "non-essential businesses closed, shelter in place",
}

HOSPITAL_CAPACITY = 0.002  # proportion of the town that hospitals can treat in intensive care


def reward(obs: Observation, action: int, next_obs: Observation) -> float:
    """One day's reward: health (infections, intensive-care overload) against the economic cost of the stage."""
    infected, critical = next_obs.infected[-1], next_obs.critical[-1]
    stage, previous_stage = next_obs.stage, obs.stage
    return -(10.0 * infected + 1.0 * max(critical - HOSPITAL_CAPACITY, 0.0) / HOSPITAL_CAPACITY
             + 1.0 * (stage / 4) ** 1.5 + 0.1 * abs(stage - previous_stage))


# Episode: it ends after {horizon} days.
# </context>


def context_variables(env, variant: str) -> tuple[set[str], dict[str, str]]:
    """The placeholder values for `env` (an unwrapped PandemicEnv); there is one variant."""
    return set(), {"population": f"{env.population:,}", "horizon": str(env.horizon)}
