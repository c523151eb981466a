"""Glucose: insulin dosing for a type-1 diabetic on simglucose 0.2.11 (the UVA/Padova 2008 model).

The physics, CGM sensor noise, pump and random meal scenario are simglucose's own objects. What we add
is caching: simglucose keeps every parameter in a pandas Series and reads it by name inside the ODE's
right-hand side (dozens of Series look-ups per derivative evaluation); we hand the same objects plain
float records instead, which gives the same trajectory several times faster (tests compare the two).
"""

from __future__ import annotations

import math
from collections import namedtuple
from datetime import datetime
from functools import cache
from typing import Any

import gymnasium as gym
import numpy as np

from . import simglucose_loader

SAMPLE_MINUTES = 5  # one env step = 5 simulated minutes (the GuardianRT CGM's sample time)
HISTORY = 48  # steps of history in the observation: 4 hours
HORIZON = 5760  # 20 days, as in the paper
MAX_INSULIN = 0.1  # U/min
BG_RANGE = (10.0, 1000.0)  # the episode ends when blood glucose leaves it (mg/dL)
START = datetime(2018, 1, 1, 0, 0, 0)  # simglucose's gym env's start time
ADULTS = tuple(f"adult#{i:03d}" for i in range(1, 11))
_pump_action = namedtuple("controller_action", ["basal", "bolus"])  # what T1DSimEnv.step reads


def _no_reward(cgm_last_hour) -> float:
    """T1DSimEnv wants a reward function; ours (Magni risk of blood glucose) is computed in GlucoseEnv.step."""
    return 0.0


class _Record:
    """A parameter row as floats, readable both as `row.name` (patient) and `row["name"]` (sensor, pump); plain
    attributes, because the ODE's right-hand side reads about 70 of them per evaluation."""

    def __init__(self, values: dict[str, float]) -> None:
        self.__dict__.update(values)

    def __getitem__(self, name: str) -> float:
        return self.__dict__[name]


@cache
def _tables() -> dict[str, Any]:
    """simglucose's parameter tables (patients, sensors, pumps, the clinicians' quest), read once per process."""
    import pandas as pd

    sg = simglucose_loader.load()
    return {"patients": pd.read_csv(sg["t1dpatient"].PATIENT_PARA_FILE), "sensors": pd.read_csv(sg["cgm"].SENSOR_PARA_FILE),
            "pumps": pd.read_csv(sg["pump"].INSULIN_PUMP_PARA_FILE),
            "quest": pd.read_csv(sg["t1dpatient"].PATIENT_PARA_FILE.replace("vpatient_params.csv", "Quest.csv"))}


def _row(table: str, name: str, cached: bool):
    """The parameter row `name` of `table`: a pandas Series (simglucose's way) or a float `_Record`."""
    frame = _tables()[table]
    series = frame.loc[frame.Name == name].squeeze()
    return _Record(series.to_dict()) if cached else series


def patient_constants(name: str) -> dict[str, float]:
    """What a clinician knows about patient `name`: basal rate (U/min), carb ratio (g/U), correction factor (mg/dL/U)."""
    params, quest = _row("patients", name, True), _row("quest", name, True)
    return {"basal": params.u2ss * params.BW / 6000, "carb_ratio": float(quest.CR), "correction_factor": float(quest.CF)}


def magni_risk(bg: float) -> float:
    """Magni et al. (2007) risk of a blood glucose value in mg/dL (0 at about 139 mg/dL)."""
    return 10.0 * (3.5506 * (math.log(max(bg, 1.0)) ** 0.8353 - 3.7932)) ** 2


# What each step an episode would still have had costs when the patient dies: the largest risk of a step alive (at
# 10 mg/dL; 191 at 1000), so an early death never scores above living on. Without it the return, a sum of risks,
# rewards dying early: constant maximal insulin kills adult#001 in 11 hours for -7,990, above the expert's -53,488.
DEATH_STEP_COST = max(magni_risk(BG_RANGE[0]), magni_risk(BG_RANGE[1]))


def make_simulator(patient: str, seed: int, cached: bool = True):
    """simglucose's T1DSimEnv for `patient`, its CGM noise and meals seeded by `seed`; `cached=False` is simglucose as shipped."""
    sg = simglucose_loader.load()
    params = _row("patients", patient, cached)
    init_state = np.array([params[f"x0_{i:2d}"] for i in range(1, 14)], dtype=np.float64)
    body = sg["t1dpatient"].T1DPatient(params, init_state=init_state if cached else None)
    sensor = sg["cgm"].CGMSensor(_row("sensors", "GuardianRT", cached), seed=seed)
    pump = sg["pump"].InsulinPump(_row("pumps", "Insulet", cached))
    scenario = sg["scenario_gen"].RandomScenario(start_time=START, seed=seed)
    return sg["env"].T1DSimEnv(body, sensor, pump, scenario)


