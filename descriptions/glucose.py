"""What an LLM reads about Glucose: observation, action, reward and horizon, as Python.

Everything between `# <context>` markers is shown to the LLM verbatim ({name} placeholders filled in per
env). It imports nothing but the standard library and NumPy, so the sandbox can load it.
"""

from __future__ import annotations

VARIANTS = {"suite": "the suite's description (its differences from the paper's context: README, Descriptions)"}

# <context>
import math
from dataclasses import dataclass

import numpy as np

# An in-silico type-1 diabetic adult (the FDA-accepted UVA/Padova model) eats meals at random times of
# day that you are not told in advance. You control an insulin pump. One step is 5 minutes.
HISTORY = 48  # steps of history in the observation: the last 4 hours


@dataclass
class Observation:
    """The last 4 hours, oldest first, newest last (index -1 is the step that just ended)."""

    cgm: np.ndarray  # 48 glucose monitor (CGM) readings, mg/dL, noisy, in [39, 600] (the first one before the episode)
    insulin: np.ndarray  # 48 insulin rates the pump delivered, U/min (zeros before the episode began)
    carbs: np.ndarray  # 48 carbohydrate intakes, g/min averaged over each step (a meal is eaten at 5 g/min)
    alive: bool  # False only in the final observation of an episode that ended on dangerous glucose

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat float32 array of length 3 * 48 + 1."""
        values = np.array(array, dtype=np.float64)
        return cls(values[:HISTORY], values[HISTORY:2 * HISTORY], values[2 * HISTORY:3 * HISTORY],
                   bool(values[-1] > 0.5))


# Action: the insulin rate for the next 5 minutes, a float in [0, 0.1] U/min (values outside are clipped).
# The pump rounds it to its increment. This patient's steady-state basal rate is about {basal} U/min;
# clinicians use a carbohydrate ratio of {carb_ratio} g per U and a correction factor of
# {correction_factor} mg/dL per U for this patient.


def reward(blood_glucose: float) -> float:
    """The reward of a step: minus the Magni risk of the patient's true blood glucose (mg/dL, mean over the step).

    It is 0 at about 139 mg/dL and grows fast for hypoglycaemia (low) and more slowly for hyperglycaemia
    (high). The true blood glucose is not observed; the CGM reading is a noisy, delayed measure of it.
    """
    return -10.0 * (3.5506 * (math.log(max(blood_glucose, 1.0)) ** 0.8353 - 3.7932)) ** 2


# Episode: it ends (with alive False) as soon as the true blood glucose leaves [10, 1000] mg/dL, or
# after {horizon} steps ({days} days).
# </context>


def context_variables(env, variant: str) -> tuple[set[str], dict[str, str]]:
    """The placeholder values for `env` (an unwrapped GlucoseEnv); there is one variant."""
    from promptpo_bench.tasks.realworld.glucose import SAMPLE_MINUTES, patient_constants

    c = patient_constants(env.patient)
    return set(), {"horizon": str(env.horizon), "days": f"{env.horizon * SAMPLE_MINUTES / 1440:g}",
                   "basal": f"{c['basal']:.4f}", "carb_ratio": f"{c['carb_ratio']:g}",
                   "correction_factor": f"{c['correction_factor']:.1f}"}
