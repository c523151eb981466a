"""Meta-World's own scripted policy (`metaworld.policies`) as a batch policy for the rollout harness."""

from __future__ import annotations

import warnings

import numpy as np


class ScriptedPolicy:
    """The task's `metaworld.policies` policy applied to each observation; actions clipped to [-1, 1]."""

    def __init__(self, env_name: str):
        from metaworld.policies import ENV_POLICY_MAP  # loads MuJoCo-free code, but only when an expert is asked for
        self.policy = ENV_POLICY_MAP[env_name]()

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # metaworld warns whenever its gains ask for more than the env allows
            warnings.simplefilter("ignore")
            actions = [self.policy.get_action(o.copy()) for o in obs]  # copies: some policies edit their input
        return np.clip(np.stack(actions), -1.0, 1.0).astype(np.float32)
