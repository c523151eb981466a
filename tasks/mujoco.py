"""MuJoCo v5: seven of Gymnasium's own locomotion and control tasks, under Gymnasium's own ids.

Gymnasium registers these ids itself (with their TimeLimit); the suite only records a TaskSpec for each:
description, horizon and reference scores. Nothing here imports MuJoCo, so the ids are listed even where
the `mujoco` extra is missing, and `make` then says in one line what to install.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Recipe, ReferenceScores, TaskSpec, register

KWARGS_HELP = ("Gymnasium's own MuJoCo v5 kwargs (e.g. ctrl_cost_weight, reset_noise_scale) and max_episode_steps; "
               "the description covers the default observation layout only")
RANDOM_EPISODES, RANDOM_SEED = 100, 0  # the protocol that measured the stored random returns (promptpo_bench.rollout.random_return)

CLEANRL_PPO = ("PPO of CleanRL (ppo_continuous_action.py) at 8M steps on MuJoCo v4 (docs.cleanrl.dev/rl-algorithms/rpo/, "
               "tables 'MuJoCo v4', column ppo_continuous_action_8M)")
TD3_PAPER_SAC = "SAC in Fujimoto et al. 2018 (TD3 paper, arXiv:1802.09477), Table 1, 1M steps on MuJoCo v1"


@dataclass(frozen=True)
class _Task:
    env_class: str  # Gymnasium's class, in gymnasium.envs.mujoco.<module>
    module: str
    horizon: int
    random: float  # mean return of uniform random actions, measured by promptpo_bench.rollout.random_return
    ppo: float  # published, CLEANRL_PPO
    sac: float | None  # published, TD3_PAPER_SAC (where the table has the task)
    summary: str
    spaces: tuple[int, int]  # sizes of the default observation and of the action (Box)


TASKS = {
    "Ant-v5": _Task("AntEnv", "ant_v5", 1000, -51.67, 1777.42, 655.35,
                    "quadruped (8 torques), forward speed; 105 obs incl. contact forces", (105, 8)),
    "HalfCheetah-v5": _Task("HalfCheetahEnv", "half_cheetah_v5", 1000, -273.47, 2654.93, 2347.19,
                            "planar cheetah (6 torques), forward speed, never terminates", (17, 6)),
    "Hopper-v5": _Task("HopperEnv", "hopper_v5", 1000, 16.54, 2784.27, 2996.66,
                       "planar one-legged hopper (3 torques), forward speed while healthy", (11, 3)),
    "Humanoid-v5": _Task("HumanoidEnv", "humanoid_v5", 1000, 107.83, 590.33, None,
                         "3D humanoid (17 torques), forward speed while standing; 348 obs", (348, 17)),
    "Swimmer-v5": _Task("SwimmerEnv", "swimmer_v5", 1000, 0.70, 124.45, None,
                        "three-link swimmer in viscous fluid (2 torques), forward speed", (8, 2)),
    "Reacher-v5": _Task("ReacherEnv", "reacher_v5", 50, -42.91, -4.66, -4.44,
                        "two-link arm (2 torques) reaching a random target", (10, 2)),
    "InvertedDoublePendulum-v5": _Task("InvertedDoublePendulumEnv", "inverted_double_pendulum_v5", 1000, 46.11,
                                       5586.45, 8487.15, "cart (1 force) balancing a two-link pole upright", (9, 1)),
}


def _references(task: _Task):
    """The stored random return and the best published PPO/SAC score (the expert), with their sources."""
    published = [(task.ppo, CLEANRL_PPO)] + ([(task.sac, TD3_PAPER_SAC)] if task.sac is not None else [])
    optimal, source = max(published)
    measured = (f"random: {RANDOM_EPISODES} episodes of uniform random actions, reset seeds "
                f"{RANDOM_SEED}..{RANDOM_SEED + RANDOM_EPISODES - 1}")
    return ReferenceScores(random=task.random, optimal=optimal, source=f"{measured}; expert: {source}")


for _id, _task in TASKS.items():
    register(TaskSpec(
        id=_id, family="mujoco", entry_point=f"gymnasium.envs.mujoco.{_task.module}:{_task.env_class}", kwargs={},
        horizon=_task.horizon, description="promptpo_bench.descriptions.mujoco", summary=_task.summary,
        references=lambda env, _task=_task: _references(_task), kwargs_help=KWARGS_HELP, recipe=Recipe(rounds=20),
        observation=f"Box({_task.spaces[0]},)", action=f"Box({_task.spaces[1]},)",
        default_references=lambda _task=_task: _references(_task), requires=("mujoco",), extra="mujoco",
    ))
