"""What an LLM reads about Glucose: observation, action, reward and horizon, as Python.

Everything between `# <context>` markers is shown to the LLM verbatim ({name} placeholders filled in per
env). It imports nothing but the standard library and NumPy, so the sandbox can load it.
"""

from __future__ import annotations

VARIANTS = {
    "paper": "the paper's information: 4 hours of CGM, insulin and carbohydrate history, whether the patient died, the "
             "insulin bolus's bounds, the reward as code",
    "suite": "adds the simulator and the meal process, units and ranges, the action as a rate and the pump's rounding, "
             "this patient's basal rate, carbohydrate ratio and correction factor, and when an episode ends",
}

# <context>
import math
from dataclasses import dataclass

import numpy as np
# </context>

# <context when="paper">
# A simulated type-1 diabetic patient (simglucose). You choose the insulin given at each step.
# </context>

# <context when="suite">
# An in-silico type-1 diabetic adult (the FDA-accepted UVA/Padova model) eats meals at random times of
# day that you are not told in advance. You control an insulin pump. One step is 5 minutes.
# </context>

# <context>
HISTORY = 48  # steps of history in the observation: the last 4 hours


@dataclass
class Observation:
    """The last 4 hours{resolution}, oldest first, newest last (index -1 is the step that just ended).{stochastic}"""

    cgm: np.ndarray  # {cgm}
    insulin: np.ndarray  # {insulin}
    carbs: np.ndarray  # {carbs}
    alive: bool  # {alive}

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat float32 array of length 3 * 48 + 1."""
        values = np.array(array, dtype=np.float64)
        return cls(values[:HISTORY], values[HISTORY:2 * HISTORY], values[2 * HISTORY:3 * HISTORY],
                   bool(values[-1] > 0.5))
# </context>

# <context when="paper">
# Action: the size of the insulin bolus in medication units, a float in [0, 0.1].
# </context>

# <context when="suite">
# Action: the insulin rate for the next 5 minutes, a float in [0, 0.1] U/min (values outside are clipped).
# The pump rounds it to its increment. This patient's steady-state basal rate is about {basal} U/min;
# clinicians use a carbohydrate ratio of {carb_ratio} g per U and a correction factor of
# {correction_factor} mg/dL per U for this patient.
# </context>

# <context>

DEATH_STEP_COST = 402.1962951502694  # the largest risk of a step the patient survives


def reward(blood_glucose: float, alive: bool = True, steps_left: int = 0) -> float:
    """The reward of a step: minus the Magni risk of the patient's true blood glucose (mg/dL, mean over the step).

    It is 0 at about 139 mg/dL and grows fast for hypoglycaemia (low) and more slowly for hyperglycaemia
    (high). On the step the patient dies (alive False), each of the `steps_left` steps the episode would still
    have had costs DEATH_STEP_COST as well: an early death never scores above living on.{not_observed}
    """
    risk = 10.0 * (3.5506 * (math.log(max(blood_glucose, 1.0)) ** 0.8353 - 3.7932)) ** 2
    return -risk if alive else -risk - steps_left * DEATH_STEP_COST
# </context>

# <context when="paper">
# Episode: it ends when the patient dies (alive False), or after {horizon} steps.
# </context>

# <context when="suite">
# Episode: it ends (with alive False) as soon as the true blood glucose leaves [10, 1000] mg/dL, or
# after {horizon} steps ({days} days).
# </context>


# the observation's words per variant: the paper's (its env_contexts/glucose_*_context.txt) or the suite's
_WORDS = {
    "paper": dict(resolution=" at 5-minute resolution", stochastic="\n    Observations are stochastic.",
                  cgm="48 continuous glucose monitor (CGM) readings (blood glucose)",
                  insulin="48 insulin amounts given",
                  carbs="48 carbohydrate (meal) intakes", alive="False if the patient has died", not_observed=""),
    "suite": dict(resolution="", stochastic="",
                  cgm="48 glucose monitor (CGM) readings, mg/dL, noisy, in [39, 600] (the first one before the "
                      "episode)",
                  insulin="48 insulin rates the pump delivered, U/min (zeros before the episode began)",
                  carbs="48 carbohydrate intakes, g/min averaged over each step (a meal is eaten at 5 g/min)",
                  alive="False only in the final observation of an episode that ended on dangerous glucose",
                  not_observed=" The true blood glucose is not observed; the CGM reading is a noisy, delayed measure "
                               "of it."),
}


def context_variables(env, variant: str) -> tuple[set[str], dict[str, str]]:
    """The variant's parts and the placeholder values for `env` (an unwrapped GlucoseEnv)."""
    from promptpo_bench.tasks.realworld.glucose import SAMPLE_MINUTES, patient_constants

    c = patient_constants(env.patient)
    return {variant}, {**_WORDS[variant], "horizon": str(env.horizon),
                       "days": f"{env.horizon * SAMPLE_MINUTES / 1440:g}", "basal": f"{c['basal']:.4f}",
                       "carb_ratio": f"{c['carb_ratio']:g}", "correction_factor": f"{c['correction_factor']:.1f}"}