class GlucoseEnv(gym.Env):
    """A fixed patient; each reset seed fixes the CGM noise and the random meals of the whole episode.

    Observation (float32, 3 * 48 + 1): the last 4 hours of CGM (mg/dL), delivered insulin (U/min) and
    carbohydrate intake (g/min), each oldest first at 5-minute steps, then an alive flag. Action: the
    insulin rate in [0, 0.1] U/min for the next 5 minutes. Reward: minus the Magni risk of the true blood
    glucose (mean over the step). Termination when blood glucose leaves [10, 1000] mg/dL; that step also costs
    `DEATH_STEP_COST` for each step the episode had left.
    """

    metadata = {"render_modes": []}

    def __init__(self, patient: str = "adult#001", horizon: int = HORIZON, cached: bool = True):
        if patient not in ADULTS:
            raise ValueError(f"patient must be one of adult#001..adult#010, got {patient!r}")
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        self.patient, self.horizon, self.cached = patient, horizon, cached
        high = np.repeat(np.array([600.0, MAX_INSULIN, 5.0], dtype=np.float32), HISTORY)  # CGM clip, pump cap, eating rate
        self.observation_space = gym.spaces.Box(0.0, np.append(high, 1.0).astype(np.float32), dtype=np.float32)
        self.action_space = gym.spaces.Box(0.0, MAX_INSULIN, (1,), np.float32)
        self._sim = None
        self._history = np.zeros((3, HISTORY), dtype=np.float64)
        self._t = 0

    def _observation(self, alive: bool) -> np.ndarray:
        return np.concatenate([self._history.ravel(), [float(alive)]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1)) if seed is None else int(seed)
        self._sim = make_simulator(self.patient, episode_seed, self.cached)
        cgm = self._sim.CGM_hist[0]
        self._history[:] = 0.0
        self._history[0] = cgm
        self._t = 0
        return self._observation(True), {"bg": float(self._sim.BG_hist[0]), "cgm": float(cgm)}

    def step(self, action):
        if self._sim is None:
            raise RuntimeError("call reset() before step()")
        insulin = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], 0.0, MAX_INSULIN))
        step = self._sim.step(_pump_action(basal=insulin, bolus=0.0), reward_fun=_no_reward)
        info = step.info
        bg, cho, delivered = float(info["bg"]), float(info["meal"]), float(self._sim.insulin_hist[-1])
        self._history[:, :-1] = self._history[:, 1:]
        self._history[:, -1] = (float(step.observation.CGM), delivered, cho)
        self._t += 1
        terminated = not (BG_RANGE[0] <= bg <= BG_RANGE[1])
        truncated = self._t >= self.horizon and not terminated
        reward = -magni_risk(bg) - terminated * (self.horizon - self._t) * DEATH_STEP_COST
        return (self._observation(not terminated), reward, terminated, truncated,
                {"bg": bg, "cgm": float(step.observation.CGM), "meal": cho, "insulin": delivered})


class BasalBolusPolicy:
    """The clinicians' basal-bolus rule (as simglucose's BBController) seeing only the observation.

    Basal insulin all the time; for carbohydrates that appear in the newest step a bolus of carbs / carb
    ratio units, plus (CGM - 140) / correction factor when CGM > 150. Boluses above the 0.1 U/min cap are
    owed and delivered over the following steps.
    """

    TARGET = 140.0

    def __init__(self, patient: str = "adult#001"):
        self.constants = patient_constants(patient)
        self.owed: dict[int, float] = {}

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        c = self.constants
        actions = np.empty((len(episode_ids), 1), dtype=np.float32)
        for j, (episode, o, t) in enumerate(zip(episode_ids.tolist(), obs, steps.tolist())):
            owed = 0.0 if t == 0 else self.owed.get(episode, 0.0)
            cgm, carbs = float(o[HISTORY - 1]), float(o[3 * HISTORY - 1]) * SAMPLE_MINUTES  # grams in the newest step
            if carbs > 0:
                owed += carbs / c["carb_ratio"] + (cgm > 150) * (cgm - self.TARGET) / c["correction_factor"]
            rate = min(MAX_INSULIN, c["basal"] + max(owed, 0.0) / SAMPLE_MINUTES)
            self.owed[episode] = max(owed - (rate - c["basal"]) * SAMPLE_MINUTES, 0.0)
            actions[j, 0] = rate
        return actions
