"""Real-world control tasks (Pan, Bhatia & Steinhardt 2022) on simulators from PyPI: glucose, pandemic, traffic.

Registration imports no simulator: simglucose, Covasim and SUMO load when an env is first made.
Reference scores were measured once with `benchmarks/realworld_references.py` (default kwargs, fixed
seeds) and are stored here, because a single episode takes seconds to minutes.
"""

from __future__ import annotations

from ...registry import Recipe, ReferenceScores, TaskSpec, register


_SOURCE = ("mean returns with default kwargs, {n} episodes on reset seeds 0..{m} (random: action space seeded 0; "
           "expert: {what}), measured by benchmarks/realworld_references.py")


def _stored(random: float, expert: float, source: str) -> dict:
    """A TaskSpec's `references` and `default_references` for scores stored here (the same for any kwargs)."""
    scores = ReferenceScores(random=random, optimal=expert, source=source)
    return {"references": lambda env: scores, "default_references": lambda: scores}


def _expert_code(module: str) -> str:
    """A task module's expert as policy.py source (imported when asked for: registration loads no simulator)."""
    import importlib

    return importlib.import_module(f"{__name__}.{module}").EXPERT_CODE


def _glucose_expert(env):
    from .glucose import BasalBolusPolicy

    return BasalBolusPolicy(env.patient)


register(TaskSpec(
    id="Glucose-Adult-v0", family="realworld", entry_point="promptpo_bench.tasks.realworld.glucose:GlucoseEnv",
    kwargs={"patient": "adult#001"}, horizon=5760, description="promptpo_bench.descriptions.glucose",
    summary="insulin dosing, simglucose adult#001, random meals per seed (20 days at 5 min)",
    **_stored(-341461.21, -53488.04, _SOURCE.format(n=5, m=4, what="basal-bolus rule")),
    observation="Box(145,)", action="Box(1,)", requires=("simglucose", "pandas"), extra="realworld",
    kwargs_help="patient: adult#001..adult#010, horizon: int >= 1 (steps of 5 min), cached: bool (False: simglucose as shipped)",
    expert=_glucose_expert, recipe=Recipe(rounds=20),
))


def _pandemic_expert(env):
    from ...descriptions import ObservationPolicy
    from ...descriptions.pandemic import Observation
    from .pandemic import StageThreshold

    return ObservationPolicy(StageThreshold(), Observation)


register(TaskSpec(
    id="Pandemic-Town-v0", family="realworld", entry_point="promptpo_bench.tasks.realworld.pandemic:PandemicEnv",
    kwargs={"population": 1000}, horizon=120, description="promptpo_bench.descriptions.pandemic",
    summary="lockdown stage 0-4 for a Covasim town of 1,000 people (120 days)",
    **_stored(-151.32, -69.16, _SOURCE.format(n=10, m=9, what="stage-threshold rule")),
    observation="Box(29,)", action="Discrete(3)", requires=("covasim",), extra="realworld",
    kwargs_help="population: int >= 100, horizon: int >= 1 (days)",
    expert=_pandemic_expert, expert_code=lambda env: _expert_code("pandemic"),
    recipe=Recipe(rounds=5),
))


def _traffic_expert(env):
    from ...descriptions import ObservationPolicy
    from ...descriptions.traffic import Observation
    from .traffic import DesiredSpeed

    return ObservationPolicy(DesiredSpeed(), Observation)


register(TaskSpec(
    id="Traffic-Merge-v0", family="realworld", entry_point="promptpo_bench.tasks.realworld.traffic:TrafficMergeEnv",
    kwargs={}, horizon=750, description="promptpo_bench.descriptions.traffic",
    summary="highway on-ramp merge, 5 controlled autonomous vehicles, SUMO/libsumo (375 s)",
    **_stored(599.36, 632.29, _SOURCE.format(n=10, m=9, what="cruise at the desired 25 m/s; zero acceleration, "
                                                       "i.e. SUMO's human driver: 626.26")),
    observation="Box(40,)", action="Box(5,)", requires=("libsumo", "sumo"), extra="realworld",
    kwargs_help="horizon: int >= 1 (steps of 0.5 s), warmup_steps: int >= 0",
    expert=_traffic_expert, expert_code=lambda env: _expert_code("traffic"),
    recipe=Recipe(rounds=5), env_per_process=True,  # libsumo: one simulation per process
))
