"""The rollout harness's env reuse: inside `reusing_envs()` a rollout takes the envs an earlier one left, and the
episodes are the same as with new envs."""

from __future__ import annotations

import numpy as np
import pytest

from promptpo_bench import registry, rollout
from promptpo_bench.rollout import RandomPolicy, reusing_envs, run_episodes

ENV_ID = "NoiseWorld-Board1-v0"


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every env `run_episodes` makes, with a `closed` flag set by its close()."""
    envs = []
    make = rollout.make_env

    def recording_make_env(env_id, env_kwargs=None, variant=None):
        env = make(env_id, env_kwargs, variant)
        env.closed, close = False, env.close

        def recording_close():
            env.closed = True
            close()

        env.close = recording_close
        envs.append(env)
        return env

    monkeypatch.setattr(rollout, "make_env", recording_make_env)
    return envs


def returns(seeds: list[int]) -> np.ndarray:
    space = registry.make(ENV_ID).action_space
    return run_episodes(ENV_ID, RandomPolicy(space, 0), seeds, batch_size=4).returns


def test_without_the_block_every_rollout_makes_and_closes_its_envs(made):
    returns([0, 1, 2, 3])
    returns([0, 1, 2, 3])
    assert len(made) == 8 and all(env.closed for env in made)


def test_inside_the_block_envs_are_reused_and_episodes_unchanged(made):
    fresh = returns([4, 5, 6, 7, 8, 9])
    count = len(made)
    with reusing_envs():
        first = returns([4, 5, 6, 7, 8, 9])
        second = returns([4, 5, 6, 7, 8, 9])
        kept = made[count:]
        assert len(made) == count + 4  # made once
        assert not any(env.closed for env in kept)
    np.testing.assert_array_equal(first, fresh)
    np.testing.assert_array_equal(second, fresh)
    assert all(env.closed for env in kept)


def test_envs_that_raised_are_closed_not_kept(made, monkeypatch):
    with reusing_envs():
        returns([0, 1])
        kept = made[-2:]
        broken = kept[0].unwrapped

        def failing_step(action):
            raise RuntimeError("simulator crashed")

        monkeypatch.setattr(broken, "step", failing_step)
        with pytest.raises(RuntimeError, match="simulator crashed"):
            returns([0, 1])
        assert all(env.closed for env in kept)
        before = len(made)
        returns([0, 1])
        assert len(made) == before + 2  # new envs, not the closed ones
