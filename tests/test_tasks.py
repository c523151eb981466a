"""Every registered task, whatever its family: a valid Gymnasium env, deterministic under reset(seed), a
description that parses its real observations, and finite reference scores with random < optimal.

Parametrised over `registry.specs()`, so a new family is covered as soon as it registers its ids.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import promptpo_bench
from promptpo_bench import registry

IDS = [spec.id for spec in registry.specs()]
STEPS = 200  # per check: enough to cross resets on short tasks, cheap on slow simulators


def play(env_id: str, seed: int, steps: int = STEPS, env: gym.Env | None = None) -> list:
    """Observations, rewards and flags of `steps` seeded random steps (episode k resets with seed + k), on `env` or
    a new env."""
    own = env is None
    env = promptpo_bench.make(env_id) if own else env
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    trace, episode = [obs], 0
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trace.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
            trace.append(obs)
    if own:
        env.close()
    return trace


def assert_same_trace(first: list, second: list) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second):
        if isinstance(a, tuple):
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1:] == b[1:]
        else:
            np.testing.assert_array_equal(a, b)


def test_every_family_is_registered_under_its_gymnasium_id():
    assert IDS and len(IDS) == len(set(IDS))
    for env_id in IDS:
        assert env_id in gym.registry
        assert promptpo_bench.get(env_id).family


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    env = promptpo_bench.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_env's advice (e.g. unbounded Box spaces) is not a failure
        check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_deterministic_under_reset_seed(env_id):
    assert_same_trace(play(env_id, seed=5), play(env_id, seed=5))


@pytest.mark.parametrize("env_id", IDS)
def test_a_used_env_replays_a_new_envs_episodes(env_id):
    """`rollout.reusing_envs()` hands a rollout envs an earlier one used: reset(seed) must forget that use."""
    env = promptpo_bench.make(env_id)
    play(env_id, seed=3, steps=STEPS // 4, env=env)
    assert_same_trace(play(env_id, seed=5, env=env), play(env_id, seed=5))
    env.close()


def field_values(parsed) -> np.ndarray:
    """Every number an Observation holds, field by field (flags as 0/1), flattened."""
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in vars(parsed).values() if v is not None])


@pytest.mark.parametrize("env_id", IDS)
def test_description_parses_real_observations(env_id):
    """Each number of a real observation lands in exactly one field, unchanged: nothing dropped, duplicated or
    rescaled (the fields' values are the observation's values, as multisets)."""
    observation = registry.description_module(env_id).Observation
    for item in play(env_id, seed=9, steps=50):
        obs = item[0] if isinstance(item, tuple) else item
        parsed = observation.from_array(obs)
        assert isinstance(parsed, observation)
        values = field_values(parsed)
        raw = np.asarray(obs, dtype=np.float64).ravel()
        assert values.shape == raw.shape, (values.shape, raw.shape)
        np.testing.assert_allclose(np.sort(values), np.sort(raw), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("env_id", IDS)
def test_describe_is_runnable_python(env_id):
    """The text the LLM reads, in every variant, runs as it is, and its Observation parses a real observation as the
    task's own does; the default variant is the paper's (the first, "paper", wherever the task has one)."""
    variants = registry.description_variants(env_id)
    assert registry.default_variant(env_id) == next(iter(variants)) and ("paper" not in variants or
                                                                         next(iter(variants)) == "paper")
    obs = play(env_id, seed=4, steps=3)[-1][0]
    for variant in variants:
        text = promptpo_bench.describe(env_id, variant)
        if variant == registry.default_variant(env_id):
            assert text == promptpo_bench.describe(env_id)
        assert "class Observation" in text
        module = types.ModuleType("llm_context")  # a module of its own, as the sandbox loads it (dataclasses need one)
        sys.modules[module.__name__] = module
        try:
            exec(compile(text, f"{env_id} context", "exec"), module.__dict__)  # our own description text, trusted
        finally:
            del sys.modules[module.__name__]
        shown = module.Observation.from_array(obs)
        real = registry.description_module(env_id).Observation.from_array(obs)
        assert type(shown).__name__ == type(real).__name__
        np.testing.assert_array_equal(field_values(shown), field_values(real))


@pytest.mark.parametrize("env_id", IDS)
def test_references_are_finite_and_ordered(env_id):
    ref = promptpo_bench.reference_scores(env_id)
    assert math.isfinite(ref.random) and math.isfinite(ref.optimal) and ref.random < ref.optimal
    assert ref.source


@pytest.mark.parametrize("env_id", IDS)
def test_the_spec_lists_what_the_env_has(env_id):
    """`promptpo-bench tasks` reads spaces and reference scores off the spec; they must be the default env's."""
    spec = registry.get(env_id)
    env = promptpo_bench.make(env_id)
    try:
        assert (spec.observation, spec.action) == (registry.space_text(env.observation_space),
                                                   registry.space_text(env.action_space))
        assert spec.default_references() == spec.references(env.unwrapped)
    finally:
        env.close()
    assert not registry.missing_requirements(spec)  # make just built it


def test_tasks_builds_no_env_and_names_a_family_that_is_not_installed(monkeypatch, capsys):
    from promptpo_bench import cli

    def no_env(*args, **kwargs):
        raise AssertionError("promptpo-bench tasks built an env")

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(registry, "make", no_env)
    monkeypatch.setattr(gym, "make", no_env)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "minigrid" else
                        real_find_spec(name, *a))
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert all(spec.id in out for spec in registry.specs())
    assert "not installed: minigrid" in out and "promptpo-bench[minigrid]" in out and "not installed: mujoco" not in out


PAPER_ROUNDS = {"noiseworld": 5, "Pandemic-Town-v0": 5, "Traffic-Merge-v0": 5, "pointmaze": 10,
                "MetaWorld-ButtonPress-v0": 10, "MetaWorld-PickPlace-v0": 10, "mujoco": 20,
                "MetaWorld-DoorOpen-v0": 20, "MetaWorld-DrawerOpen-v0": 20, "Glucose-Adult-v0": 20}


@pytest.mark.parametrize("spec", [s for s in registry.specs() if s.family in ("noiseworld", "pointmaze", "metaworld",
                                                                          "mujoco", "realworld")], ids=lambda s: s.id)
def test_promptpo_recipe_is_the_papers(spec):
    """Rounds as read off the paper's policy file names; 10 candidates and 5 episodes everywhere."""
    rounds = PAPER_ROUNDS.get(spec.id, PAPER_ROUNDS.get(spec.family))
    assert (spec.recipe.rounds, spec.recipe.candidates, spec.recipe.episodes) == (rounds, 10, 5)
