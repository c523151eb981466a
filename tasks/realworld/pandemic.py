"""Pandemic: daily lockdown-stage decisions for an agent-based town on Covasim 4.0.1.

Covasim's hybrid population (household, school, work and community contact layers) runs one day per
step. The regulation stage 0-4 scales each layer's transmission rate (`beta_layer`) before the day is
simulated, following the stage table of the paper's PandemicSimulator town (hygiene, masks, distancing,
gathering limits, school and business closures), see `STAGES`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os

import gymnasium as gym
import numpy as np

from ...errors import BenchError

HISTORY = 7  # days of history in the observation
HORIZON = 120  # days
NUM_STAGES = 5
LAYERS = ("h", "s", "w", "c")  # household, school, work, community
# Transmission multiplier per layer (h, s, w, c) and what each stage stands for in the paper's table.
STAGES = (
    ((1.0, 1.0, 1.0, 1.0), "no restrictions"),
    ((0.9, 0.8, 0.8, 0.8), "stay home if sick, hand hygiene"),
    ((0.9, 0.6, 0.6, 0.5), "+ face masks, gatherings over 50 banned"),
    ((1.0, 0.0, 0.4, 0.3), "+ social distancing, schools closed, gatherings over 10 banned"),
    ((1.1, 0.0, 0.15, 0.1), "+ non-essential businesses closed, shelter in place (more time at home)"),
)
# Reward weights (documented in the description): infections, critical cases above hospital capacity,
# the economic cost of the stage, and of changing it.
W_INFECTED, W_OVERLOAD, W_STAGE, W_CHANGE = 10.0, 1.0, 1.0, 0.1
CAPACITY = 0.002  # critical cases a hospital system can treat, as a proportion of the population


def day_reward(infected: float, critical: float, stage: int, previous_stage: int) -> float:
    """One day's reward from the proportions infected and critical and the stage before and after the action."""
    return -(W_INFECTED * infected + W_OVERLOAD * max(critical - CAPACITY, 0.0) / CAPACITY
             + W_STAGE * (stage / (NUM_STAGES - 1)) ** 1.5 + W_CHANGE * abs(stage - previous_stage))


def _covasim():
    """Import Covasim quietly (it prints a banner and may rebuild a font cache on first import)."""
    os.environ.setdefault("STARSIM_INSTALL_FONTS", "0")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import covasim
    except ImportError:
        raise BenchError("the Pandemic tasks need covasim: pip install 'promptpo-bench[realworld]'") from None
    return covasim


class PandemicEnv(gym.Env):
    """A town of `population` people, 20 of them infected on day 0; each reset seed fixes Covasim's random draws.

    Observation (float32, 4 * 7 + 1): the proportions infected, critical, recovered and dead on each of the
    last 7 days (oldest first), then the current stage 0-4. Action: Discrete(3), 0 lower / 1 keep / 2 raise
    the stage (clipped to 0-4); the new stage applies to the day being simulated.
    """

    metadata = {"render_modes": []}

    def __init__(self, population: int = 1000, horizon: int = HORIZON):
        if not isinstance(population, int) or population < 100:
            raise ValueError(f"population must be an integer >= 100, got {population!r}")
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        self.population, self.horizon = population, horizon
        self.observation_space = gym.spaces.Box(
            0.0, np.append(np.ones(4 * HISTORY), NUM_STAGES - 1).astype(np.float32), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self._sim = None
        self._history = np.zeros((4, HISTORY), dtype=np.float64)
        self.stage = 0

    def _observation(self) -> np.ndarray:
        return np.append(self._history.ravel(), self.stage).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1)) if seed is None else int(seed)
        cv = _covasim()
        self._sim = cv.Sim(pop_size=self.population, pop_type="hybrid", n_days=self.horizon,
                           rand_seed=episode_seed, verbose=0)
        self._sim.init()
        self._base_beta = dict(self._sim.diseases.covid.pars.beta_layer)
        self._history[:] = 0.0
        self.stage = 0
        return self._observation(), {"stage": 0}

    def step(self, action):
        if self._sim is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0, 1 or 2, got {action!r}")
        previous = self.stage
        self.stage = int(np.clip(previous + int(action) - 1, 0, NUM_STAGES - 1))
        multipliers = STAGES[self.stage][0]
        self._sim.diseases.covid.pars.beta_layer = {k: self._base_beta[k] * m for k, m in zip(LAYERS, multipliers)}
        self._sim.run_one_step()
        day = self._sim.ti - 1  # the results row of the day just simulated
        results, n = self._sim.results, self.population
        today = (results.covid["n_infected"][day] / n, results.covid["n_critical"][day] / n,
                 results.covid["n_recovered"][day] / n, results["cum_deaths"][day] / n)
        self._history[:, :-1] = self._history[:, 1:]
        self._history[:, -1] = today
        obs = self._observation()  # the reward reads the observed (float32) proportions, as a policy can
        reward = day_reward(float(obs[HISTORY - 1]), float(obs[2 * HISTORY - 1]), self.stage, previous)
        truncated = self._sim.ti >= self.horizon
        info = {"stage": self.stage, "infected": float(today[0]), "critical": float(today[1]),
                "new_infections": int(results.covid["new_infections"][day])}
        return obs, reward, False, truncated, info


class StageThreshold:
    """Raise the stage while over 2.05% of the town is infected, lower it under 0.45%, else keep it.

    The thresholds sit half a person off those of a 1,000-person town (over 20 infected, under 5), so the float32
    rounding of an observed proportion such as 5/1000 cannot tip a comparison either way.
    """

    def act(self, obs):
        infected = obs.infected[-1]  # today's proportion infected
        if infected > 0.0205:
            return 2
        return 0 if infected < 0.0045 else 1


# The same class as a policy.py (the LLM answer contract), so a reference run scores it in the sandbox like any code
# policy; in-process rollouts run it through rollout.ObservationPolicy.
EXPERT_CODE = inspect.getsource(StageThreshold).replace("class StageThreshold:", "class Policy:", 1)
